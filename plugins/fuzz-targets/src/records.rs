//! Records as they arrive from files, TCP peers, middleware and Kafka.

use bytes::Bytes;
use shadowtap_api::wire::{decode_hex_line, encode_hex_line, RecordReader};
use shadowtap_api::Meta;
use shadowtap_record::goreplay_json;

/// A `.gor` stream (file or input-tcp connection: both frame with `RecordReader`): records stay
/// within the cap, and the reader ends after at most one record per input byte.
pub fn gor_reader(data: &[u8]) {
    let Some((&setup, stream)) = data.split_first() else {
        return;
    };
    let cap = if setup & 1 == 0 { 16 } else { 1 << 16 };
    let mut reader = RecordReader::new(stream, cap);
    let mut records = 0usize;
    loop {
        match reader.next_record() {
            Ok(Some(record)) => assert!(record.message.payload.len() <= cap),
            Ok(None) => break,
            Err(_) => {}
        }
        records += 1;
        assert!(records <= stream.len() + 1, "the reader does not advance");
    }
}

/// A header line: what parses is written back byte for byte and keeps its fields.
pub fn meta_parse(data: &[u8]) {
    let Ok(meta) = Meta::parse(Bytes::copy_from_slice(data)) else {
        return;
    };
    let again = Meta::parse(meta.to_bytes()).expect("a parsed line parses again");
    assert_eq!(again, meta);
    assert_eq!(again.id(), meta.id());
    assert_eq!(meta.line_len(), meta.line().len());
}

/// A middleware line: a decoded message encodes to a line that decodes to the same message.
pub fn middleware_line(data: &[u8]) {
    let Ok(msg) = decode_hex_line(data) else {
        return;
    };
    let mut line = Vec::new();
    encode_hex_line(&msg, &mut line);
    let again = decode_hex_line(&line).expect("an encoded line decodes");
    assert_eq!(again.meta, msg.meta);
    assert_eq!(again.payload, msg.payload);
}

/// GoReplay's Kafka JSON: a decoded message re-encodes and decodes to the same header line.
pub fn kafka_json(data: &[u8]) {
    let Ok(msg) = goreplay_json::decode(data) else {
        return;
    };
    let mut json = Vec::new();
    goreplay_json::encode(&msg, &mut json);
    if let Ok(again) = goreplay_json::decode(&json) {
        assert_eq!(again.meta.id(), msg.meta.id());
    }
}
