//! gRPC over HTTP/2: the content type, `:path` → service and method, and the
//! length-prefixed message framing of the body (1-byte compressed flag, 4-byte length).

use crate::GrpcInfo;

/// Whether a `content-type` value is gRPC's (`application/grpc`, `application/grpc+proto`…).
pub(crate) fn is_grpc_content_type(value: &[u8]) -> bool {
    value.len() >= 16 && value[..16].eq_ignore_ascii_case(b"application/grpc")
}

/// `/pkg.Service/Method` → (`pkg.Service`, `Method`); anything else gives empty strings.
pub(crate) fn service_method(path: &str) -> (String, String) {
    let path = path.split('?').next().unwrap_or_default();
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) if !method.contains('/') => (service.into(), method.into()),
        _ => (String::new(), String::new()),
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
