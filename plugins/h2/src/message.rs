//! One message (one direction of one stream) while it is assembled, and its HTTP/1.1 form.

use std::io::Write;

use crate::grpc::{is_grpc_content_type, service_method, GrpcFramer};
use crate::hpack::Block;
use crate::{GrpcInfo, H2Message, Side};

/// The request facts a response needs (its gRPC service and method, the scheme).
#[derive(Clone, Debug, Default)]
pub(crate) struct RequestFacts {
    pub path: Option<String>,
    pub scheme: Option<String>,
    pub grpc: bool,
}

/// A message between its HEADERS and its END_STREAM.
pub(crate) struct Building<M> {
    pub side: Side,
    pub stream_id: u32,
    head: Vec<u8>,
    body: Vec<u8>,
    trailers: Option<Vec<u8>>,
    pub first: M,
    pub last: M,
    truncated: bool,
    hpack_unknown: bool,
    had_content_length: bool,
    scheme: Option<String>,
    grpc: Option<(GrpcInfo, GrpcFramer)>,
}

/// The pseudo-header fields of a header block, the regular fields the decoder looks at, and
/// the block for writing the regular ones.
pub(crate) struct Split<'f> {
    method: Option<&'f [u8]>,
    path: Option<&'f [u8]>,
    authority: Option<&'f [u8]>,
    scheme: Option<&'f [u8]>,
    status: Option<&'f [u8]>,
    content_type: Option<&'f [u8]>,
    content_length: Option<&'f [u8]>,
    grpc_encoding: Option<&'f [u8]>,
    grpc_status: Option<&'f [u8]>,
    block: &'f Block,
}

/// One pass over the block: the last of each pseudo-header, the first of each regular
/// field looked at (names compared without case).
pub(crate) fn split(block: &Block) -> Split<'_> {
    let mut s = Split {
        method: None,
        path: None,
        authority: None,
        scheme: None,
        status: None,
        content_type: None,
        content_length: None,
        grpc_encoding: None,
        grpc_status: None,
        block,
    };
    for (name, value) in block.iter() {
        let slot = match name {
            b":method" => &mut s.method,
            b":path" => &mut s.path,
            b":authority" => &mut s.authority,
            b":scheme" => &mut s.scheme,
            b":status" => &mut s.status,
            _ => {
                let slot = regular_slot(&mut s, name);
                if let Some(slot @ None) = slot {
                    *slot = Some(value);
                }
                continue;
            }
        };
        *slot = Some(value);
    }
    s
}

fn regular_slot<'s, 'f>(s: &'s mut Split<'f>, name: &[u8]) -> Option<&'s mut Option<&'f [u8]>> {
    let slot = match name.len() {
        12 if name.eq_ignore_ascii_case(b"content-type") => &mut s.content_type,
        14 if name.eq_ignore_ascii_case(b"content-length") => &mut s.content_length,
        13 if name.eq_ignore_ascii_case(b"grpc-encoding") => &mut s.grpc_encoding,
        11 if name.eq_ignore_ascii_case(b"grpc-status") => &mut s.grpc_status,
        _ => return None,
    };
    Some(slot)
}

impl<'f> Split<'f> {
    /// The regular fields (pseudo-headers are not in the payload), in wire order, `host`
    /// fields left out when `without_host`.
    fn regular(
        &self,
        without_host: bool,
    ) -> impl Iterator<Item = (&'f [u8], &'f [u8])> + Clone + 'f {
        self.block.iter().filter(move |(name, _)| {
            let dropped =
                name.starts_with(b":") || (without_host && name.eq_ignore_ascii_case(b"host"));
            !dropped
        })
    }
}

fn text(value: Option<&[u8]>) -> Option<String> {
    value.map(|v| match std::str::from_utf8(v) {
        Ok(valid) => valid.to_owned(),
        Err(_) => String::from_utf8_lossy(v).into_owned(),
    })
}

impl Split<'_> {
    /// Whether the `:status` of a response header block is interim (1xx).
    pub fn is_interim(&self) -> bool {
        self.status.is_some_and(|s| s.len() == 3 && s[0] == b'1')
    }

    /// The request facts of a request header block.
    pub fn request_facts(&self) -> RequestFacts {
        RequestFacts {
            path: text(self.path),
            scheme: text(self.scheme),
            grpc: self.content_type.is_some_and(is_grpc_content_type),
        }
    }
}

/// `name: value\r\n` lines, `cookie` fields joined with `"; "` at the first one's place.
fn write_fields<'f>(out: &mut Vec<u8>, fields: impl Iterator<Item = (&'f [u8], &'f [u8])> + Clone) {
    let mut cookie_written = false;
    for (name, value) in fields.clone() {
        let is_cookie = name.eq_ignore_ascii_case(b"cookie");
        if is_cookie && cookie_written {
            continue;
        }
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        if is_cookie {
            cookie_written = true;
            let cookies = fields
                .clone()
                .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"));
            for (i, (_, cookie)) in cookies.enumerate() {
                if i > 0 {
                    out.extend_from_slice(b"; ");
                }
                out.extend_from_slice(cookie);
            }
        } else {
            out.extend_from_slice(value);
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl<M: Clone> Building<M> {
    /// Starts a message from its (first) header block.
    pub fn start(
        side: Side,
        stream_id: u32,
        s: &Split<'_>,
        hpack_unknown: bool,
        request: &RequestFacts,
        tag: M,
    ) -> Building<M> {
        let mut head = Vec::with_capacity(256);
        match side {
            Side::Client => {
                head.extend_from_slice(s.method.unwrap_or(b"-"));
                head.push(b' ');
                head.extend_from_slice(s.path.unwrap_or(b"-"));
                head.extend_from_slice(b" HTTP/2\r\n");
                if let Some(authority) = s.authority {
                    head.extend_from_slice(b"host: ");
                    head.extend_from_slice(authority);
                    head.extend_from_slice(b"\r\n");
                }
            }
            Side::Server => {
                head.extend_from_slice(b"HTTP/2 ");
                head.extend_from_slice(s.status.unwrap_or(b"-"));
                head.extend_from_slice(b"\r\n");
            }
        }
        // `:authority` became the `host:` line; a `host` field too would duplicate it.
        write_fields(&mut head, s.regular(s.authority.is_some()));
        let content_type = s.content_type;
        let grpc = (content_type.is_some_and(is_grpc_content_type) || request.grpc).then(|| {
            let path = text(s.path)
                .or_else(|| request.path.clone())
                .unwrap_or_default();
            let (service, method) = service_method(&path);
            let mut info = GrpcInfo {
                service,
                method,
                encoding: text(s.grpc_encoding),
                ..GrpcInfo::default()
            };
            info.status = grpc_status(s);
            (info, GrpcFramer::default())
        });
        let had_content_length = s.content_length.is_some();
        Building {
            side,
            stream_id,
            head,
            body: Vec::new(),
            trailers: None,
            first: tag.clone(),
            last: tag,
            truncated: false,
            hpack_unknown,
            had_content_length,
            scheme: text(s.scheme).or_else(|| request.scheme.clone()),
            grpc,
        }
    }

    pub fn push_body(&mut self, data: &[u8], max: usize, tag: M) {
        self.last = tag;
        if let Some((info, framer)) = &mut self.grpc {
            framer.push(data, info);
        }
        let room = max.saturating_sub(self.body.len());
        if data.len() > room {
            self.truncated = true;
        }
        self.body.extend_from_slice(&data[..data.len().min(room)]);
    }

    pub fn push_trailers(&mut self, s: &Split<'_>, hpack_unknown: bool, tag: M) {
        self.last = tag;
        self.hpack_unknown |= hpack_unknown;
        if let Some((info, _)) = &mut self.grpc {
            info.status = grpc_status(s).or(info.status);
        }
        let mut lines = Vec::new();
        write_fields(&mut lines, s.regular(false));
        self.trailers = Some(lines);
    }

    pub fn held_bytes(&self) -> usize {
        self.head.len() + self.body.len() + self.trailers.as_ref().map_or(0, Vec::len)
    }

    /// The message in its HTTP/1.1 form, in a buffer of exactly its size (which `Bytes`
    /// takes over without another allocation).
    pub fn finish(self, incomplete: bool) -> H2Message<M> {
        let mut length_line = [0u8; 40];
        let length_line = if !self.had_content_length && !self.body.is_empty() {
            let mut rest = &mut length_line[..];
            // 40 bytes hold any usize in decimal with the name.
            let _ = write!(rest, "content-length: {}\r\n", self.body.len());
            let unused = rest.len();
            &length_line[..40 - unused]
        } else {
            &[]
        };
        let trailers = self.trailers.as_ref().map_or(0, |t| t.len() + 2);
        let total = self.head.len() + length_line.len() + 2 + self.body.len() + trailers;
        let mut payload = Vec::with_capacity(total);
        payload.extend_from_slice(&self.head);
        payload.extend_from_slice(length_line);
        payload.extend_from_slice(b"\r\n");
        payload.extend_from_slice(&self.body);
        if let Some(trailers) = &self.trailers {
            payload.extend_from_slice(trailers);
            payload.extend_from_slice(b"\r\n");
        }
        H2Message {
            side: self.side,
            stream_id: self.stream_id,
            payload,
            first: self.first,
            last: self.last,
            truncated: self.truncated,
            incomplete,
            hpack_unknown: self.hpack_unknown,
            scheme: self.scheme,
            grpc: self.grpc.map(|(info, _)| info),
        }
    }
}

fn grpc_status(fields: &Split<'_>) -> Option<u32> {
    fields
        .grpc_status
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}
