//! cargo-fuzz target `chunked_decoder`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("chunked_decoder").expect("listed").run)(data);
});
