//! cargo-fuzz target `gor_reader`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("gor_reader").expect("listed").run)(data);
});
