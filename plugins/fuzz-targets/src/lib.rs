//! The bodies of shadowtap's fuzz targets: one function per decoder reachable from outside,
//! taking arbitrary bytes, asserting the decoder's invariants and never expecting success.
//!
//! `plugins/fuzz` (cargo-fuzz, nightly) runs each under libFuzzer; the stable test in
//! `tests/corpus.rs` replays every committed seed and every past crash
//! (`plugins/fuzz/corpus/<target>/`, `plugins/fuzz/artifacts/<target>/`) through the same
//! function, so `cargo test --workspace` keeps them fixed. `examples/fuzz-all.sh` runs them all.
#![deny(missing_docs)]

mod capture;
mod engine;
mod http1;
mod listeners;
mod records;
mod replay;

/// A fuzz target: its name (the cargo-fuzz binary and corpus folder) and its body.
pub struct Target {
    /// The target's name.
    pub name: &'static str,
    /// Runs one input; panics when an invariant breaks.
    pub run: fn(&[u8]),
}

/// Every target, in the order `examples/fuzz-all.sh` runs them.
pub const TARGETS: &[Target] = &[
    Target {
        name: "gor_reader",
        run: records::gor_reader,
    },
    Target {
        name: "meta_parse",
        run: records::meta_parse,
    },
    Target {
        name: "middleware_line",
        run: records::middleware_line,
    },
    Target {
        name: "kafka_json",
        run: records::kafka_json,
    },
    Target {
        name: "pcap_reader",
        run: capture::pcap_reader,
    },
    Target {
        name: "decode",
        run: capture::decode,
    },
    Target {
        name: "http_framer",
        run: capture::http_framer,
    },
    Target {
        name: "tracker_flows",
        run: capture::tracker_flows,
    },
    Target {
        name: "header_tracker",
        run: capture::header_tracker,
    },
    Target {
        name: "http_request",
        run: listeners::http_request,
    },
    Target {
        name: "tcp_connection",
        run: listeners::tcp_connection,
    },
    Target {
        name: "response_parser",
        run: replay::response_parser,
    },
    Target {
        name: "request_rewrite",
        run: replay::request_rewrite,
    },
    Target {
        name: "modifiers",
        run: engine::modifiers,
    },
    Target {
        name: "prettify",
        run: engine::prettify,
    },
    Target {
        name: "header_editor",
        run: http1::header_editor,
    },
    Target {
        name: "chunked_decoder",
        run: http1::chunked_decoder,
    },
    Target {
        name: "tls_session",
        run: shadowtap_tls_decrypt::fuzz_session,
    },
    Target {
        name: "h2_connection",
        run: shadowtap_h2::fuzz_connection,
    },
    Target {
        name: "h2_hpack",
        run: shadowtap_h2::fuzz_hpack,
    },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}
