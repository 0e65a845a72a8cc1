//! Entry point for the fuzz targets (`plugins/fuzz`): the request head parser a connection
//! runs on what a client sends. Not part of the plugin's interface.

use crate::head::{parse_head, Body};

/// Parses `data` as the start of a request: a head, when found, lies within the bytes read.
pub fn request_head(data: &[u8]) {
    if let Ok(Some(head)) = parse_head(data) {
        assert!(head.len <= data.len());
        if let Body::Length(n) = head.body {
            let _ = n.checked_add(head.len as u64);
        }
    }
}
