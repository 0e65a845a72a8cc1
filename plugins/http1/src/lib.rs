//! `shadowtap-http1`: the one HTTP/1.x toolkit every shadowtap layer uses — start-line
//! recognition, header-block parsing, body framing rules (RFC 9112 §6.3), the chunked
//! transfer coding (a scanner and a decoder) and byte-exact header lookup and edits on a raw
//! message (`headers`). Pure functions over byte slices: no I/O, no allocation by a length read
//! from the input.
//!
//! ```
//! use shadowtap_http1::{dechunk, headers, parse_head, request_body, BodyKind, Role};
//!
//! let head = parse_head(Role::Client, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").unwrap();
//! assert_eq!(request_body(&head), BodyKind::Length(5));
//!
//! let mut msg = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n".to_vec();
//! headers::set(&mut msg, b"host", b"b", headers::Place::First).unwrap();
//! assert_eq!(msg, b"GET / HTTP/1.1\r\nHost: b\r\n\r\n");
//! assert_eq!(dechunk(b"3\r\nabc\r\n0\r\n\r\n", 1024).unwrap().data, b"abc");
//! ```
#![deny(missing_docs)]

pub mod body;
pub mod chunked;
pub mod head;
pub mod headers;
pub mod start_line;

pub use body::{request_body, response_body, BodyKind};
pub use chunked::{
    chunk_size, dechunk, scan_chunked, ChunkProgress, Chunked, DechunkError, Dechunked,
};
pub use head::{
    ends_with_bare_lf, find_bare_cr_head_end, find_head_end, first_line_ends_bare_cr, head_quirks,
    parse_head, parse_head_tolerant, parse_head_unfolded, Head, HeadError, Method,
};
pub use headers::{EditError, Field, Place};
pub use start_line::{
    lenient_status_line, lenient_status_verdict, request_line, start_line, status_line, Leniency,
    Role, Verdict,
};
