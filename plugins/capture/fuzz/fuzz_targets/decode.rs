//! Any link type (first two bytes) and frame: `decode` must never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap_capture::testutil::fuzz_decode(data);
});
