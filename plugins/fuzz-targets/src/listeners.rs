//! What peers send to the listeners, input-http and input-tcp.

/// A client's request head, as input-http parses it.
pub fn http_request(data: &[u8]) {
    shadowtap_input_http::fuzzing::request_head(data);
}

/// A peer's connection to input-tcp: the optional `AUTH` line, then `.gor` records.
pub fn tcp_connection(data: &[u8]) {
    shadowtap_input_tcp::fuzzing::connection(data);
}
