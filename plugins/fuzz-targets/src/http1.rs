//! The HTTP/1 toolkit (`shadowtap-http1`): the header editor and the chunked decoder every
//! layer that edits or de-chunks a message uses.

use shadowtap_http1::headers::{self, Place};
use shadowtap_http1::{dechunk, scan_chunked, ChunkProgress, Chunked, DechunkError};

/// A raw message through the header editor: every field lies in the head and reads back what
/// its ranges say; setting a header makes it readable with that value, removing one leaves
/// none, and no edit touches a byte after the head.
pub fn header_editor(data: &[u8]) {
    let layout = headers::layout(data);
    assert!(layout.fields_start <= layout.fields_end && layout.fields_end <= layout.head_end);
    assert!(layout.head_end <= data.len());
    let body = &data[layout.head_end..];
    let mut first_name = None;
    for field in headers::fields(data) {
        assert!(layout.fields_start <= field.line.start && field.line.end <= layout.fields_end);
        assert!(field.line.start <= field.value_at.start && field.value_at.end <= field.line.end);
        assert_eq!(&data[field.value_at.clone()], field.value);
        assert!(!field.name.is_empty() && !field.name.contains(&b'\n'));
        assert!(field.value_unfolded().len() <= field.value.len());
        first_name.get_or_insert(field.name);
    }
    if let Some(line) = headers::request_line(data) {
        assert_eq!(&data[line.target_at.clone()], line.target);
        assert_eq!(&data[line.method_at.clone()], line.method);
    }
    let _ = headers::status_line(data);
    // (A lone CR is no start line: a field inserted after it would be one.)
    let has_start_line = !matches!(&data[layout.start_line.clone()], b"" | b"\r");
    for place in [Place::First, Place::Last] {
        let mut edited = data.to_vec();
        headers::set(&mut edited, b"X-Fuzz", b"v 1", place).expect("a valid field");
        assert!(edited.ends_with(body));
        assert!(edited.len() <= data.len() + 16);
        if has_start_line {
            let value = headers::value(&edited, b"x-fuzz").expect("the field just set");
            assert!(value.starts_with(b"v 1"), "{value:?}");
        }
    }
    let names: [&[u8]; 2] = [b"X-Fuzz", first_name.unwrap_or(b"Host")];
    for name in names {
        let mut edited = data.to_vec();
        let removed = headers::remove(&mut edited, name);
        assert!(edited.ends_with(body) && edited.len() <= data.len());
        assert!(headers::find(&edited, name).is_none(), "{removed} removed");
        if let Ok(()) = headers::set(&mut edited, name, b"again", Place::Last) {
            assert!(edited.ends_with(body));
        }
    }
}

/// A chunked body through the decoder, within a 64 KiB limit: it agrees with the scanner
/// (same end, "cut short" exactly where the scanner needs more), keeps no more data than the
/// limit or the input, and names an offset inside the input.
pub fn chunked_decoder(data: &[u8]) {
    let limit = 1 << 16;
    let decoded = dechunk(data, limit);
    let (mut state, mut pos) = (Chunked::Size, 0);
    // The scanner, fed in two parts as a stream would be.
    let split = data
        .first()
        .map_or(0, |&b| usize::from(b) % (data.len() + 1));
    let mut scanned = scan_chunked(&mut state, &data[..split], &mut pos);
    if scanned == ChunkProgress::NeedMore {
        scanned = scan_chunked(&mut state, data, &mut pos);
    }
    match decoded {
        Ok(out) => {
            assert_eq!(scanned, ChunkProgress::Done);
            assert_eq!(out.end, pos);
            assert!(out.data.len() <= limit && out.data.len() <= data.len());
            assert!(out.trailers.start <= out.trailers.end && out.trailers.end <= out.end);
            assert!(out.end <= data.len());
        }
        Err(DechunkError::Truncated { at }) => {
            assert_eq!(at, data.len());
            assert_eq!(scanned, ChunkProgress::NeedMore);
        }
        Err(DechunkError::TooLarge { at, .. }) => assert!(at <= data.len()),
        Err(DechunkError::Size { at } | DechunkError::DataEnd { at }) => {
            assert!(at <= data.len());
            assert_eq!(scanned, ChunkProgress::Invalid);
        }
        Err(DechunkError::LineTooLong { at }) => {
            assert!(at < data.len());
            assert_eq!(scanned, ChunkProgress::Invalid);
        }
    }
}
