//! cargo-fuzz target `header_tracker`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("header_tracker").expect("listed").run)(data);
});
