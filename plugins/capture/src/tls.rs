//! The TLS part of the protocol layer: a connection whose first bytes are a TLS record is
//! decrypted with the secrets of a key log ([`shadowtap_tls_decrypt`]), and the HTTP framer
//! runs on the plaintext unchanged.
//!
//! Decisions worth knowing:
//! * **Detection** is by the record header of a connection's first segment, on any port; the
//!   ClientHello or ServerHello also tells which side is the client.
//! * **Late keys**: a connection whose client random is not in the key log yet holds its
//!   records (bounded per connection) and is retried at every segment and every expiry check;
//!   its flow does not expire and its halves do not close until the key arrives or
//!   [`TlsSettings::key_wait_ns`] passes (then `tls: no key`).
//! * **Plaintext meta**: each plaintext chunk carries the capture time, Seq and Ack of the
//!   segment that completed its record, so ids and pairing work on ciphertext positions as
//!   they do for plain HTTP.
//! * **Holes** in the ciphertext cut the plaintext message in progress (its size is unknown);
//!   the session resynchronises on the next record or fails `tls: lost segment`.
//! * Each connection's failure is reported once, as a [`DropReason`] of its kind.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

pub use shadowtap_tls_decrypt::{
    cipher_name, version_name, KeyLogAdded, KeyLookup, Side, TlsFailure, TlsInfo,
};
use shadowtap_tls_decrypt::{KeyLog, Limits, PlaintextSink, Secrets, TlsSession};

use crate::connection::Direction;
use crate::event::DropReason;
use crate::http1::ChunkMeta;
use shadowtap_http1::Role;

/// How long a connection waits for its key by default (`--input-raw-tls-key-wait`).
pub const DEFAULT_KEY_WAIT_NS: i64 = 10_000_000_000;
/// Ciphertext held per waiting connection by default (`--input-raw-tls-max-pending`).
pub const DEFAULT_MAX_PENDING_BYTES: usize = 1 << 20;

/// The secrets capture threads look up: key log lines from every source (files, pcapng
/// Decryption Secrets Blocks), added while capture runs.
#[derive(Default)]
pub struct KeyStore {
    log: RwLock<KeyLog>,
    /// Client randoms with secrets (read without the lock).
    known: AtomicUsize,
}

impl KeyStore {
    /// Adds the complete lines of NSS key log text.
    pub fn add_text(&self, text: &[u8]) -> KeyLogAdded {
        let mut log = self.log.write().unwrap_or_else(|p| p.into_inner());
        let added = log.add_text(text);
        self.known.store(log.len(), Ordering::Release);
        added
    }

    /// Client randoms with secrets.
    pub fn len(&self) -> usize {
        self.known.load(Ordering::Acquire)
    }

    /// Whether no secret is known yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl KeyLookup for KeyStore {
    fn secrets(&self, client_random: &[u8; 32]) -> Option<Secrets> {
        self.log.read().ok()?.get(client_random).cloned()
    }
}

impl fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyStore({} client randoms)", self.len())
    }
}

/// Where the tracker finds TLS secrets, and how long and how much it holds a connection that
/// waits for them.
#[derive(Clone)]
pub struct TlsSettings {
    /// The key store (shared with whatever keeps it up to date).
    pub keys: Arc<KeyStore>,
    /// How long a connection waits for its key (capture time), then `tls: no key`.
    pub key_wait_ns: i64,
    /// Ciphertext held per connection while it waits, then `tls: buffer full`.
    pub max_pending_bytes: usize,
    /// TLS is recognised only once the store holds a secret (secrets embedded in a capture
    /// file precede the packets they decrypt; until then, the plain path pays nothing).
    pub once_keys_known: bool,
}

impl TlsSettings {
    /// Settings with the default wait and budget around `keys`.
    pub fn with_keys(keys: Arc<KeyStore>) -> TlsSettings {
        TlsSettings {
            keys,
            key_wait_ns: DEFAULT_KEY_WAIT_NS,
            max_pending_bytes: DEFAULT_MAX_PENDING_BYTES,
            once_keys_known: false,
        }
    }

    /// Whether connections are checked for TLS now.
    pub fn active(&self) -> bool {
        !self.once_keys_known || !self.keys.is_empty()
    }
}

impl fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsSettings")
            .field("keys", &"<key log>")
            .field("key_wait_ns", &self.key_wait_ns)
            .field("max_pending_bytes", &self.max_pending_bytes)
            .field("once_keys_known", &self.once_keys_known)
            .finish()
    }
}

impl PartialEq for TlsSettings {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.keys, &other.keys)
            && self.key_wait_ns == other.key_wait_ns
            && self.max_pending_bytes == other.max_pending_bytes
            && self.once_keys_known == other.once_keys_known
    }
}

impl Eq for TlsSettings {}

/// A connection's TLS state.
pub(crate) struct TlsConn {
    /// `None` only while the tracker is feeding it (boxed: taking it out and putting it back
    /// at every segment moves a pointer, not the session's key schedules).
    session: Option<Box<TlsSession<ChunkMeta>>>,
    /// The session's facts as messages carry them (shared by every message of the connection).
    pub facts: Option<Arc<TlsInfo>>,
    /// Since when (capture time) the session has been waiting for its key.
    waiting_since_ns: Option<i64>,
}

impl fmt::Debug for TlsConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConn")
            .field("facts", &self.facts)
            .field("waiting_since_ns", &self.waiting_since_ns)
            .finish()
    }
}

impl TlsConn {
    fn new(settings: &TlsSettings) -> TlsConn {
        TlsConn {
            session: Some(Box::new(TlsSession::new(Limits {
                max_pending_bytes: settings.max_pending_bytes,
            }))),
            facts: None,
            waiting_since_ns: None,
        }
    }

    /// Ciphertext held while waiting for a key.
    pub fn pending_bytes(&self) -> usize {
        self.session.as_ref().map_or(0, |s| s.pending_bytes())
    }

    /// Whether the session waits for its key.
    pub fn waiting(&self) -> bool {
        self.waiting_since_ns.is_some()
    }

    /// Keeps `facts` equal to the session's `info` (a new `Arc` only when it changed).
    fn refresh_facts(facts: &mut Option<Arc<TlsInfo>>, info: &TlsInfo) {
        if facts.as_deref() != Some(info) {
            *facts = Some(Arc::new(info.clone()));
        }
    }
}

/// Whether a segment starting a connection's direction is TLS, and which side sent it (when a
/// hello tells).
pub(crate) fn sniff(data: &[u8]) -> Option<Option<Role>> {
    if !shadowtap_tls_decrypt::looks_like_tls(data) {
        return None;
    }
    Some(shadowtap_tls_decrypt::sniff(data).map(|side| match side {
        Side::Client => Role::Client,
        Side::Server => Role::Server,
    }))
}

impl DropReason {
    /// The reason a TLS session failed with.
    pub fn of_tls(failure: TlsFailure) -> DropReason {
        match failure {
            TlsFailure::NoKey => DropReason::TlsNoKey,
            TlsFailure::NoHandshake => DropReason::TlsNoHandshake,
            TlsFailure::UnsupportedSuite(suite) => DropReason::TlsUnsupportedSuite(suite),
            TlsFailure::DecryptFailed => DropReason::TlsDecryptFailed,
            TlsFailure::LostSegment => DropReason::TlsLostSegment,
            TlsFailure::Renegotiation => DropReason::TlsRenegotiation,
            TlsFailure::Malformed => DropReason::TlsMalformed,
            TlsFailure::BufferFull => DropReason::TlsBufferFull,
        }
    }
}

impl Direction<'_, '_> {
    /// Starts decrypting this connection if `data` (its first bytes in this direction) is a
    /// TLS record and the client side is known or told by the record.
    pub(crate) fn begins_tls(&mut self, data: &[u8]) -> bool {
        let Some(settings) = self.ctx.cfg.active_tls() else {
            return false;
        };
        let Some(role) = sniff(data) else {
            return false;
        };
        if self.conn.client.is_none() {
            match role {
                Some(Role::Client) => self.conn.client = Some(self.side),
                Some(Role::Server) => self.conn.client = Some(1 - self.side),
                None => return false,
            }
        }
        self.conn.tls = Some(Box::new(TlsConn::new(settings)));
        true
    }

    fn tls_side(&self) -> Side {
        match self.role() {
            Some(Role::Server) => Side::Server,
            _ => Side::Client,
        }
    }

    /// Decrypts in-order ciphertext of this direction; its plaintext is framed. A session that
    /// would hold more than the tracker's buffer budget allows is abandoned (`tls: buffer full`).
    pub(crate) fn decrypt(&mut self, data: &[u8], meta: ChunkMeta) {
        let side = self.tls_side();
        let room = self.ctx.half_budget.saturating_sub(self.half.buffered());
        self.with_session(meta.ts_ns, |session, keys, out| {
            if session.waiting_for_key() {
                session.retry(keys, out);
            }
            if session.pending_bytes() + data.len() > room {
                session.abandon(TlsFailure::BufferFull);
            }
            session.feed(side, data, meta, keys, out);
        });
    }

    /// Retries a connection waiting for its key (at `now_ns`); gives up after the wait.
    pub(crate) fn retry_tls(&mut self, now_ns: i64) {
        self.with_session(now_ns, |session, keys, out| {
            session.retry(keys, out);
        });
    }

    /// `len` bytes of this direction's ciphertext are lost (`None`: how many is unknown).
    pub(crate) fn tls_gap(&mut self, len: Option<u32>) {
        let side = self.tls_side();
        let len = len.map_or(u64::MAX, u64::from);
        if let Some(tls) = self.conn.tls.as_mut() {
            if let Some(session) = tls.session.as_mut() {
                session.gap(side, len);
            }
        }
        self.after_tls(None);
    }

    /// The connection's wait for its key is over (its flow ends): a session still waiting
    /// fails with `tls: no key`.
    pub(crate) fn give_up_tls(&mut self) {
        if let Some(session) = self.conn.tls.as_mut().and_then(|t| t.session.as_mut()) {
            session.give_up();
        }
        self.after_tls(None);
    }

    /// Runs `step` on the session with the key log and a plaintext sink that frames what it
    /// is given, then reports the session's failure and tracks its wait for a key.
    fn with_session(
        &mut self,
        now_ns: i64,
        step: impl FnOnce(&mut TlsSession<ChunkMeta>, &dyn KeyLookup, &mut PlaintextSink<'_, ChunkMeta>),
    ) {
        let cfg = self.ctx.cfg;
        let Some(settings) = &cfg.tls else {
            return;
        };
        let Some(tls) = self.conn.tls.as_mut() else {
            return;
        };
        let Some(mut session) = tls.session.take() else {
            return;
        };
        let was_waiting = tls.waiting();
        let mine = self.tls_side();
        step(
            &mut session,
            &*settings.keys,
            &mut |side, plain, meta, info| {
                let meta = ChunkMeta {
                    len: plain.len(),
                    ..*meta
                };
                if let (Some(tls), Some(info)) = (self.conn.tls.as_mut(), info) {
                    TlsConn::refresh_facts(&mut tls.facts, info);
                }
                if side == mine {
                    self.deliver_plaintext(plain, meta);
                } else {
                    self.opposite().deliver_plaintext(plain, meta);
                }
            },
        );
        if session.waiting_for_key() && self.waited_out(now_ns, settings.key_wait_ns) {
            session.give_up();
        }
        self.after_tls(Some((session, now_ns)));
        if was_waiting && !self.tls_waiting() {
            self.close_deferred();
        }
    }

    fn waited_out(&self, now_ns: i64, key_wait_ns: i64) -> bool {
        let since = self.conn.tls.as_ref().and_then(|t| t.waiting_since_ns);
        since.is_some_and(|since| now_ns.saturating_sub(since) >= key_wait_ns)
    }

    /// Puts a session back (if taken), reports its failure once and notes whether it waits.
    fn after_tls(&mut self, returned: Option<(Box<TlsSession<ChunkMeta>>, i64)>) {
        let Some(tls) = self.conn.tls.as_mut() else {
            return;
        };
        let now_ns = returned.as_ref().map(|(_, now)| *now);
        if let Some((session, _)) = returned {
            tls.session = Some(session);
        }
        let Some(session) = tls.session.as_mut() else {
            return;
        };
        let failure = session.take_failure();
        tls.waiting_since_ns = match (session.waiting_for_key(), tls.waiting_since_ns) {
            (false, _) => None,
            (true, Some(since)) => Some(since),
            (true, None) => Some(now_ns.unwrap_or(0)),
        };
        if let Some(failure) = failure {
            self.ctx.drop_one(DropReason::of_tls(failure));
        }
    }

    /// Closes what a FIN or an RST would have closed while the key was missing.
    fn close_deferred(&mut self) {
        if self.conn.reset {
            self.close_after_reset();
            self.opposite().close_after_reset();
        } else {
            self.close_if_done();
            self.opposite().close_if_done();
        }
    }

    /// Whether this connection's TLS session waits for its key (its halves stay open).
    pub(crate) fn tls_waiting(&self) -> bool {
        self.conn.tls.as_ref().is_some_and(|t| t.waiting())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Conversation;
    use crate::{Event, Tracker, TrackerConfig};

    /// A TLS 1.3-style ClientHello with client random `random` (no extensions needed here).
    fn client_hello(random: u8) -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([random; 32]);
        body.extend([0, 0, 2, 0x13, 0x01, 1, 0, 0, 0]);
        let mut handshake = vec![1, 0, 0, body.len() as u8];
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x01, 0, handshake.len() as u8];
        record.extend(handshake);
        record
    }

    /// A TLS 1.3 ServerHello choosing TLS_AES_128_GCM_SHA256.
    fn server_hello() -> Vec<u8> {
        let mut body = vec![0x03, 0x03];
        body.extend([0x5a; 32]);
        body.extend([0, 0x13, 0x01, 0, 0, 6, 0, 0x2b, 0, 2, 0x03, 0x04]);
        let mut handshake = vec![2, 0, 0, body.len() as u8];
        handshake.extend(body);
        let mut record = vec![0x16, 0x03, 0x03, 0, handshake.len() as u8];
        record.extend(handshake);
        record
    }

    /// The start of a TLS 1.3 conversation whose key is not in the log: the hellos and the
    /// server's first encrypted record, which leaves the session waiting for its key.
    fn waiting_conversation(conv: &mut Conversation, random: u8) -> Vec<crate::testutil::Segment> {
        let mut segments = conv.handshake();
        segments.push(conv.client(&client_hello(random)));
        let mut flight = server_hello();
        flight.extend(app_data(100));
        segments.push(conv.server(&flight));
        segments
    }

    /// An application-data record of `len` bytes (undecryptable: no key exists).
    fn app_data(len: usize) -> Vec<u8> {
        let mut record = vec![0x17, 0x03, 0x03, (len >> 8) as u8, len as u8];
        record.resize(5 + len, 0xab);
        record
    }

    fn tracker(max_buffered_bytes: usize) -> Tracker {
        Tracker::new(TrackerConfig {
            ports: vec![443],
            track_responses: true,
            max_buffered_bytes,
            tls: Some(TlsSettings::with_keys(Arc::new(KeyStore::default()))),
            ..TrackerConfig::default()
        })
    }

    fn drops(events: &[Event], wanted: DropReason) -> u64 {
        events
            .iter()
            .map(|e| match e {
                Event::Dropped { reason, count } if *reason == wanted => *count,
                _ => 0,
            })
            .sum()
    }

    #[test]
    fn connections_waiting_for_keys_stay_within_the_buffer_budget() {
        let budget = 256 << 10;
        let mut tracker = tracker(budget);
        let mut events = Vec::new();
        let mut now = 1_000_000_000;
        for n in 0..40u16 {
            let mut conv = Conversation::new(&format!("10.0.0.1:{}", 40000 + n), "10.0.0.2:443");
            let mut segments = waiting_conversation(&mut conv, n as u8);
            for _ in 0..4 {
                segments.push(conv.client(&app_data(16_000)));
            }
            for segment in &segments {
                now += 1000;
                tracker.push(&segment.packet(), now, &mut |e| events.push(e));
                assert!(
                    tracker.buffered_bytes() <= budget,
                    "{}",
                    tracker.buffered_bytes()
                );
            }
        }
        assert!(drops(&events, DropReason::TlsBufferFull) > 0);
        tracker.finish(&mut |e| events.push(e));
        let waited = drops(&events, DropReason::TlsNoKey);
        let refused = drops(&events, DropReason::TlsBufferFull);
        assert_eq!(
            waited + refused,
            40,
            "each connection is counted once: {events:?}"
        );
        assert_eq!(tracker.buffered_bytes(), 0);
    }

    #[test]
    fn a_waiting_connection_outlives_idle_expiry_until_the_key_wait() {
        let mut tracker = tracker(64 << 20);
        let mut events = Vec::new();
        let mut conv = Conversation::new("10.0.0.1:40000", "10.0.0.2:443");
        let segments = waiting_conversation(&mut conv, 7);
        for segment in &segments {
            tracker.push(&segment.packet(), 1_000, &mut |e| events.push(e));
        }
        tracker.expire(5_000_000_000, &mut |e| events.push(e));
        assert_eq!(
            tracker.flows(),
            1,
            "still waiting within the 10 s key wait: {events:?}"
        );
        tracker.expire(12_000_000_000, &mut |e| events.push(e));
        tracker.expire(15_000_000_000, &mut |e| events.push(e));
        assert_eq!(tracker.flows(), 0);
        assert_eq!(drops(&events, DropReason::TlsNoKey), 1);
    }

    #[test]
    fn plain_http_is_unaffected_by_tls_being_on() {
        let mut tracker = tracker(64 << 20);
        let mut events = Vec::new();
        let mut conv = Conversation::new("10.0.0.1:40000", "10.0.0.2:443");
        let mut segments = conv.handshake();
        segments.push(conv.client(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
        segments.push(conv.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"));
        for segment in &segments {
            tracker.push(&segment.packet(), 1_000, &mut |e| events.push(e));
        }
        let messages = events
            .iter()
            .filter(|e| matches!(e, Event::Message(m) if m.tls.is_none()))
            .count();
        assert_eq!(messages, 2, "{events:?}");
    }
}
