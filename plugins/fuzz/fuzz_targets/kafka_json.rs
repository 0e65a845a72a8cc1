//! cargo-fuzz target `kafka_json`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("kafka_json").expect("listed").run)(data);
});
