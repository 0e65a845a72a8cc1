//! A test-only HTTP/2 writer: frames, and header blocks through loona-hpack's encoder (one
//! per direction, like a real peer).

use loona_hpack::Encoder;

use crate::frame;
use crate::{H2Connection, H2Event, H2Limits, Side, CLIENT_PREFACE};

pub fn frame(kind: u8, flags: u8, stream_id: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = len.to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream_id.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// Both directions of a connection being written.
pub struct Conv {
    pub client: Vec<u8>,
    pub server: Vec<u8>,
    /// Every pushed frame in order, for feeding both directions in time order.
    pub log: Vec<(Side, Vec<u8>)>,
    client_enc: Encoder<'static>,
    server_enc: Encoder<'static>,
}

impl Conv {
    /// A connection with the preface and both initial SETTINGS (and their ACKs).
    pub fn new() -> Conv {
        let mut conv = Conv::bare();
        conv.client.extend_from_slice(CLIENT_PREFACE);
        conv.push(Side::Client, frame(frame::SETTINGS, 0, 0, &[]));
        conv.push(Side::Server, frame(frame::SETTINGS, 0, 0, &[]));
        conv.push(Side::Server, frame(frame::SETTINGS, frame::ACK, 0, &[]));
        conv.push(Side::Client, frame(frame::SETTINGS, frame::ACK, 0, &[]));
        conv
    }

    /// No preface, no settings (a mid-connection capture, once the start is cut).
    pub fn bare() -> Conv {
        Conv {
            client: Vec::new(),
            server: Vec::new(),
            log: Vec::new(),
            client_enc: Encoder::new(),
            server_enc: Encoder::new(),
        }
    }

    pub fn push(&mut self, side: Side, bytes: Vec<u8>) {
        self.log.push((side, bytes.clone()));
        match side {
            Side::Client => self.client.extend(bytes),
            Side::Server => self.server.extend(bytes),
        }
    }

    pub fn block(&mut self, side: Side, fields: &[(&str, &str)]) -> Vec<u8> {
        let enc = match side {
            Side::Client => &mut self.client_enc,
            Side::Server => &mut self.server_enc,
        };
        enc.encode(fields.iter().map(|(n, v)| (n.as_bytes(), v.as_bytes())))
    }

    pub fn headers(&mut self, side: Side, stream: u32, fields: &[(&str, &str)], end_stream: bool) {
        let block = self.block(side, fields);
        let flags = frame::END_HEADERS | if end_stream { frame::END_STREAM } else { 0 };
        self.push(side, frame(frame::HEADERS, flags, stream, &block));
    }

    pub fn data(&mut self, side: Side, stream: u32, body: &[u8], end_stream: bool) {
        let flags = if end_stream { frame::END_STREAM } else { 0 };
        self.push(side, frame(frame::DATA, flags, stream, body));
    }

    pub fn get(&mut self, stream: u32, path: &str) {
        let fields = [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", path),
        ];
        self.headers(Side::Client, stream, &fields, true);
    }

    pub fn ok(&mut self, stream: u32, body: &[u8]) {
        self.headers(
            Side::Server,
            stream,
            &[(":status", "200"), ("content-type", "text/plain")],
            false,
        );
        self.data(Side::Server, stream, body, true);
    }
}

/// Runs `chunks` (side, bytes) through a connection and finishes it; tags are chunk indexes.
pub fn run(mut conn: H2Connection<usize>, chunks: &[(Side, &[u8])]) -> Vec<H2Event<usize>> {
    let mut events = Vec::new();
    for (index, (side, bytes)) in chunks.iter().enumerate() {
        conn.feed(*side, bytes, index, &mut |e| events.push(e));
    }
    conn.finish(&mut |e| events.push(e));
    events
}

/// Client bytes first, then server bytes, one chunk each.
pub fn run_conv(conv: &Conv) -> Vec<H2Event<usize>> {
    run(
        H2Connection::new(H2Limits::default()),
        &[(Side::Client, &conv.client), (Side::Server, &conv.server)],
    )
}

/// Every frame as its own segment, both directions in the order they were written.
pub fn run_ordered(conv: &Conv) -> Vec<H2Event<usize>> {
    let mut chunks: Vec<(Side, &[u8])> = vec![(Side::Client, CLIENT_PREFACE)];
    chunks.extend(
        conv.log
            .iter()
            .map(|(side, bytes)| (*side, bytes.as_slice())),
    );
    run(H2Connection::new(H2Limits::default()), &chunks)
}
