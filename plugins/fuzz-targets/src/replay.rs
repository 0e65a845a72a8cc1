//! Replay: what output-http reads back from a target and what it sends there.

/// Responses as a target might send them, read by output-http's parser.
pub fn response_parser(data: &[u8]) {
    shadowtap_output_http::fuzzing::responses(data);
}

/// A captured request rewritten for the target (host, base path, redirects).
pub fn request_rewrite(data: &[u8]) {
    shadowtap_output_http::fuzzing::rewrites(data);
}
