//! cargo-fuzz target `tls_session`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("tls_session").expect("listed").run)(data);
});
