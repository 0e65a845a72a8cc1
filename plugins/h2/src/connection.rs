//! The per-connection state: both directions' frame buffers and HPACK decoders, and the
//! streams with the messages being assembled.

use std::collections::{HashMap, VecDeque};

use crate::frame::{self, FrameHeader, Resync, HEADER_LEN};
use crate::hpack::{Block, HeaderDecoder};
use crate::message::{split, Building, RequestFacts};
use crate::{preface_verdict, H2Event, H2Failure, H2Limits, Side, CLIENT_PREFACE};

type Sink<'a, M> = dyn FnMut(H2Event<M>) + 'a;

/// Passive decoder of one HTTP/2 connection (see the crate documentation).
pub struct H2Connection<M> {
    limits: H2Limits,
    dirs: [Direction<M>; 2],
    streams: HashMap<u32, Stream<M>, StreamIdHash>,
    /// What the open messages hold ([`Building::held_bytes`] summed).
    message_bytes: usize,
    /// Bytes were missed (mid-connection start or a gap): frames on unknown streams are
    /// expected and ignored quietly, and a response may open a stream.
    lossy: bool,
    /// Only the client side is decoded ([`H2Connection::requests_only`]).
    requests_only: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the client preface.
    Preface,
    /// Mid-connection start on the client side: a preface, or else resync.
    MaybePreface,
    Frames,
    /// Looking for the next plausible frame header.
    Resync,
    Stopped,
}

struct Direction<M> {
    phase: Phase,
    buf: Vec<u8>,
    /// The direction's byte offset of `buf[0]`.
    base: u64,
    /// The tags of the buffered segments, with the offset just past each.
    segments: VecDeque<(u64, M)>,
    block: Option<PendingBlock<M>>,
    hpack: HeaderDecoder,
    /// The last decoded header block (reused).
    fields: Block,
    unknown_reported: bool,
    /// Bytes of a frame damaged by a gap still to drop before the next frame header.
    skip: u64,
    /// The frame boundaries were found by the heuristic, not followed from the start.
    resynced: bool,
    /// A failure was reported since the last gap (only one while resynchronising).
    failure_reported: bool,
    /// SETTINGS_HEADER_TABLE_SIZE of each SETTINGS this side sent, awaiting the peer's ACK.
    advertised: VecDeque<Option<usize>>,
}

/// What the frame opening a header block (HEADERS or PUSH_PROMISE) said.
struct BlockStart<M> {
    stream_id: u32,
    end_stream: bool,
    promised: Option<u32>,
    first: M,
}

/// A header block waiting for its CONTINUATION frames.
struct PendingBlock<M> {
    start: BlockStart<M>,
    bytes: Vec<u8>,
}

enum Half<M> {
    Idle,
    Open(Box<Building<M>>),
    Done,
}

struct Stream<M> {
    halves: [Half<M>; 2],
    request: RequestFacts,
}

impl<M> Stream<M> {
    fn new() -> Stream<M> {
        Stream {
            halves: [Half::Idle, Half::Idle],
            request: RequestFacts::default(),
        }
    }

    fn closed(&self) -> bool {
        self.halves.iter().all(|h| matches!(h, Half::Done))
    }
}

impl<M> Direction<M> {
    fn new(phase: Phase, hpack: HeaderDecoder) -> Direction<M> {
        Direction {
            phase,
            buf: Vec::new(),
            base: 0,
            segments: VecDeque::new(),
            block: None,
            hpack,
            fields: Block::default(),
            unknown_reported: false,
            skip: 0,
            resynced: false,
            failure_reported: false,
            advertised: VecDeque::new(),
        }
    }

    fn tag_at(&self, offset: u64) -> Option<&M> {
        self.segments
            .iter()
            .find(|(end, _)| *end > offset)
            .or(self.segments.back())
            .map(|(_, tag)| tag)
    }

    fn lose_hpack(&mut self) {
        if self.hpack.is_known() {
            self.hpack.lose_state();
            self.unknown_reported = false;
        }
    }

    /// Drops the first `n` buffered bytes.
    fn consume(&mut self, n: usize) {
        self.buf.drain(..n);
        self.advance(n);
    }

    /// The first `n` bytes from `base` on were decoded (forgets their segments' tags).
    fn advance(&mut self, n: usize) {
        self.base += n as u64;
        while self
            .segments
            .front()
            .is_some_and(|(end, _)| *end <= self.base)
        {
            self.segments.pop_front();
        }
    }
}

/// A complete frame of one direction, with the tags of its first and last byte.
struct Frame<'b, M> {
    side: Side,
    header: FrameHeader,
    payload: &'b [u8],
    first: M,
    last: M,
}

impl<M: Clone> H2Connection<M> {
    /// A connection observed from its start: the client preface comes first.
    pub fn new(limits: H2Limits) -> Self {
        let dirs = [
            Direction::new(Phase::Preface, HeaderDecoder::new()),
            Direction::new(Phase::Frames, HeaderDecoder::new()),
        ];
        H2Connection::with_directions(limits, dirs, false)
    }

    /// A connection with no stream yet whose directions start as `dirs` (`lossy`: bytes were
    /// missed before the first).
    fn with_directions(limits: H2Limits, dirs: [Direction<M>; 2], lossy: bool) -> Self {
        H2Connection {
            limits,
            dirs,
            streams: HashMap::default(),
            message_bytes: 0,
            lossy,
            requests_only: false,
        }
    }

    /// A connection switched from HTTP/1.1 by `Upgrade: h2c` (RFC 7540 §3.2): the caller feeds
    /// the client bytes from the preface that follows the upgrade request and the server bytes
    /// from after the `101` response. Stream 1 is the upgrade request (already sent as
    /// HTTP/1.1), so only its response comes out.
    pub fn upgraded(limits: H2Limits) -> Self {
        let mut conn = H2Connection::new(limits);
        let mut stream = Stream::new();
        stream.halves[Side::Client.index()] = Half::Done;
        conn.streams.insert(1, stream);
        conn
    }

    /// A connection whose capture started mid-way: frame boundaries are found
    /// heuristically and both HPACK tables start unknown (a client preface at the very start
    /// is still recognised, and the client table is then known).
    pub fn mid_stream(limits: H2Limits) -> Self {
        let dirs = [
            Direction::new(Phase::MaybePreface, HeaderDecoder::unknown()),
            Direction::new(Phase::Resync, HeaderDecoder::unknown()),
        ];
        H2Connection::with_directions(limits, dirs, true)
    }

    /// Decodes the client's side only, for a caller that does not want responses and may not
    /// see the server's bytes at all: server bytes and gaps are ignored, and a stream ends
    /// with its request (otherwise streams would wait for responses that never come, and
    /// after [`H2Limits::max_streams`] of them every new one would be refused).
    pub fn requests_only(mut self) -> Self {
        self.requests_only = true;
        // An upgraded connection's stream 1 has only its response to come.
        self.streams
            .retain(|_, s| !matches!(s.halves[Side::Client.index()], Half::Done));
        self
    }

    /// Bytes held: unparsed frames, header blocks, messages being assembled.
    pub fn buffered_bytes(&self) -> usize {
        let dirs: usize = self
            .dirs
            .iter()
            .map(|d| d.buf.len() + d.block.as_ref().map_or(0, |b| b.bytes.len()))
            .sum();
        debug_assert_eq!(self.message_bytes, self.summed_message_bytes());
        dirs + self.message_bytes
    }

    fn summed_message_bytes(&self) -> usize {
        self.streams
            .values()
            .flat_map(|s| s.halves.iter())
            .map(|h| match h {
                Half::Open(b) => b.held_bytes(),
                _ => 0,
            })
            .sum()
    }

    /// The next in-order bytes of `side`, from a segment tagged `tag`.
    pub fn feed(&mut self, side: Side, data: &[u8], tag: M, out: &mut dyn FnMut(H2Event<M>)) {
        if self.requests_only && side == Side::Server {
            return;
        }
        let dir = &mut self.dirs[side.index()];
        let skipped = data
            .len()
            .min(usize::try_from(dir.skip).unwrap_or(usize::MAX));
        dir.skip -= skipped as u64;
        dir.base += skipped as u64;
        let data = &data[skipped..];
        if dir.phase == Phase::Stopped || data.is_empty() {
            dir.base += data.len() as u64;
            return;
        }
        let end = dir.base + (dir.buf.len() + data.len()) as u64;
        dir.segments.push_back((end, tag));
        if dir.buf.is_empty() {
            self.process_unbuffered(side, data, out);
        } else {
            dir.buf.extend_from_slice(data);
            self.process(side, out);
        }
    }

    /// `len` bytes of `side` were lost. When the hole ends inside the frame being received
    /// (its header is buffered), the next frame boundary is known: only that frame is lost
    /// (its stream's message ends incomplete; a header block loses the HPACK state). Otherwise
    /// every open message of `side` ends incomplete, its HPACK state becomes unknown and
    /// decoding resumes at the next plausible frame header.
    pub fn gap(&mut self, side: Side, len: u64, out: &mut dyn FnMut(H2Event<M>)) {
        if len == 0 || (self.requests_only && side == Side::Server) {
            return;
        }
        self.lossy = true;
        let dir = &mut self.dirs[side.index()];
        let within_frame = match (dir.phase, FrameHeader::parse(&dir.buf)) {
            (Phase::Frames, Some(header)) => {
                let missing = (HEADER_LEN + header.len).saturating_sub(dir.buf.len()) as u64;
                (missing > len).then(|| (header, missing - len))
            }
            _ => None,
        };
        match within_frame {
            Some((header, skip)) => self.lose_frame(side, header, skip, out),
            None => self.close_side(side, out),
        }
        let dir = &mut self.dirs[side.index()];
        dir.base += dir.buf.len() as u64 + len;
        dir.buf.clear();
        dir.segments.clear();
        dir.failure_reported = false;
        if within_frame.is_none() {
            dir.block = None;
            dir.skip = 0;
            dir.lose_hpack();
            if dir.phase != Phase::Stopped {
                dir.phase = Phase::Resync;
            }
        }
    }

    /// The frame being received lost bytes in its middle; `skip` more of its bytes will come.
    fn lose_frame(
        &mut self,
        side: Side,
        header: FrameHeader,
        skip: u64,
        out: &mut dyn FnMut(H2Event<M>),
    ) {
        let dir = &mut self.dirs[side.index()];
        dir.skip = skip;
        match header.kind {
            frame::HEADERS | frame::CONTINUATION | frame::PUSH_PROMISE => {
                dir.block = None;
                dir.lose_hpack();
                if header.kind == frame::HEADERS {
                    self.end_half(header.stream_id, side, true, out);
                }
            }
            frame::DATA => self.end_half(header.stream_id, side, true, out),
            _ => {}
        }
    }

    /// The connection ended: every open message is emitted incomplete.
    pub fn finish(&mut self, out: &mut dyn FnMut(H2Event<M>)) {
        let mut ids: Vec<u32> = self.streams.keys().copied().collect();
        ids.sort_unstable();
        for id in ids {
            self.close_stream(id, out);
        }
        for dir in &mut self.dirs {
            dir.block = None;
            let n = dir.buf.len();
            dir.consume(n);
        }
    }

    fn process(&mut self, side: Side, out: &mut Sink<'_, M>) {
        let buf = std::mem::take(&mut self.dirs[side.index()].buf);
        let pos = self.steps(side, &buf, out);
        let dir = &mut self.dirs[side.index()];
        dir.buf = buf;
        dir.consume(pos);
    }

    /// [`Self::process`] on bytes fed while nothing was buffered: the frames are decoded
    /// where they are and only an incomplete tail is copied.
    fn process_unbuffered(&mut self, side: Side, data: &[u8], out: &mut Sink<'_, M>) {
        let pos = self.steps(side, data, out);
        let dir = &mut self.dirs[side.index()];
        dir.advance(pos);
        dir.buf.extend_from_slice(&data[pos..]);
    }

    /// Steps through `buf` (the bytes from the direction's `base` on) as far as they go;
    /// returns how many were used up (all of them when the direction stopped).
    fn steps(&mut self, side: Side, buf: &[u8], out: &mut Sink<'_, M>) -> usize {
        let mut pos = 0;
        while pos < buf.len() && self.step(side, buf, &mut pos, out) {}
        if self.dirs[side.index()].phase == Phase::Stopped {
            pos = buf.len();
        }
        pos
    }

    /// One step on the buffered bytes from `pos`; false when more bytes are needed.
    fn step(&mut self, side: Side, buf: &[u8], pos: &mut usize, out: &mut Sink<'_, M>) -> bool {
        let rest = &buf[*pos..];
        let dir = &mut self.dirs[side.index()];
        match dir.phase {
            Phase::Stopped => false,
            Phase::Preface | Phase::MaybePreface => match preface_verdict(rest) {
                None => false,
                Some(true) => {
                    if dir.phase == Phase::MaybePreface && dir.base == 0 && *pos == 0 {
                        dir.hpack = HeaderDecoder::new();
                    }
                    *pos += CLIENT_PREFACE.len();
                    dir.phase = Phase::Frames;
                    true
                }
                Some(false) if dir.phase == Phase::MaybePreface => {
                    dir.phase = Phase::Resync;
                    true
                }
                Some(false) => {
                    for d in &mut self.dirs {
                        d.phase = Phase::Stopped;
                    }
                    out(problem(H2Failure::BadPreface, None));
                    false
                }
            },
            Phase::Resync => match frame::resync(rest) {
                Resync::Found(offset) => {
                    *pos += offset;
                    dir.phase = Phase::Frames;
                    dir.resynced = true;
                    true
                }
                Resync::NeedMore(offset) => {
                    *pos += offset;
                    false
                }
            },
            Phase::Frames => self.frame_step(side, buf, pos, out),
        }
    }

    fn frame_step(
        &mut self,
        side: Side,
        buf: &[u8],
        pos: &mut usize,
        out: &mut Sink<'_, M>,
    ) -> bool {
        let Some(header) = FrameHeader::parse(&buf[*pos..]) else {
            return false;
        };
        if header.len > self.limits.max_frame_bytes {
            self.stop(side, H2Failure::FrameTooLarge, out);
            *pos += 1; // when resynchronising again, not on the same header
            return self.dirs[side.index()].phase != Phase::Stopped;
        }
        let total = HEADER_LEN + header.len;
        if buf.len() - *pos < total {
            return false;
        }
        let dir = &self.dirs[side.index()];
        let start = dir.base + *pos as u64;
        let (Some(first), Some(last)) = (dir.tag_at(start), dir.tag_at(start + total as u64 - 1))
        else {
            return false;
        };
        let frame = Frame {
            side,
            header,
            payload: &buf[*pos + HEADER_LEN..*pos + total],
            first: first.clone(),
            last: last.clone(),
        };
        *pos += total;
        self.on_frame(frame, out);
        self.dirs[side.index()].phase != Phase::Stopped
    }

    /// A connection-level failure on `side`: the direction stops, unless its frame boundaries
    /// were only guessed (resynchronised), in which case the guess was likely wrong and it
    /// resynchronises again (reporting once until the next gap).
    fn stop(&mut self, side: Side, failure: H2Failure, out: &mut Sink<'_, M>) {
        let dir = &mut self.dirs[side.index()];
        dir.block = None;
        if dir.resynced {
            dir.phase = Phase::Resync;
            dir.hpack.lose_state();
            if std::mem::replace(&mut dir.failure_reported, true) {
                return;
            }
        } else {
            dir.phase = Phase::Stopped;
        }
        out(problem(failure, None));
    }

    fn on_frame(&mut self, frame: Frame<'_, M>, out: &mut Sink<'_, M>) {
        let h = frame.header;
        let pending = self.dirs[frame.side.index()]
            .block
            .as_ref()
            .map(|b| b.start.stream_id);
        if pending.is_some_and(|id| h.kind != frame::CONTINUATION || h.stream_id != id) {
            return self.stop(frame.side, H2Failure::ContinuationExpected, out);
        }
        if !h.well_formed() {
            return self.malformed(frame.side, h, out);
        }
        match h.kind {
            frame::DATA => self.on_data(frame, out),
            frame::HEADERS => self.on_headers(frame, out),
            frame::PUSH_PROMISE => self.on_push_promise(frame, out),
            frame::CONTINUATION => self.on_continuation(frame, out),
            // A reset of a finished stream (nginx after a complete response) is no news.
            frame::RST_STREAM if self.streams.contains_key(&h.stream_id) => {
                self.close_stream(h.stream_id, out);
                out(problem(H2Failure::StreamReset, Some(h.stream_id)));
            }
            frame::SETTINGS => self.on_settings(frame),
            frame::GOAWAY => self.on_goaway(frame, out),
            frame::WINDOW_UPDATE => {
                let increment = u32::from_be_bytes(prefix4(frame.payload)) & 0x7fff_ffff;
                if increment == 0 {
                    out(problem(H2Failure::FlowControl, stream_of(h.stream_id)));
                }
            }
            _ => {} // PRIORITY, PING, unknown types
        }
    }

    /// A frame breaking RFC 9113 §6's rules for its type. Its length still delimits it, so
    /// only a header block (whose loss puts HPACK out of step) stops the direction; any other
    /// frame is skipped, the streams around it unharmed.
    fn malformed(&mut self, side: Side, h: FrameHeader, out: &mut Sink<'_, M>) {
        match h.kind {
            frame::HEADERS | frame::PUSH_PROMISE | frame::CONTINUATION => {
                self.stop(side, H2Failure::MalformedFrame, out)
            }
            _ => out(problem(H2Failure::MalformedFrame, stream_of(h.stream_id))),
        }
    }

    fn on_data(&mut self, frame: Frame<'_, M>, out: &mut Sink<'_, M>) {
        let id = frame.header.stream_id;
        let Some(data) = frame::unpad(frame.header.flags, frame.payload) else {
            return out(problem(H2Failure::MalformedFrame, Some(id)));
        };
        let max = self.limits.max_message_bytes;
        let side = frame.side.index();
        match self.streams.get_mut(&id).map(|s| &mut s.halves[side]) {
            Some(Half::Open(message)) => {
                let before = message.held_bytes();
                message.push_body(data, max, frame.last.clone());
                self.message_bytes += message.held_bytes() - before;
            }
            _ if self.lossy => return,
            _ => return out(problem(H2Failure::ProtocolError, Some(id))),
        }
        if frame.header.flags & frame::END_STREAM != 0 {
            self.end_half(id, frame.side, false, out);
        }
    }

    fn on_headers(&mut self, frame: Frame<'_, M>, out: &mut Sink<'_, M>) {
        let h = frame.header;
        let mut block = frame::unpad(h.flags, frame.payload);
        if h.flags & frame::PRIORITY_FLAG != 0 {
            block = block.and_then(|b| b.get(5..));
        }
        let Some(block) = block else {
            return self.stop(frame.side, H2Failure::MalformedFrame, out);
        };
        let start = BlockStart {
            stream_id: h.stream_id,
            end_stream: h.flags & frame::END_STREAM != 0,
            promised: None,
            first: frame.first.clone(),
        };
        self.begin_block(&frame, start, block, out);
    }

    fn on_push_promise(&mut self, frame: Frame<'_, M>, out: &mut Sink<'_, M>) {
        let unpadded = frame::unpad(frame.header.flags, frame.payload);
        let Some((promised, block)) = unpadded.and_then(|p| p.split_first_chunk::<4>()) else {
            return self.stop(frame.side, H2Failure::MalformedFrame, out);
        };
        let start = BlockStart {
            stream_id: frame.header.stream_id,
            end_stream: false,
            promised: Some(u32::from_be_bytes(*promised) & 0x7fff_ffff),
            first: frame.first.clone(),
        };
        self.begin_block(&frame, start, block, out);
    }

    /// A block in one frame (the usual case) is decoded from the frame's bytes, without a copy.
    fn begin_block(
        &mut self,
        frame: &Frame<'_, M>,
        start: BlockStart<M>,
        block: &[u8],
        out: &mut Sink<'_, M>,
    ) {
        if block.len() > self.limits.max_header_block {
            return self.stop(frame.side, H2Failure::HpackError, out);
        }
        if frame.header.flags & frame::END_HEADERS != 0 {
            self.complete_block(frame.side, &start, block, frame.last.clone(), out);
        } else {
            let bytes = block.to_vec();
            self.dirs[frame.side.index()].block = Some(PendingBlock { start, bytes });
        }
    }

    fn on_continuation(&mut self, frame: Frame<'_, M>, out: &mut Sink<'_, M>) {
        let side = frame.side;
        let Some(mut pending) = self.dirs[side.index()].block.take() else {
            if self.lossy && !self.dirs[side.index()].hpack.is_known() {
                return; // resynchronised into the middle of a block
            }
            return self.stop(side, H2Failure::MalformedFrame, out);
        };
        if pending.bytes.len() + frame.payload.len() > self.limits.max_header_block {
            return self.stop(side, H2Failure::HpackError, out);
        }
        pending.bytes.extend_from_slice(frame.payload);
        if frame.header.flags & frame::END_HEADERS != 0 {
            self.complete_block(side, &pending.start, &pending.bytes, frame.last, out);
        } else {
            self.dirs[side.index()].block = Some(pending);
        }
    }

    fn complete_block(
        &mut self,
        side: Side,
        block: &BlockStart<M>,
        bytes: &[u8],
        last: M,
        out: &mut Sink<'_, M>,
    ) {
        let dir = &mut self.dirs[side.index()];
        let mut fields = std::mem::take(&mut dir.fields);
        if dir.hpack.decode(bytes, &mut fields).is_err() {
            dir.fields = fields;
            return self.stop(side, H2Failure::HpackError, out);
        }
        if fields.unknown && !dir.unknown_reported {
            dir.unknown_reported = true;
            out(problem(H2Failure::HpackStateUnknown, Some(block.stream_id)));
        }
        match block.promised {
            Some(promised) => self.on_promise(promised, &fields, out),
            None => self.on_header_fields(side, block, &fields, last, out),
        }
        self.dirs[side.index()].fields = fields;
    }

    fn on_promise(&mut self, promised: u32, fields: &Block, out: &mut Sink<'_, M>) {
        if self.streams.contains_key(&promised) || promised == 0 {
            return out(problem(H2Failure::ProtocolError, Some(promised)));
        }
        let Some(stream) = self.open_stream(promised, out) else {
            return;
        };
        stream.halves[Side::Client.index()] = Half::Done;
        stream.request = split(fields).request_facts();
    }

    fn open_stream(&mut self, id: u32, out: &mut Sink<'_, M>) -> Option<&mut Stream<M>> {
        if self.streams.len() >= self.limits.max_streams {
            out(problem(H2Failure::TooManyStreams, Some(id)));
            return None;
        }
        let requests_only = self.requests_only;
        Some(self.streams.entry(id).or_insert_with(|| {
            let mut stream = Stream::new();
            if requests_only {
                stream.halves[Side::Server.index()] = Half::Done;
            }
            stream
        }))
    }

    fn on_header_fields(
        &mut self,
        side: Side,
        block: &BlockStart<M>,
        fields: &Block,
        last: M,
        out: &mut Sink<'_, M>,
    ) {
        let id = block.stream_id;
        let unknown = fields.unknown;
        let fields = split(fields);
        if !self.streams.contains_key(&id) {
            if side == Side::Server && !self.lossy {
                return out(problem(H2Failure::ProtocolError, Some(id)));
            }
            let Some(stream) = self.open_stream(id, out) else {
                return;
            };
            if side == Side::Server {
                stream.halves[Side::Client.index()] = Half::Done; // the request was missed
            }
        }
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let half = &mut stream.halves[side.index()];
        match half {
            Half::Idle if side == Side::Server && fields.is_interim() => {
                let message = Building::start(
                    side,
                    id,
                    &fields,
                    unknown,
                    &stream.request,
                    block.first.clone(),
                );
                let mut message = message;
                message.last = last;
                return out(H2Event::Message(message.finish(false)));
            }
            Half::Idle => {
                if side == Side::Client {
                    stream.request = fields.request_facts();
                }
                let mut message = Building::start(
                    side,
                    id,
                    &fields,
                    unknown,
                    &stream.request,
                    block.first.clone(),
                );
                message.last = last;
                self.message_bytes += message.held_bytes();
                *half = Half::Open(Box::new(message));
            }
            Half::Open(message) => {
                let before = message.held_bytes();
                message.push_trailers(&fields, unknown, last);
                self.message_bytes = self.message_bytes - before + message.held_bytes();
            }
            Half::Done => return out(problem(H2Failure::ProtocolError, Some(id))),
        }
        if block.end_stream {
            self.end_half(id, side, false, out);
        }
    }

    fn on_settings(&mut self, frame: Frame<'_, M>) {
        let side = frame.side;
        if frame.header.flags & frame::ACK != 0 {
            // `side` acknowledges the peer's settings: they bound `side`'s encoder.
            let acked = self.dirs[side.peer().index()].advertised.pop_front();
            if let Some(Some(size)) = acked {
                self.dirs[side.index()].hpack.set_allowed_table_size(size);
            }
            return;
        }
        let table_size = frame
            .payload
            .chunks_exact(6)
            .filter(|s| u16::from_be_bytes([s[0], s[1]]) == frame::SETTINGS_HEADER_TABLE_SIZE)
            .map(|s| u32::from_be_bytes([s[2], s[3], s[4], s[5]]) as usize)
            .next_back();
        let advertised = &mut self.dirs[side.index()].advertised;
        if advertised.len() < 16 {
            advertised.push_back(table_size);
        }
    }

    fn on_goaway(&mut self, frame: Frame<'_, M>, out: &mut Sink<'_, M>) {
        let last_id = u32::from_be_bytes(prefix4(frame.payload)) & 0x7fff_ffff;
        // Streams the sender's peer opened above `last_id` were not (and will not be) processed.
        let peer_parity = match frame.side {
            Side::Server => 1,
            Side::Client => 0,
        };
        let mut abandoned: Vec<u32> = self
            .streams
            .keys()
            .copied()
            .filter(|id| *id > last_id && id % 2 == peer_parity)
            .collect();
        abandoned.sort_unstable();
        let error_code = u32::from_be_bytes(prefix4(frame.payload.get(4..).unwrap_or_default()));
        if error_code != 0 || !abandoned.is_empty() {
            out(problem(H2Failure::GoAway, None));
        }
        for id in abandoned {
            self.close_stream(id, out);
        }
    }

    /// The message of `side` on stream `id` ended.
    fn end_half(&mut self, id: u32, side: Side, incomplete: bool, out: &mut Sink<'_, M>) {
        let Some(stream) = self.streams.get_mut(&id) else {
            return;
        };
        let half = std::mem::replace(&mut stream.halves[side.index()], Half::Done);
        if let Half::Open(message) = half {
            self.message_bytes -= message.held_bytes();
            out(H2Event::Message(message.finish(incomplete)));
        }
        if stream.closed() {
            self.streams.remove(&id);
        }
    }

    /// Emits the open messages of stream `id` incomplete and forgets it.
    fn close_stream(&mut self, id: u32, out: &mut Sink<'_, M>) {
        self.end_half(id, Side::Client, true, out);
        self.end_half(id, Side::Server, true, out);
        self.streams.remove(&id);
    }

    /// Emits every open message of `side` incomplete (its bytes were lost).
    fn close_side(&mut self, side: Side, out: &mut Sink<'_, M>) {
        let mut ids: Vec<u32> = self
            .streams
            .iter()
            .filter(|(_, s)| matches!(s.halves[side.index()], Half::Open(_)))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.end_half(id, side, true, out);
        }
    }
}

/// Hashes stream ids with one multiply (stream ids are counters; the map is bounded by
/// [`H2Limits::max_streams`], which bounds the harm of colliding ids too).
#[derive(Clone, Copy, Default)]
struct StreamIdHash;

impl std::hash::BuildHasher for StreamIdHash {
    type Hasher = StreamIdHasher;

    fn build_hasher(&self) -> StreamIdHasher {
        StreamIdHasher(0)
    }
}

struct StreamIdHasher(u64);

impl std::hash::Hasher for StreamIdHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u32(u32::from(b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        let h = (self.0 ^ u64::from(n)).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        // The table picks buckets by the low bits: fold the well-mixed high ones in.
        self.0 = h ^ (h >> 32);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

fn problem<M>(failure: H2Failure, stream_id: Option<u32>) -> H2Event<M> {
    H2Event::Problem { failure, stream_id }
}

fn stream_of(id: u32) -> Option<u32> {
    (id != 0).then_some(id)
}

/// The first four bytes (the callers checked the frame length).
fn prefix4(payload: &[u8]) -> [u8; 4] {
    let mut bytes = [0; 4];
    let n = payload.len().min(4);
    bytes[..n].copy_from_slice(&payload[..n]);
    bytes
}
