//! Entry points for the fuzz targets (`plugins/fuzz`): the response parser, and the request
//! rewriter with the HTTP/1.1-form parser and its HTTP/2 and HTTP/1.1 conversions, over
//! arbitrary bytes. Not part of the plugin's interface.

use crate::form::{parse, to_http1};
use crate::h2_request::{to_h2, H2Edits};
use crate::request::{rewrite, Edits};
use crate::response::ResponseReader;
use bytes::Bytes;
use std::io::Cursor;

/// Reads responses from `data` until it is used up or one fails; each one's kept bytes stay
/// within the keep limit and come from the input.
pub fn responses(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else {
        return;
    };
    let keep = if setup & 1 == 0 { 64 } else { 1 << 20 };
    let mut reader = ResponseReader::default();
    let mut input = Cursor::new(stream);
    for _ in 0..64 {
        reader.begin();
        match reader.read(&mut input, setup & 2 != 0, keep) {
            Ok(response) => {
                assert!(response.raw.len() <= keep);
                assert!(response.raw.len() <= stream.len());
                if !response.reusable {
                    return;
                }
            }
            Err(_) => return,
        }
    }
}

/// Rewrites `data` as a captured request with each kind of edit; a rewritten request parses
/// as the same kind of request again. Then converts it for HTTP/2 and to HTTP/1.1: an
/// HTTP/1.1 conversion parses again with the same body.
pub fn rewrites(data: &[u8]) {
    conversions(data);
    let edits = [
        Edits::default(),
        Edits {
            host: Some("staging.example:8080"),
            base_path: "/base",
            ..Edits::default()
        },
        Edits {
            replace_target: Some("/moved?x=1"),
            into_get: true,
            ..Edits::default()
        },
    ];
    let mut out = Vec::new();
    let mut again = Vec::new();
    for edit in &edits {
        if let Ok(info) = rewrite(data, edit, &mut out) {
            let repeated = rewrite(&out, &Edits::default(), &mut again)
                .expect("a rewritten request parses again");
            assert_eq!(repeated.head, info.head);
        }
    }
}

fn conversions(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    let Ok(parts) = parse(&payload) else {
        return;
    };
    let edits = H2Edits {
        scheme: "http",
        authority: "staging.example:8080",
        original_host: data.len().is_multiple_of(2),
        base_path: "/base",
    };
    let _ = to_h2(&parts, &edits);
    let mut http1 = Vec::new();
    to_http1(&parts, &mut http1);
    let http1 = Bytes::from(http1);
    if let Ok(again) = parse(&http1) {
        assert_eq!(again.body, parts.body);
    }
}
