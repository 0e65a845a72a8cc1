//! cargo-fuzz target `meta_parse`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("meta_parse").expect("listed").run)(data);
});
