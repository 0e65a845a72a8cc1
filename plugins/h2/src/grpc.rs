//! gRPC over HTTP/2: the content type, `:path` → service and method, and the
//! length-prefixed message framing of the body (1-byte compressed flag, 4-byte length).

use crate::GrpcInfo;

/// Whether a `content-type` value is gRPC's (`application/grpc`, `application/grpc+proto`…).
pub fn is_grpc_content_type(value: &[u8]) -> bool {
    value.len() >= 16 && value[..16].eq_ignore_ascii_case(b"application/grpc")
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`); anything else gives empty strings.
pub fn service_method(path: &str) -> (String, String) {
    let path = path.split('?').next().unwrap_or_default();
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) if !method.contains('/') => (service.into(), method.into()),
        _ => (String::new(), String::new()),
    }
}

/// Adds the length-prefixed messages of a whole body (or its start) to `info`'s counts, as
/// the decoder counts a stream's DATA frames.
pub fn count_grpc_messages(body: &[u8], info: &mut GrpcInfo) {
    GrpcFramer::default().push(body, info);
}

/// One length-prefixed message of a gRPC body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GrpcFrame<'a> {
    /// The compressed flag (bit 0 of the prefix's first byte).
    pub compressed: bool,
    /// The length the prefix declares.
    pub declared_len: u32,
    /// The message's bytes: fewer than declared when the body ends first.
    pub data: &'a [u8],
}

impl GrpcFrame<'_> {
    /// The body ended before the declared length.
    pub fn is_cut(&self) -> bool {
        (self.data.len() as u64) < u64::from(self.declared_len)
    }
}

/// The messages of a body, in order: one per complete 5-byte prefix (as
/// [`count_grpc_messages`] counts them), the last one possibly cut short.
pub fn grpc_frames(body: &[u8]) -> GrpcFrames<'_> {
    GrpcFrames { rest: body }
}

/// The iterator of [`grpc_frames`].
#[derive(Clone, Debug)]
pub struct GrpcFrames<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for GrpcFrames<'a> {
    type Item = GrpcFrame<'a>;

    fn next(&mut self) -> Option<GrpcFrame<'a>> {
        let [flags, l0, l1, l2, l3, ..] = *self.rest else {
            self.rest = &[];
            return None;
        };
        let declared_len = u32::from_be_bytes([l0, l1, l2, l3]);
        let after = &self.rest[5..];
        let take = after
            .len()
            .min(usize::try_from(declared_len).unwrap_or(usize::MAX));
        let (data, rest) = after.split_at(take);
        self.rest = rest;
        Some(GrpcFrame {
            compressed: flags & 1 != 0,
            declared_len,
            data,
        })
    }
}

/// Counts length-prefixed messages across DATA frames without keeping their bytes.
#[derive(Debug, Default)]
pub(crate) struct GrpcFramer {
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to skip.
    remaining: u64,
}

impl GrpcFramer {
    pub fn push(&mut self, mut data: &[u8], info: &mut GrpcInfo) {
        while !data.is_empty() {
            if self.remaining > 0 {
                let skip = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= skip as u64;
                data = &data[skip..];
                continue;
            }
            let take = (5 - self.prefix_len).min(data.len());
            self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&data[..take]);
            self.prefix_len += take;
            data = &data[take..];
            if self.prefix_len == 5 {
                info.message_count += 1;
                if self.prefix[0] & 1 != 0 {
                    info.compressed_messages += 1;
                }
                let len = u32::from_be_bytes([
                    self.prefix[1],
                    self.prefix[2],
                    self.prefix[3],
                    self.prefix[4],
                ]);
                self.remaining = u64::from(len);
                self.prefix_len = 0;
            }
        }
    }
}

#[cfg(test)]
mod frame_tests {
    use super::*;

    #[test]
    fn frames_and_counts_agree_on_cut_bodies() {
        let body = [
            &[0u8, 0, 0, 0, 2, b'h', b'i'][..],
            &[1, 0, 0, 0, 0],
            &[0, 0xff, 0xff, 0xff, 0xff, b'x'],
            &[0, 0],
        ]
        .concat();
        let frames: Vec<_> = grpc_frames(&body).collect();
        assert_eq!(frames.len(), 3);
        assert_eq!(frames[0].data, b"hi");
        assert!(frames[1].compressed && frames[1].data.is_empty() && !frames[1].is_cut());
        assert!(frames[2].is_cut() && frames[2].declared_len == u32::MAX);
        let mut info = GrpcInfo::default();
        count_grpc_messages(&body, &mut info);
        assert_eq!((info.message_count, info.compressed_messages), (3, 1));
    }
}
