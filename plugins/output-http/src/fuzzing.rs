//! Entry points for the fuzz targets (`plugins/fuzz`): the response parser and the request
//! rewriter over arbitrary bytes. Not part of the plugin's interface.

use crate::request::{rewrite, Edits};
use crate::response::ResponseReader;
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
/// as the same kind of request again.
pub fn rewrites(data: &[u8]) {
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
