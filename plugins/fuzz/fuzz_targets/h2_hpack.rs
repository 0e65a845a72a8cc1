//! cargo-fuzz target `h2_hpack`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("h2_hpack").expect("listed").run)(data);
});
