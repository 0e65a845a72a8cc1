//! One message (one direction of one stream) while it is assembled, and its HTTP/1.1 form.

use crate::grpc::{is_grpc_content_type, service_method, GrpcFramer};
use crate::hpack::Field;
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

/// The pseudo-header fields of a header block, and the regular ones.
#[derive(Default)]
struct Split<'f> {
    method: Option<&'f [u8]>,
    path: Option<&'f [u8]>,
    authority: Option<&'f [u8]>,
    scheme: Option<&'f [u8]>,
    status: Option<&'f [u8]>,
    regular: Vec<&'f Field>,
}

fn split(fields: &[Field]) -> Split<'_> {
    let mut s = Split::default();
    for field in fields {
        let value = Some(field.1.as_slice());
        match field.0.as_slice() {
            b":method" => s.method = value,
            b":path" => s.path = value,
            b":authority" => s.authority = value,
            b":scheme" => s.scheme = value,
            b":status" => s.status = value,
            name if name.starts_with(b":") => {}
            _ => s.regular.push(field),
        }
    }
    s
}

fn text(value: Option<&[u8]>) -> Option<String> {
    value.map(|v| String::from_utf8_lossy(v).into_owned())
}

fn regular_value<'f>(fields: &[&'f Field], name: &[u8]) -> Option<&'f [u8]> {
    fields
        .iter()
        .find(|f| f.0.eq_ignore_ascii_case(name))
        .map(|f| f.1.as_slice())
}

/// The `:status` of a response header block, when it is interim (1xx).
pub(crate) fn is_interim(fields: &[Field]) -> bool {
    split(fields)
        .status
        .is_some_and(|s| s.len() == 3 && s[0] == b'1')
}

/// The request facts of a request header block.
pub(crate) fn request_facts(fields: &[Field]) -> RequestFacts {
    let s = split(fields);
    RequestFacts {
        path: text(s.path),
        scheme: text(s.scheme),
        grpc: regular_value(&s.regular, b"content-type").is_some_and(is_grpc_content_type),
    }
}

/// `name: value\r\n` lines, `cookie` fields joined with `"; "` at the first one's place.
fn write_fields(out: &mut Vec<u8>, fields: &[&Field]) {
    let mut cookie_written = false;
    for field in fields {
        let is_cookie = field.0.eq_ignore_ascii_case(b"cookie");
        if is_cookie && cookie_written {
            continue;
        }
        out.extend_from_slice(&field.0);
        out.extend_from_slice(b": ");
        if is_cookie {
            cookie_written = true;
            let cookies: Vec<&[u8]> = fields
                .iter()
                .filter(|f| f.0.eq_ignore_ascii_case(b"cookie"))
                .map(|f| f.1.as_slice())
                .collect();
            out.extend_from_slice(&cookies.join(&b"; "[..]));
        } else {
            out.extend_from_slice(&field.1);
        }
        out.extend_from_slice(b"\r\n");
    }
}

impl<M: Clone> Building<M> {
    /// Starts a message from its (first) header block.
    pub fn start(
        side: Side,
        stream_id: u32,
        fields: &[Field],
        hpack_unknown: bool,
        request: &RequestFacts,
        tag: M,
    ) -> Building<M> {
        let mut s = split(fields);
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
        if s.authority.is_some() {
            // `:authority` became the `host:` line; a `host` field too would duplicate it.
            s.regular.retain(|f| !f.0.eq_ignore_ascii_case(b"host"));
        }
        write_fields(&mut head, &s.regular);
        let content_type = regular_value(&s.regular, b"content-type");
        let grpc = (content_type.is_some_and(is_grpc_content_type) || request.grpc).then(|| {
            let path = text(s.path)
                .or_else(|| request.path.clone())
                .unwrap_or_default();
            let (service, method) = service_method(&path);
            let mut info = GrpcInfo {
                service,
                method,
                encoding: text(regular_value(&s.regular, b"grpc-encoding")),
                ..GrpcInfo::default()
            };
            info.status = grpc_status(&s.regular);
            (info, GrpcFramer::default())
        });
        let had_content_length = regular_value(&s.regular, b"content-length").is_some();
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

    pub fn push_trailers(&mut self, fields: &[Field], hpack_unknown: bool, tag: M) {
        self.last = tag;
        self.hpack_unknown |= hpack_unknown;
        let s = split(fields);
        if let Some((info, _)) = &mut self.grpc {
            info.status = grpc_status(&s.regular).or(info.status);
        }
        let mut lines = Vec::new();
        write_fields(&mut lines, &s.regular);
        self.trailers = Some(lines);
    }

    pub fn held_bytes(&self) -> usize {
        self.head.len() + self.body.len() + self.trailers.as_ref().map_or(0, Vec::len)
    }

    pub fn finish(self, incomplete: bool) -> H2Message<M> {
        let mut payload = self.head;
        if !self.had_content_length && !self.body.is_empty() {
            payload
                .extend_from_slice(format!("content-length: {}\r\n", self.body.len()).as_bytes());
        }
        payload.extend_from_slice(b"\r\n");
        payload.extend_from_slice(&self.body);
        if let Some(trailers) = self.trailers {
            payload.extend_from_slice(&trailers);
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

fn grpc_status(fields: &[&Field]) -> Option<u32> {
    regular_value(fields, b"grpc-status")
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse().ok())
}
