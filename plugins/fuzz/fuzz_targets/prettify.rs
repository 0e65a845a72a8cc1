//! cargo-fuzz target `prettify`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("prettify").expect("listed").run)(data);
});
