//! Arbitrary bytes as a script of segments of one connection (both directions, reordering,
//! overlaps, holes, FIN/RST/SYN, clock jumps) through a Tracker: no panic, invariants hold.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    shadowtap_capture::testutil::fuzz_http_framer(data);
});
