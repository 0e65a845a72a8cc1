//! The HTTP/1.x framer: walks one direction's reassembled bytes and cuts them into messages
//! (start line and headers, then a body delimited by Content-Length, chunked coding or the
//! close), byte-exact. Parsing itself is `shadowtap-http1`'s; this module owns the per-direction
//! state machine, message limits, and completion (id, latency, incomplete).

use bytes::{Buf, Bytes};

use crate::connection::Direction;
use crate::event::{DropReason, Event, HttpMessage, MessageKind, Recovery};
use crate::ids::{id_bytes, MessageId};
use shadowtap_http1::{
    self as http, BodyKind, ChunkProgress, Chunked, Leniency, Method, Role, Verdict,
};

/// Largest header block accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// How far into a response's first bytes a status line is looked for behind junk.
const MAX_LEADING_JUNK: usize = 1024;
/// How much of a first line is looked at to tell bare-CR line ends (bounded per segment).
const MAX_FIRST_LINE_LOOK: usize = 8 * 1024;

/// Where a direction's framer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Discarding whole segments until one begins a message.
    Skipping,
    /// At a message boundary.
    Idle,
    /// Collecting the start line and headers.
    Head,
    /// Body with this many bytes left.
    Length(u64),
    /// Chunked body.
    Chunked(Chunked),
    /// Body delimited by the connection close.
    UntilClose,
    /// Opaque bytes (binary protocol).
    Binary,
}

/// The message in progress.
#[derive(Debug, Clone, Copy)]
pub(crate) struct MessageState {
    pub start_ns: i64,
    pub end_ns: i64,
    pub ack: u32,
    pub seq: u32,
    pub id: Option<[u8; 12]>,
    pub request_start_ns: Option<i64>,
    pub tunnel_after: bool,
    /// A `101` to `Upgrade: h2c`: the connection goes on as HTTP/2; the id word of the request
    /// it answers (stream 1's response shares its id).
    pub upgrade_h2: Option<u32>,
    /// Bytes of holes the message was delivered across.
    pub missing_bytes: u64,
}

/// Bodies at least this long are reserved for in one allocation ([`Direction::reserve_body`]).
const LARGE_BODY: usize = 64 << 10;

/// Per-packet facts the framer needs about the segment a chunk came from.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkMeta {
    pub seq: u32,
    pub ts_ns: i64,
    pub ack: u32,
    pub len: usize,
}

impl Direction<'_, '_> {
    /// Walks the buffer as far as it frames.
    pub(crate) fn frame(&mut self, meta: ChunkMeta) {
        while !self.conn.tunnel && self.conn.h2.is_none() {
            if let Some(msg) = &mut self.half.msg {
                msg.end_ns = msg.end_ns.max(meta.ts_ns);
            }
            match self.half.phase {
                Phase::Skipping => return,
                Phase::Idle => {
                    if !self.begin_http_message(meta) {
                        return;
                    }
                }
                Phase::Head => {
                    if !self.read_head() {
                        return;
                    }
                }
                Phase::Length(left) => {
                    let half = &mut *self.half;
                    let take = left.min((half.buf.len() - half.pos) as u64);
                    half.pos += take as usize;
                    if take < left {
                        half.phase = Phase::Length(left - take);
                        return self.limit_message();
                    }
                    self.complete(false);
                }
                Phase::Chunked(mut state) => {
                    let server = self.role() == Some(Role::Server);
                    let half = &mut *self.half;
                    match http::scan_chunked(&mut state, &half.buf, &mut half.pos) {
                        ChunkProgress::Done => self.complete(false),
                        ChunkProgress::NeedMore => {
                            half.phase = Phase::Chunked(state);
                            return self.limit_message();
                        }
                        ChunkProgress::Invalid if server => {
                            // A tolerant reader takes the rest as close-delimited.
                            self.ctx.recovered(Recovery::InvalidChunkSize, 1);
                            self.half.phase = Phase::UntilClose;
                        }
                        ChunkProgress::Invalid => {
                            half.pos = half.buf.len();
                            self.end_incomplete(DropReason::Incomplete);
                            self.garbage_rest();
                            return;
                        }
                    }
                }
                Phase::UntilClose => {
                    self.half.pos = self.half.buf.len();
                    return self.limit_message();
                }
                Phase::Binary => {
                    if self.half.msg.is_none() {
                        self.start_message(meta);
                    }
                    self.half.pos = self.half.buf.len();
                    return self.limit_message();
                }
            }
        }
    }

    /// Skips blank lines at a boundary; starts a message when bytes remain.
    fn begin_http_message(&mut self, meta: ChunkMeta) -> bool {
        let half = &mut *self.half;
        let blank = half.buf[half.pos..]
            .iter()
            .take_while(|&&b| b == b'\r' || b == b'\n')
            .count();
        half.buf.advance(half.pos + blank);
        half.pos = 0;
        if half.buf.is_empty() {
            return false;
        }
        self.start_message(meta);
        let half = &mut *self.half;
        half.phase = Phase::Head;
        half.head_scan = 0;
        half.bare_cr = false;
        half.start_line_ok = false;
        true
    }

    pub(crate) fn start_message(&mut self, meta: ChunkMeta) {
        // Bytes at a boundary all came with the current chunk (earlier chunks were framed fully).
        let offset_in_chunk = meta.len.saturating_sub(self.half.buf.len() - self.half.pos);
        let mut msg = MessageState {
            start_ns: meta.ts_ns,
            end_ns: meta.ts_ns,
            ack: meta.ack,
            seq: meta.seq.wrapping_add(offset_in_chunk as u32),
            id: None,
            request_start_ns: None,
            tunnel_after: false,
            upgrade_h2: None,
            missing_bytes: 0,
        };
        match self.role() {
            Some(Role::Server) if self.ctx.cfg.framing.is_binary() => {
                let (request, id) = self.conn.answer(false, msg.seq, self.ctx);
                msg.id = Some(id);
                msg.request_start_ns = request.map(|r| r.start_ns);
            }
            Some(Role::Server) => {}
            _ => {
                let track = self.ctx.cfg.track_responses;
                msg.id = Some(self.conn.begin_request(msg.ack, msg.start_ns, track));
            }
        }
        self.half.msg = Some(msg);
        self.conn.http1 = true;
    }

    /// Parses the header block once complete; `false` while waiting for more bytes.
    fn read_head(&mut self) -> bool {
        let role = self.role().unwrap_or(Role::Client);
        // A block already complete (the usual case: the head came in one segment) is checked by
        // the full parse below; the start-line check is for heads still arriving.
        let found = self.find_head_end();
        let half = &mut *self.half;
        if found.is_ok() {
            half.start_line_ok = true;
        }
        if !half.start_line_ok {
            // Re-checking a long, still incomplete line on every segment would be quadratic.
            let pending = half.buf.get(half.head_scan..).unwrap_or_default();
            let line_complete = memchr::memchr2(b'\n', b'\r', pending).is_some();
            let first_look = half.head_scan == 0;
            if line_complete || first_look {
                match start_verdict(role, &half.buf) {
                    Verdict::Yes => half.start_line_ok = true,
                    Verdict::No => return self.not_a_start_line(),
                    Verdict::Maybe => {}
                }
            }
            if !half.start_line_ok {
                if half.buf.len() > MAX_HEAD_BYTES {
                    return self.garbage();
                }
                // No line end yet (a Maybe verdict stops at the end of the input).
                half.head_scan = half.buf.len();
                return false;
            }
        }
        let end = match found {
            Ok(end) => end,
            Err(_) if half.buf.len() > MAX_HEAD_BYTES => return self.garbage(),
            Err(resume) => {
                half.head_scan = resume;
                return false;
            }
        };
        let Some(head) = parse_head(role, &half.buf[..end]) else {
            return self.not_a_start_line();
        };
        self.report(head.leniency);
        self.half.pos = end;
        let body = match role {
            Role::Client => {
                self.conn.pairing.set_last_method(head.method);
                if head.method == Method::Connect {
                    self.ctx.stats.connect_requests += 1;
                }
                http::request_body(&head)
            }
            Role::Server => self.response_framing(&head),
        };
        self.half.phase = match body {
            BodyKind::Empty => {
                self.complete(false);
                return true;
            }
            BodyKind::Length(n) => {
                self.reserve_body(n);
                Phase::Length(n)
            }
            BodyKind::Chunked => Phase::Chunked(Chunked::Size),
            BodyKind::UntilClose => Phase::UntilClose,
        };
        true
    }

    /// Makes room at once for a large body of known length (within the message limit and the
    /// buffer budget): grown by doubling instead, a 1 MiB body costs several reallocations, each
    /// of fresh pages the kernel must zero.
    #[inline]
    fn reserve_body(&mut self, body_len: u64) {
        if body_len < LARGE_BODY as u64 {
            return;
        }
        let half = &mut *self.half;
        let present = (half.buf.len() - half.pos) as u64;
        let budget = self.ctx.half_budget.saturating_sub(half.buffered());
        let wanted = body_len
            .saturating_sub(present)
            .min(self.ctx.message_limit as u64);
        let room = usize::try_from(wanted).unwrap_or(usize::MAX).min(budget);
        if room >= LARGE_BODY {
            half.buf.reserve(room);
        }
    }

    /// Where the header block ends: lines end with LF or CRLF, or, when the first line ends
    /// with a bare CR, with CR.
    fn find_head_end(&mut self) -> Result<usize, usize> {
        let half = &mut *self.half;
        if half.bare_cr {
            return http::find_bare_cr_head_end(&half.buf, half.head_scan);
        }
        let found = http::find_head_end(&half.buf, half.head_scan);
        if found.is_err() {
            let look = &half.buf[..half.buf.len().min(MAX_FIRST_LINE_LOOK)];
            if http::first_line_ends_bare_cr(look) == Some(true) {
                half.bare_cr = true;
                return http::find_bare_cr_head_end(&half.buf, 0);
            }
        }
        found
    }

    /// The bytes at a boundary do not begin a message of this side's role. A response may
    /// still be one behind junk, or an HTTP/0.9 response (no status line at all).
    fn not_a_start_line(&mut self) -> bool {
        if self.role() != Some(Role::Server) {
            return self.garbage();
        }
        let window = &self.half.buf[..self.half.buf.len().min(MAX_LEADING_JUNK)];
        if let Some(junk) = status_line_behind_junk(window) {
            self.ctx.recovered(Recovery::LeadingJunk, 1);
            let half = &mut *self.half;
            half.buf.advance(junk);
            half.head_scan = 0;
            half.bare_cr = false;
            half.start_line_ok = false;
            if let Some(msg) = half.msg.as_mut() {
                msg.seq = msg.seq.wrapping_add(junk as u32);
            }
            return true;
        }
        if self.conn.pairing.awaits_first_answer() {
            return self.http09_response();
        }
        self.garbage()
    }

    /// The server answered without a status line: HTTP/0.9, the body runs until the close.
    fn http09_response(&mut self) -> bool {
        self.ctx.recovered(Recovery::Http09, 1);
        let Some(seq) = self.half.msg.as_ref().map(|m| m.seq) else {
            return self.garbage();
        };
        let (request, id) = self.conn.answer(false, seq, self.ctx);
        let msg = self.half.msg.as_mut().expect("a response in progress");
        msg.id = Some(id);
        msg.request_start_ns = request.map(|r| r.start_ns);
        self.half.phase = Phase::UntilClose;
        true
    }

    /// Counts what a tolerant parse accepted.
    fn report(&mut self, leniency: Leniency) {
        if leniency.is_strict() {
            return;
        }
        let kinds = [
            (leniency.status_line, Recovery::LenientStatusLine),
            (leniency.version_above_1_1, Recovery::VersionAboveOneOne),
            (leniency.bare_lf, Recovery::BareLf),
            (leniency.bare_cr, Recovery::BareCr),
            (leniency.nul, Recovery::NulInHeader),
            (leniency.obs_fold, Recovery::ObsFold),
            (
                leniency.conflicting_length,
                Recovery::ConflictingContentLength,
            ),
        ];
        for (_, kind) in kinds.into_iter().filter(|(seen, _)| *seen) {
            self.ctx.recovered(kind, 1);
        }
    }

    /// Pairs a response head with its request and decides its body.
    fn response_framing(&mut self, head: &http::Head) -> BodyKind {
        let interim = (100..200).contains(&head.status) && head.status != 101;
        let Some(seq) = self.half.msg.as_ref().map(|m| m.seq) else {
            return BodyKind::Empty;
        };
        let (request, id) = self.conn.answer(interim, seq, self.ctx);
        let method = request.map_or(Method::Other, |r| r.method);
        let msg = self.half.msg.as_mut().expect("a response in progress");
        msg.id = Some(id);
        msg.request_start_ns = request.map(|r| r.start_ns);
        let connect_ok = method == Method::Connect && (200..300).contains(&head.status);
        msg.tunnel_after = head.status == 101 || connect_ok;
        if head.status == 101 && upgrades_to_h2c(&self.half.buf[..self.half.pos]) {
            msg.tunnel_after = false;
            msg.upgrade_h2 = Some(u32::from_be_bytes([id[8], id[9], id[10], id[11]]));
        }
        match http::response_body(head, method) {
            BodyKind::Length(_) if head.leniency.conflicting_length => BodyKind::UntilClose,
            body => body,
        }
    }

    /// The bytes at the boundary do not start a message: drop them, resync at a later segment.
    fn garbage(&mut self) -> bool {
        if let Some(msg) = self.half.msg.take() {
            if self.role() != Some(Role::Server) {
                if let Some(id) = msg.id {
                    self.conn.pairing.cancel(id);
                }
            } else {
                self.conn.pairing.server_gap();
            }
        }
        self.half.skip_counted = false;
        self.skipped();
        self.garbage_rest();
        true
    }

    fn garbage_rest(&mut self) {
        let half = &mut *self.half;
        half.buf.clear();
        half.pos = 0;
        half.truncated_prefix = None;
        half.phase = Phase::Skipping;
    }

    /// Counts a run of skipped bytes once.
    pub(crate) fn skipped(&mut self) {
        if !self.half.skip_counted {
            self.half.skip_counted = true;
            if self.role() == Some(Role::Server) {
                self.conn.pairing.server_gap();
            }
            self.ctx.drop_one(DropReason::Garbage);
        }
    }

    /// Keeps at most `message_limit` bytes of the message; framed bytes beyond it are discarded.
    fn limit_message(&mut self) {
        let limit = self.ctx.message_limit;
        let half = &mut *self.half;
        if half.truncated_prefix.is_some() {
            half.buf.advance(half.pos);
            half.pos = 0;
        } else if half.pos > limit {
            let prefix = half.buf.split_to(limit);
            half.buf.advance(half.pos - limit);
            half.pos = 0;
            half.truncated_prefix = Some(prefix);
        }
    }

    /// The message's bytes (up to `pos`) and whether they were cut.
    fn take_payload(&mut self) -> (Bytes, bool) {
        let limit = self.ctx.message_limit;
        let half = &mut *self.half;
        if let Some(prefix) = half.truncated_prefix.take() {
            half.buf.advance(half.pos);
            half.pos = 0;
            return (prefix.freeze(), true);
        }
        let mut payload = half.buf.split_to(half.pos);
        half.pos = 0;
        let truncated = payload.len() > limit;
        payload.truncate(limit);
        (payload.freeze(), truncated)
    }

    /// The message in progress cannot be completed: emitted marked incomplete when allowed,
    /// otherwise counted as `why`.
    pub(crate) fn end_incomplete(&mut self, why: DropReason) {
        self.half.pos = self.half.buf.len();
        if let Some(seq) = self
            .half
            .msg
            .as_ref()
            .filter(|m| m.id.is_none())
            .map(|m| m.seq)
        {
            let (request, id) = self.conn.answer(false, seq, self.ctx);
            let msg = self.half.msg.as_mut().expect("a message in progress");
            msg.id = Some(id);
            msg.request_start_ns = request.map(|r| r.start_ns);
        }
        if let Some(msg) = self.half.msg.as_mut() {
            msg.tunnel_after = false;
        }
        if self.ctx.cfg.allow_incomplete {
            self.complete(true);
        } else {
            let _ = self.take_payload();
            self.half.msg = None;
            self.half.phase = self.ctx.initial_phase();
            self.ctx.drop_one(why);
        }
    }

    /// Emits the message ending at `pos`.
    pub(crate) fn complete(&mut self, incomplete: bool) {
        let (payload, truncated) = self.take_payload();
        self.half.phase = self.ctx.initial_phase();
        let Some(msg) = self.half.msg.take() else {
            return;
        };
        if msg.tunnel_after {
            self.conn.tunnel = true;
        }
        if let Some(word) = msg.upgrade_h2 {
            self.begin_upgraded_h2(word);
        }
        if msg.missing_bytes > 0 {
            if !self.ctx.cfg.allow_incomplete {
                self.ctx.drop_one(DropReason::Incomplete);
                return;
            }
            self.ctx.recovered(Recovery::HoleInBody, 1);
        }
        let kind = match self.role() {
            Some(Role::Server) => MessageKind::Response,
            _ => MessageKind::Request,
        };
        let latency_ns = match (kind, msg.request_start_ns) {
            (MessageKind::Response, Some(request_start)) => msg.start_ns - request_start,
            _ => msg.end_ns - msg.start_ns,
        };
        let side = self.side;
        let id = msg
            .id
            .unwrap_or_else(|| id_bytes(self.conn.addrs[side], 0, msg.seq));
        (self.ctx.out)(Event::Message(HttpMessage {
            kind,
            id: MessageId::of(&id),
            start_ns: msg.start_ns,
            end_ns: msg.end_ns,
            latency_ns,
            src: self.conn.addrs[side],
            dst: self.conn.addrs[1 - side],
            payload,
            truncated,
            incomplete: incomplete || msg.missing_bytes > 0,
            missing_bytes: msg.missing_bytes,
            tls: self.conn.tls.as_ref().and_then(|t| t.facts.clone()),
            h2: None,
        }));
    }
}

/// Whether a `101` response's head switches to HTTP/2 (`Upgrade: h2c`).
fn upgrades_to_h2c(head: &[u8]) -> bool {
    shadowtap_http1::headers::value(head, b"upgrade")
        .is_some_and(|protocol| protocol.trim_ascii().eq_ignore_ascii_case(b"h2c"))
}

/// The start-line verdict for a sender of `role` (status lines read leniently).
fn start_verdict(role: Role, buf: &[u8]) -> Verdict {
    match role {
        Role::Client => http::request_line(buf),
        Role::Server => http::lenient_status_verdict(buf),
    }
}

/// A header block parsed strictly, or tolerantly when strict parsing rejects it; what was
/// unusual about it is in its `leniency`. (Strict parsing here rejects obs-fold and NUL, so that
/// the tolerant parse counts them; a bare-LF block is told by its last line end, in O(1).)
fn parse_head(role: Role, block: &[u8]) -> Option<http::Head> {
    match http::parse_head_unfolded(role, block) {
        Ok(mut head) => {
            head.leniency.bare_lf = http::ends_with_bare_lf(block);
            Some(head)
        }
        Err(_) => http::parse_head_tolerant(role, block).ok(),
    }
}

/// Where a status line begins behind junk at the start of `window` (not at 0).
fn status_line_behind_junk(window: &[u8]) -> Option<usize> {
    memchr::memchr2_iter(b'H', b'h', window)
        .filter(|&at| at > 0)
        .find(|&at| http::lenient_status_verdict(&window[at..]) == Verdict::Yes)
}
