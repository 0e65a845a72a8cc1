//! cargo-fuzz target `middleware_line`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("middleware_line").expect("listed").run)(data);
});
