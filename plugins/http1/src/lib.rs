//! `shadowtap-http1`: the one HTTP/1.x toolkit every shadowtap layer uses — start-line
//! recognition, header-block parsing, body framing rules (RFC 9112 §6.3) and the chunked
//! transfer coding. Pure functions over byte slices: no I/O, no allocation by a length read from
//! the input.
//!
//! ```
//! use shadowtap_http1::{parse_head, request_body, BodyKind, Role};
//!
//! let head = parse_head(Role::Client, b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").unwrap();
//! assert_eq!(request_body(&head), BodyKind::Length(5));
//! ```
#![deny(missing_docs)]

pub mod body;
pub mod chunked;
pub mod head;
pub mod start_line;

pub use body::{request_body, response_body, BodyKind};
pub use chunked::{scan_chunked, ChunkProgress, Chunked};
pub use head::{
    ends_with_bare_lf, find_bare_cr_head_end, find_head_end, first_line_ends_bare_cr, head_quirks,
    parse_head, parse_head_tolerant, parse_head_unfolded, Head, HeadError, Method,
};
pub use start_line::{
    lenient_status_line, lenient_status_verdict, request_line, start_line, status_line, Leniency,
    Role, Verdict,
};
