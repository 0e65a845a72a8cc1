//! The engine's message edits: the `--http-*` modifiers and `--prettify-http`.

use bytes::Bytes;
use clap::Parser;
use shadowtap::modifier::{Modifier, ModifierArgs};
use std::sync::OnceLock;

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    modifiers: ModifierArgs,
}

/// One modifier set that uses every kind of filter, limiter and rewrite.
fn modifier() -> &'static Modifier {
    static MODIFIER: OnceLock<Modifier> = OnceLock::new();
    MODIFIER.get_or_init(|| {
        let flags = Flags::parse_from([
            "fuzz",
            "--http-disallow-url",
            "^/admin",
            "--http-allow-header",
            "Accept:.",
            "--http-disallow-header",
            "User-Agent:bot",
            "--http-basic-auth-filter",
            "^user:",
            "--http-header-limiter",
            "X-Id:50%",
            "--http-param-limiter",
            "session:50%",
            "--http-set-header",
            "X-Replayed: 1",
            "--http-set-header",
            "Host: staging",
            "--http-set-param",
            "replayed=1",
            "--http-rewrite-url",
            "/v1/(.*):/v2/$1",
            "--http-rewrite-header",
            "Accept: (.*),$1; q=1",
        ]);
        Modifier::new(flags.modifiers).expect("modifiers are configured")
    })
}

/// A request through every `--http-*` filter and rewrite: a rewritten request passes the
/// modifiers again without growing without bound.
pub fn modifiers(data: &[u8]) {
    let payload = Bytes::copy_from_slice(data);
    if let Some(rewritten) = modifier().rewrite(&payload) {
        assert!(rewritten.len() <= data.len() * 4 + 4096);
    }
}

/// A message through `--prettify-http` (de-chunking, gunzip): the result stays within the limit.
pub fn prettify(data: &[u8]) {
    let limit = 1 << 16;
    if let Ok(Some(pretty)) = shadowtap::prettify::prettify(&Bytes::copy_from_slice(data), limit) {
        assert!(pretty.len() <= limit + data.len());
    }
}
