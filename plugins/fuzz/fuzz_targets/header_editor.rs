//! cargo-fuzz target `header_editor`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("header_editor").expect("listed").run)(data);
});
