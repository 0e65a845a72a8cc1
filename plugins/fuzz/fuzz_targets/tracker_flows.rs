//! cargo-fuzz target `tracker_flows`: see `shadowtap_fuzz_targets` for what it feeds and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    (shadowtap_fuzz_targets::target("tracker_flows").expect("listed").run)(data);
});
