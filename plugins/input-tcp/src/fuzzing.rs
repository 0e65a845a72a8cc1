//! Entry point for the fuzz targets (`plugins/fuzz`): what a peer sends, through the
//! `AUTH` line and the record framing a connection runs. Not part of the plugin's interface.

use crate::{authenticate, Auth};
use shadowtap_api::wire::RecordReader;
use shadowtap_listener::Secret;
use std::io::{BufRead, Cursor};

/// Reads `data` as a connection: with a token when the first byte is odd (then only a
/// connection that authenticated goes on to records), records kept within a small cap.
pub fn connection(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else {
        return;
    };
    let mut input = Cursor::new(stream);
    if setup & 1 == 1 {
        let token = Secret::load("fuzz", Some("s3cret"), None)
            .expect("a literal token")
            .expect("given");
        match authenticate(&mut input, &token) {
            Ok(Auth::Passed) => {}
            _ => return,
        }
    }
    read_records(input, 64);
}

fn read_records(input: impl BufRead, cap: usize) {
    let mut reader = RecordReader::new(input, cap);
    for _ in 0..=cap * 1024 {
        match reader.next_record() {
            Ok(Some(record)) => assert!(record.message.payload.len() <= cap),
            Ok(None) => return,
            Err(_) => {}
        }
    }
}
