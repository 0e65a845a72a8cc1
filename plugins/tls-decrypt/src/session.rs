//! The per-connection state machine: frames records per direction, follows the handshake,
//! installs read keys from the key log when a direction starts encrypting, decrypts records
//! in place and hands application data to the caller. Holds input in arrival order while a
//! key (or the EncryptedExtensions that 0-RTT data waits for) is missing, and resynchronises after gaps.

use crate::cipher::{OpenError, Opened, RecordDecrypter};
use crate::handshake::{self, ClientHello, HandshakeReader, ServerHello};
use crate::keylog::{KeyLookup, Secret};
use crate::record::{self, Header, RecordBuffer, HEADER_LEN, MAX_BODY};
use crate::suites::{self, Kind, Suite};
use crate::{Limits, Side, TlsFailure, TlsInfo};
use std::collections::VecDeque;
use std::mem;

/// How far past a hole the scan for the next record header goes before giving up.
const SCAN_LIMIT: usize = 64 << 10;
/// After a hole, records up to this many sequence numbers ahead are tried.
const RESYNC_SEQS: u64 = 8;

/// Where a session's plaintext goes: its side, its bytes, the caller's tag of the segment that
/// completed its record, and the session's facts so far.
pub type PlaintextSink<'a, M> = dyn FnMut(Side, &[u8], &M, Option<&TlsInfo>) + 'a;

type Out<'a, M> = &'a mut PlaintextSink<'a, M>;
type Step = Result<(), TlsFailure>;

/// Which keys protect a direction's records now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Stage {
    /// No encryption yet.
    Plain,
    /// TLS 1.3 client 0-RTT data (CLIENT_EARLY_TRAFFIC_SECRET), until EndOfEarlyData.
    Early,
    /// TLS 1.3 handshake traffic secrets, until this side's Finished.
    Handshake,
    /// TLS 1.3 application traffic secrets.
    Traffic,
    /// TLS 1.2 after this side's ChangeCipherSpec.
    Tls12,
}

struct Direction {
    rec: RecordBuffer,
    hs: HandshakeReader,
    stage: Stage,
    dec: Option<RecordDecrypter>,
    /// In the early stage: the handshake-key decrypter, tried when the early key fails.
    alt: Option<RecordDecrypter>,
    /// Bytes of a record cut by a hole still to be skipped.
    skip: u64,
    /// The next record follows a hole: try a few sequence numbers.
    after_gap: bool,
    /// Searching for a record header after a hole that ended at an unknown position.
    scan: Option<Vec<u8>>,
    scan_pos: usize,
    /// The scan position whose candidate already failed (waiting for the next header).
    scan_tried: Option<usize>,
    /// TLS 1.2: this side's Finished was seen.
    finished: bool,
}

impl Direction {
    fn start_scan(&mut self) {
        self.scan = Some(Vec::new());
        self.scan_pos = 0;
        self.scan_tried = None;
    }

    fn new() -> Direction {
        Direction {
            rec: RecordBuffer::default(),
            hs: HandshakeReader::default(),
            stage: Stage::Plain,
            dec: None,
            alt: None,
            skip: 0,
            after_gap: false,
            scan: None,
            scan_pos: 0,
            scan_tried: None,
            finished: false,
        }
    }
}

/// What the hellos said.
#[derive(Default)]
struct Hellos {
    client: Option<ClientHello>,
    client_hellos: u8,
    retry_request: bool,
    server: Option<ServerHello>,
    suite: Option<&'static Suite>,
    tls13: bool,
    encrypt_then_mac: bool,
    early_rejected: bool,
    encrypted_extensions: bool,
}

/// Why input is held.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Block {
    /// The key log has no secret for this side's next keys yet.
    Key(Side),
    /// Client 0-RTT records wait for the server's EncryptedExtensions (accepted or not).
    EncryptedExtensions,
}

enum Pending<M> {
    Data { side: Side, bytes: Vec<u8>, tag: M },
    Gap { side: Side, len: u64 },
}

/// The decryption state of one TLS connection. `M` is the caller's per-segment tag, handed
/// back with the plaintext of the records that segment completed.
pub struct TlsSession<M> {
    limits: Limits,
    dirs: [Direction; 2],
    hellos: Hellos,
    info: Option<TlsInfo>,
    block: Option<Block>,
    unblock_after_record: bool,
    queue: VecDeque<Pending<M>>,
    queued_bytes: usize,
    failure: Option<TlsFailure>,
    failure_taken: bool,
    scratch: Vec<u8>,
}

impl<M: Clone> TlsSession<M> {
    /// A session that has seen nothing yet.
    pub fn new(limits: Limits) -> Self {
        TlsSession {
            limits,
            dirs: [Direction::new(), Direction::new()],
            hellos: Hellos::default(),
            info: None,
            block: None,
            unblock_after_record: false,
            queue: VecDeque::new(),
            queued_bytes: 0,
            failure: None,
            failure_taken: false,
            scratch: Vec::new(),
        }
    }

    /// In-order ciphertext of one direction. Application-data plaintext goes to
    /// `out(side, bytes, &tag, info)` in capture order across both directions.
    pub fn feed(
        &mut self,
        side: Side,
        data: &[u8],
        tag: M,
        keys: &dyn KeyLookup,
        out: &mut PlaintextSink<'_, M>,
    ) {
        self.feed_inner(side, data, &tag, keys, out);
    }

    /// Retries a session waiting for its key (call when the key log grew, or periodically).
    /// Returns true if it made progress.
    pub fn retry(&mut self, keys: &dyn KeyLookup, out: &mut PlaintextSink<'_, M>) -> bool {
        let Some(Block::Key(side)) = self.block else {
            return false;
        };
        match self.ensure_decrypter(side, keys) {
            Ok(true) => {}
            Ok(false) => return false,
            Err(failure) => {
                self.fail(failure);
                return true;
            }
        }
        self.block = None;
        self.replay(keys, out);
        true
    }

    /// `len` bytes of `side`'s ciphertext are missing at the current position (a TCP hole the
    /// caller gave up on).
    pub fn gap(&mut self, side: Side, len: u64) {
        if self.failure.is_some() || len == 0 {
            return;
        }
        if self.must_queue(side) {
            self.queue.push_back(Pending::Gap { side, len });
            return;
        }
        if let Err(failure) = self.gap_inner(side, len) {
            self.fail(failure);
        }
    }

    /// Whether a ClientHello's client random has no (sufficient) secrets yet.
    pub fn waiting_for_key(&self) -> bool {
        matches!(self.block, Some(Block::Key(_)))
    }

    /// Ciphertext held: queued input plus partial records (counts toward the caller's budget).
    pub fn pending_bytes(&self) -> usize {
        let dirs: usize = self
            .dirs
            .iter()
            .map(|d| d.rec.buf.len() + d.hs.held() + d.scan.as_ref().map_or(0, Vec::len))
            .sum();
        self.queued_bytes + dirs
    }

    /// The caller's wait is over: a session still waiting for its key fails with `NoKey` and
    /// drops its pending bytes.
    pub fn give_up(&mut self) {
        if self.waiting_for_key() {
            self.fail(TlsFailure::NoKey);
        }
    }

    /// The caller stops the session (its memory budget is spent): it fails with `failure`,
    /// drops what it holds and ignores further input.
    pub fn abandon(&mut self, failure: TlsFailure) {
        self.fail(failure);
    }

    /// The failure that stopped this session, reported once.
    pub fn take_failure(&mut self) -> Option<TlsFailure> {
        if self.failure_taken {
            return None;
        }
        self.failure_taken = self.failure.is_some();
        self.failure
    }

    /// Whether the session stopped (it then ignores all input).
    pub fn failed(&self) -> bool {
        self.failure.is_some()
    }

    /// Version, suite, SNI and ALPN, once the ServerHello is seen.
    pub fn info(&self) -> Option<&TlsInfo> {
        self.info.as_ref()
    }

    fn fail(&mut self, failure: TlsFailure) {
        if self.failure.is_none() {
            self.failure = Some(failure);
        }
        self.queue = VecDeque::new();
        self.queued_bytes = 0;
        self.block = None;
        self.scratch = Vec::new();
        self.dirs = [Direction::new(), Direction::new()];
    }

    fn must_queue(&self, side: Side) -> bool {
        match self.block {
            None => false,
            Some(Block::Key(_)) => true,
            Some(Block::EncryptedExtensions) => side == Side::Client,
        }
    }

    fn enqueue(&mut self, side: Side, bytes: Vec<u8>, tag: &M) -> Step {
        self.queued_bytes += bytes.len();
        self.queue.push_back(Pending::Data {
            side,
            bytes,
            tag: tag.clone(),
        });
        if self.queued_bytes > self.limits.max_pending_bytes {
            return Err(TlsFailure::BufferFull);
        }
        Ok(())
    }

    fn replay(&mut self, keys: &dyn KeyLookup, out: Out<'_, M>) {
        let queue = mem::take(&mut self.queue);
        self.queued_bytes = 0;
        for pending in queue {
            match pending {
                Pending::Data { side, bytes, tag } => {
                    self.feed_inner(side, &bytes, &tag, keys, out)
                }
                Pending::Gap { side, len } => self.gap(side, len),
            }
        }
    }

    fn feed_inner(
        &mut self,
        side: Side,
        mut data: &[u8],
        tag: &M,
        keys: &dyn KeyLookup,
        out: Out<'_, M>,
    ) {
        while !data.is_empty() && self.failure.is_none() {
            let step = if self.must_queue(side) {
                self.enqueue(side, data.to_vec(), tag).map(|()| data.len())
            } else {
                self.step(side, data, tag, keys, out)
            };
            match step {
                Ok(taken) => data = &data[taken..],
                Err(failure) => self.fail(failure),
            }
        }
    }

    /// Consumes a prefix of `data`: skipped bytes, scanned bytes, or the bytes completing a record.
    fn step(
        &mut self,
        side: Side,
        data: &[u8],
        tag: &M,
        keys: &dyn KeyLookup,
        out: Out<'_, M>,
    ) -> Result<usize, TlsFailure> {
        let dir = &mut self.dirs[side.index()];
        if dir.skip > 0 {
            let n = dir.skip.min(data.len() as u64);
            dir.skip -= n;
            return Ok(n as usize);
        }
        if dir.scan.is_some() {
            self.scan(side, data, tag, keys, out)?;
            return Ok(data.len());
        }
        let (taken, complete) = dir.rec.fill(data).map_err(|_| self.bad_header(side))?;
        if complete {
            self.on_record(side, tag, keys, out)?;
        }
        Ok(taken)
    }

    fn bad_header(&self, side: Side) -> TlsFailure {
        if self.hellos.client.is_none() && side == Side::Server {
            TlsFailure::NoHandshake
        } else {
            TlsFailure::Malformed
        }
    }

    fn on_record(&mut self, side: Side, tag: &M, keys: &dyn KeyLookup, out: Out<'_, M>) -> Step {
        let mut buf = mem::take(&mut self.dirs[side.index()].rec.buf);
        let result = self.process_record(side, &mut buf, tag, keys, out);
        buf.clear();
        if self.failure.is_none() {
            self.dirs[side.index()].rec.buf = buf;
        }
        result?;
        if mem::take(&mut self.unblock_after_record)
            && self.block == Some(Block::EncryptedExtensions)
        {
            self.block = None;
            self.replay(keys, out);
        }
        Ok(())
    }

    fn process_record(
        &mut self,
        side: Side,
        buf: &mut Vec<u8>,
        tag: &M,
        keys: &dyn KeyLookup,
        out: Out<'_, M>,
    ) -> Step {
        let content_type = buf[0];
        if self.hellos.client.is_none()
            && (side == Side::Server || content_type != record::TYPE_HANDSHAKE)
        {
            return Err(TlsFailure::NoHandshake);
        }
        match self.dirs[side.index()].stage {
            Stage::Plain => self.plain_record(side, buf, tag, keys, out),
            _ => self.encrypted_record(side, buf, tag, keys, out),
        }
    }

    fn plain_record(
        &mut self,
        side: Side,
        buf: &mut Vec<u8>,
        tag: &M,
        keys: &dyn KeyLookup,
        out: Out<'_, M>,
    ) -> Step {
        match buf[0] {
            record::TYPE_HANDSHAKE => self.handshake_bytes(side, &buf[HEADER_LEN..], false),
            record::TYPE_ALERT => Ok(()),
            record::TYPE_CCS => {
                // TLS 1.3 middlebox-compatibility CCS (also before the ServerHello) is ignored.
                if !self.hellos.tls13 && self.hellos.server.is_some() {
                    let dir = &mut self.dirs[side.index()];
                    if dir.hs.in_message() {
                        return Err(TlsFailure::Malformed);
                    }
                    dir.stage = Stage::Tls12;
                }
                Ok(())
            }
            _ => {
                let early = side == Side::Client
                    && self.hellos.client.as_ref().is_some_and(|c| c.early_data);
                if early && !self.hellos.encrypted_extensions {
                    self.block = Some(Block::EncryptedExtensions);
                    return self.enqueue(side, mem::take(buf), tag);
                }
                if self.hellos.server.is_none() || !self.hellos.tls13 {
                    return Err(TlsFailure::Malformed);
                }
                self.dirs[side.index()].stage = if early {
                    Stage::Early
                } else {
                    Stage::Handshake
                };
                self.encrypted_record(side, buf, tag, keys, out)
            }
        }
    }

    fn encrypted_record(
        &mut self,
        side: Side,
        buf: &mut Vec<u8>,
        tag: &M,
        keys: &dyn KeyLookup,
        out: Out<'_, M>,
    ) -> Step {
        let stage = self.dirs[side.index()].stage;
        match buf[0] {
            record::TYPE_APPLICATION_DATA => {}
            record::TYPE_CCS | record::TYPE_ALERT if self.hellos.tls13 => return Ok(()),
            record::TYPE_HANDSHAKE if stage == Stage::Early => {
                // A plaintext ClientHello after a HelloRetryRequest ends the 0-RTT attempt.
                let dir = &mut self.dirs[side.index()];
                (dir.stage, dir.dec, dir.alt) = (Stage::Plain, None, None);
                return self.plain_record(side, buf, tag, keys, out);
            }
            record::TYPE_CCS => return Err(TlsFailure::Renegotiation),
            record::TYPE_HANDSHAKE | record::TYPE_ALERT if !self.hellos.tls13 => {}
            _ => return Err(TlsFailure::Malformed),
        }
        if !self.ensure_decrypter(side, keys)? {
            self.block = Some(Block::Key(side));
            return self.enqueue(side, mem::take(buf), tag);
        }
        let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().expect("whole record");
        let body = &mut buf[HEADER_LEN..];
        let opened = if stage == Stage::Early {
            match self.open_early(side, &header, body) {
                Some(opened) => opened,
                None => return Ok(()),
            }
        } else if self.dirs[side.index()].after_gap {
            self.open_after_gap(side, &header, body)?
        } else {
            let dec = self.dirs[side.index()]
                .dec
                .as_mut()
                .expect("installed above");
            dec.open_next(&header, body).map_err(|e| match e {
                OpenError::Auth => TlsFailure::DecryptFailed,
                OpenError::Malformed => TlsFailure::Malformed,
            })?
        };
        let plain = &body[opened.start..opened.end];
        self.deliver(side, opened.content_type, plain, tag, out)
    }

    /// A 0-RTT record: the early key, else the handshake key (the early data ended or was
    /// rejected), else a rejected early record, skipped (`None`).
    fn open_early(
        &mut self,
        side: Side,
        header: &[u8; HEADER_LEN],
        body: &mut [u8],
    ) -> Option<Opened> {
        let dir = &mut self.dirs[side.index()];
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        if !self.hellos.early_rejected {
            if let Some(Ok(opened)) = dir.dec.as_mut().map(|d| d.open_next(header, body)) {
                return Some(opened);
            }
            body.copy_from_slice(&self.scratch);
        }
        let opened = dir.alt.as_mut()?.open_next(header, body).ok()?;
        dir.stage = Stage::Handshake;
        dir.dec = dir.alt.take();
        Some(opened)
    }

    fn open_after_gap(
        &mut self,
        side: Side,
        header: &[u8; HEADER_LEN],
        body: &mut [u8],
    ) -> Result<Opened, TlsFailure> {
        let dir = &mut self.dirs[side.index()];
        let dec = dir.dec.as_mut().expect("installed before");
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        for seq in dec.seq..=dec.seq + RESYNC_SEQS {
            body.copy_from_slice(&self.scratch);
            if let Ok(opened) = dec.open_at(seq, header, body) {
                dec.seq = seq + 1;
                dir.after_gap = false;
                return Ok(opened);
            }
        }
        Err(TlsFailure::LostSegment)
    }

    /// Installs the read keys of `side`'s current stage; false when the key log lacks them.
    fn ensure_decrypter(&mut self, side: Side, keys: &dyn KeyLookup) -> Result<bool, TlsFailure> {
        let dir = &self.dirs[side.index()];
        if dir.dec.is_some() || dir.alt.is_some() {
            return Ok(true);
        }
        let (Some(client), Some(suite)) = (&self.hellos.client, self.hellos.suite) else {
            return Err(TlsFailure::Malformed);
        };
        let Some(secrets) = keys.secrets(&client.random) else {
            return Ok(false);
        };
        let client_side = side == Side::Client;
        let pick = |c: &Option<Secret>, s: &Option<Secret>| {
            if client_side {
                c.clone()
            } else {
                s.clone()
            }
        };
        let stage = dir.stage;
        let (dec, alt) = match stage {
            Stage::Plain => return Err(TlsFailure::Malformed),
            Stage::Early => {
                let Some(handshake) = secrets.client_handshake else {
                    return Ok(false);
                };
                let early = secrets
                    .client_early
                    .map(|s| RecordDecrypter::tls13(suite, s));
                (early, Some(RecordDecrypter::tls13(suite, handshake)))
            }
            Stage::Handshake | Stage::Traffic => {
                let secret = if stage == Stage::Handshake {
                    pick(&secrets.client_handshake, &secrets.server_handshake)
                } else {
                    pick(&secrets.client_traffic, &secrets.server_traffic)
                };
                let Some(secret) = secret else {
                    return Ok(false);
                };
                (Some(RecordDecrypter::tls13(suite, secret)), None)
            }
            Stage::Tls12 => {
                let (Some(master), Some(server)) = (&secrets.master, &self.hellos.server) else {
                    return Ok(false);
                };
                let dec = RecordDecrypter::tls12(
                    suite,
                    master.as_bytes(),
                    &client.random,
                    &server.random,
                    !client_side,
                    self.hellos.encrypt_then_mac,
                );
                (Some(dec), None)
            }
        };
        let dir = &mut self.dirs[side.index()];
        dir.dec = dec;
        dir.alt = alt;
        Ok(true)
    }

    fn deliver(
        &mut self,
        side: Side,
        content_type: u8,
        plain: &[u8],
        tag: &M,
        out: Out<'_, M>,
    ) -> Step {
        match content_type {
            record::TYPE_APPLICATION_DATA => {
                if !plain.is_empty() {
                    out(side, plain, tag, self.info.as_ref());
                }
                Ok(())
            }
            record::TYPE_HANDSHAKE => self.handshake_bytes(side, plain, true),
            record::TYPE_ALERT => Ok(()),
            record::TYPE_CCS if !self.hellos.tls13 => Err(TlsFailure::Renegotiation),
            _ => Err(TlsFailure::Malformed),
        }
    }

    fn handshake_bytes(&mut self, side: Side, data: &[u8], encrypted: bool) -> Step {
        let mut reader = mem::take(&mut self.dirs[side.index()].hs);
        let result = reader.push(data, |msg_type, body| {
            self.on_message(side, msg_type, body, encrypted)
        });
        if self.failure.is_none() {
            self.dirs[side.index()].hs = reader;
        }
        result
    }

    fn on_message(&mut self, side: Side, msg_type: u8, body: &[u8], encrypted: bool) -> Step {
        if self.hellos.client.is_none() && msg_type != handshake::TYPE_CLIENT_HELLO {
            return Err(TlsFailure::NoHandshake);
        }
        let tls13 = self.hellos.tls13;
        let dir = &mut self.dirs[side.index()];
        match (side, msg_type) {
            (Side::Client, handshake::TYPE_CLIENT_HELLO) => self.on_client_hello(body, encrypted),
            (Side::Server, handshake::TYPE_SERVER_HELLO) => self.on_server_hello(body, encrypted),
            (Side::Server, handshake::TYPE_ENCRYPTED_EXTENSIONS) if tls13 && encrypted => {
                let extensions = handshake::parse_encrypted_extensions(body)?;
                self.hellos.early_rejected |= !extensions.early_data;
                self.hellos.encrypted_extensions = true;
                self.unblock_after_record = self.block == Some(Block::EncryptedExtensions);
                if let (Some(info), Some(alpn)) = (&mut self.info, extensions.alpn) {
                    info.alpn = Some(alpn);
                    info.alpn_selected = true;
                }
                Ok(())
            }
            (_, handshake::TYPE_FINISHED) => self.on_finished(side),
            (Side::Client, handshake::TYPE_END_OF_EARLY_DATA) if dir.stage == Stage::Early => {
                dir.stage = Stage::Handshake;
                dir.dec = dir.alt.take();
                Ok(())
            }
            (_, handshake::TYPE_KEY_UPDATE) if tls13 && dir.stage == Stage::Traffic => {
                if let Some(dec) = &mut dir.dec {
                    dec.update_traffic_secret();
                }
                Ok(())
            }
            (Side::Server, handshake::TYPE_HELLO_REQUEST) if !tls13 && encrypted => {
                Err(TlsFailure::Renegotiation)
            }
            _ if !tls13 && encrypted => Err(if dir.finished {
                TlsFailure::Renegotiation
            } else {
                TlsFailure::Malformed
            }),
            _ => Ok(()),
        }
    }

    fn on_client_hello(&mut self, body: &[u8], encrypted: bool) -> Step {
        if encrypted {
            return Err(if self.hellos.tls13 {
                TlsFailure::Malformed
            } else {
                TlsFailure::Renegotiation
            });
        }
        let hello = handshake::parse_client_hello(body)?;
        match (&self.hellos.client, self.hellos.retry_request) {
            (None, _) => {}
            (Some(first), true)
                if self.hellos.client_hellos == 1 && first.random == hello.random => {}
            _ => return Err(TlsFailure::Malformed),
        }
        self.hellos.client_hellos += 1;
        self.hellos.client = Some(hello);
        Ok(())
    }

    fn on_server_hello(&mut self, body: &[u8], encrypted: bool) -> Step {
        if encrypted {
            return Err(if self.hellos.tls13 {
                TlsFailure::Malformed
            } else {
                TlsFailure::Renegotiation
            });
        }
        if self.hellos.server.is_some() {
            return Err(TlsFailure::Malformed);
        }
        let hello = handshake::parse_server_hello(body)?;
        if hello.retry_request {
            if self.hellos.retry_request {
                return Err(TlsFailure::Malformed);
            }
            self.hellos.retry_request = true;
            self.hellos.early_rejected = true;
            return Ok(());
        }
        let tls13 = hello.version == 0x0304;
        let suite = suites::supported(hello.suite)
            .filter(|s| (s.kind == Kind::Tls13) == tls13 && hello.version >= 0x0303)
            .ok_or(TlsFailure::UnsupportedSuite(hello.suite))?;
        let client = self.hellos.client.as_ref().ok_or(TlsFailure::NoHandshake)?;
        self.info = Some(TlsInfo {
            version: if tls13 { 0x0304 } else { hello.version },
            cipher: hello.suite,
            sni: client.sni.clone(),
            alpn: hello.alpn.clone().or_else(|| client.alpn.clone()),
            alpn_selected: hello.alpn.is_some(),
        });
        self.hellos.encrypt_then_mac = client.encrypt_then_mac && hello.encrypt_then_mac;
        self.hellos.tls13 = tls13;
        self.hellos.suite = Some(suite);
        self.hellos.server = Some(hello);
        Ok(())
    }

    fn on_finished(&mut self, side: Side) -> Step {
        let tls13 = self.hellos.tls13;
        let dir = &mut self.dirs[side.index()];
        match dir.stage {
            Stage::Handshake if tls13 => {
                dir.stage = Stage::Traffic;
                dir.dec = None;
                Ok(())
            }
            Stage::Tls12 if dir.finished => Err(TlsFailure::Renegotiation),
            Stage::Tls12 => {
                dir.finished = true;
                Ok(())
            }
            _ => Err(TlsFailure::Malformed),
        }
    }

    fn gap_inner(&mut self, side: Side, len: u64) -> Step {
        let dir = &mut self.dirs[side.index()];
        if dir.stage == Stage::Plain {
            return Err(TlsFailure::LostSegment);
        }
        dir.after_gap = true;
        if let Some(scan) = &mut dir.scan {
            // Another hole while searching: what was buffered no longer lines up.
            scan.clear();
            dir.scan_pos = 0;
            dir.scan_tried = None;
            return Ok(());
        }
        if dir.skip > 0 {
            if len <= dir.skip {
                dir.skip -= len;
            } else {
                dir.skip = 0;
                dir.start_scan();
            }
            return Ok(());
        }
        match dir.rec.missing() {
            Some(missing) if len <= missing as u64 => dir.skip = missing as u64 - len,
            _ => {
                dir.start_scan();
            }
        }
        dir.rec.buf.clear();
        Ok(())
    }

    /// After a hole of unknown extent: look for a plausible application-data header whose
    /// record opens with one of the next few sequence numbers.
    fn scan(
        &mut self,
        side: Side,
        data: &[u8],
        tag: &M,
        keys: &dyn KeyLookup,
        out: Out<'_, M>,
    ) -> Step {
        if !self.ensure_decrypter(side, keys)? {
            return Err(TlsFailure::LostSegment);
        }
        let dir = &mut self.dirs[side.index()];
        let mut buf = dir.scan.take().unwrap_or_default();
        buf.extend_from_slice(data);
        let mut pos = dir.scan_pos;
        let version = if self.hellos.tls13 {
            0x0303
        } else {
            self.info.as_ref().map_or(0x0303, |i| i.version)
        };
        while pos + HEADER_LEN <= buf.len() && pos <= SCAN_LIMIT {
            let Some(len) = candidate(&buf[pos..pos + HEADER_LEN], version) else {
                pos += 1;
                continue;
            };
            let end = pos + HEADER_LEN + len;
            if end > buf.len() {
                break;
            }
            let tried = self.dirs[side.index()].scan_tried == Some(pos);
            if let Some(opened) = (!tried)
                .then(|| self.try_resync(side, &mut buf[pos..end]))
                .flatten()
            {
                let plain_start = pos + HEADER_LEN + opened.start;
                let plain_end = pos + HEADER_LEN + opened.end;
                self.deliver(
                    side,
                    opened.content_type,
                    &buf[plain_start..plain_end],
                    tag,
                    out,
                )?;
                let rest = buf.split_off(end);
                self.feed_inner(side, &rest, tag, keys, out);
                return Ok(());
            }
            // Two chained headers are real records (random ciphertext almost never chains):
            // the records that would resynchronise are beyond the window.
            match buf.get(end..end + HEADER_LEN) {
                Some(next) if candidate(next, version).is_some() => {
                    return Err(TlsFailure::LostSegment)
                }
                Some(_) => pos += 1,
                None => {
                    self.dirs[side.index()].scan_tried = Some(pos);
                    break;
                }
            }
        }
        if pos > SCAN_LIMIT || buf.len() > SCAN_LIMIT + HEADER_LEN + MAX_BODY {
            return Err(TlsFailure::LostSegment);
        }
        let dir = &mut self.dirs[side.index()];
        dir.scan = Some(buf);
        dir.scan_pos = pos;
        Ok(())
    }

    /// Tries the next few sequence numbers on a candidate record (left intact on failure).
    fn try_resync(&mut self, side: Side, record: &mut [u8]) -> Option<Opened> {
        let header: [u8; HEADER_LEN] = record[..HEADER_LEN].try_into().expect("header");
        let dir = &mut self.dirs[side.index()];
        let dec = dir.dec.as_mut()?;
        let body = &mut record[HEADER_LEN..];
        self.scratch.clear();
        self.scratch.extend_from_slice(body);
        for seq in dec.seq..=dec.seq + RESYNC_SEQS {
            if let Ok(opened) = dec.open_at(seq, &header, body) {
                dec.seq = seq + 1;
                dir.after_gap = false;
                return Some(opened);
            }
            body.copy_from_slice(&self.scratch);
        }
        None
    }
}

/// The body length of a plausible application-data record header, if it is one.
fn candidate(header: &[u8], version: u16) -> Option<usize> {
    let header = Header::parse(header).ok()?;
    (header.content_type == record::TYPE_APPLICATION_DATA
        && header.version == version
        && header.len >= 16)
        .then_some(header.len)
}
