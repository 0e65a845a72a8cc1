//! Reading a capture file (`.pcap`, nanosecond pcap, `.pcapng`, any of them gzip'd) into the
//! capture worker: the input behind `--input-pcap` and `--input-raw FILE --input-raw-engine
//! pcap_file`. Frames are filtered by an optional BPF expression (compiled once per link type),
//! paced to a replay speed when one is given, and handed to the [`Worker`].
//!
//! A large file read as fast as possible is read by several workers (one per core but one by
//! default): one reader shards the frames by connection and the workers' messages are merged
//! back into the order one worker emits them (see [`crate::parallel`]).

use crate::file_reader::{self, open_capture, CaptureFile, Frame};
use crate::parallel::{read_sharded, Setup};
use crate::{Delivery, Worker};
use shadowtap_api::{Input, InputContext, Pacer, PluginError, Reason};
use shadowtap_capture::tls::TlsSettings;
use shadowtap_capture::{DecodeError, TrackerConfig};
use std::collections::HashMap;
use std::path::PathBuf;

/// One capture file to read.
pub struct FileInput {
    /// The file.
    pub path: PathBuf,
    /// How its conversations are tracked.
    pub tracker: TrackerConfig,
    /// Only frames matching this BPF expression.
    pub bpf: Option<String>,
    /// Replay speed factor; `None` reads as fast as possible.
    pub speed: Option<f64>,
    /// Workers (flow tables) sharing the file; `None`: one per available core but one, one for a
    /// small file. A paced replay always reads with one.
    pub workers: Option<usize>,
}

/// Files smaller than this are read by one worker unless told otherwise.
pub const SMALL_FILE: u64 = 8 << 20;

impl FileInput {
    /// How many workers read the file.
    pub fn worker_count(&self) -> usize {
        if self.speed.is_some() {
            return 1;
        }
        if let Some(workers) = self.workers {
            return workers.max(1);
        }
        let size = std::fs::metadata(&self.path).map_or(0, |m| m.len());
        if size < SMALL_FILE {
            return 1;
        }
        default_workers(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }
}

/// Trackers for a large file on `cores` cores: all but one, which the engine and the outputs
/// need (on 2 cores one worker is faster than two: 0.17 s against 0.25 s for 545k packets in
/// examples/bench-capture.sh).
fn default_workers(cores: usize) -> usize {
    cores.saturating_sub(1).max(1)
}

impl Input for FileInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let Some(mut capture) = open_capture(&self.path)? else {
            return Ok(());
        };
        let tracker = with_embedded_secrets(&self.tracker, &mut capture);
        let workers = self.worker_count();
        if workers > 1 {
            let setup = Setup {
                path: &self.path,
                tracker: &tracker,
                workers,
            };
            read_sharded(setup, capture, Filters::new(self.bpf.clone()), &mut cx);
            return Ok(());
        }
        let worker = Worker::new(tracker, cx.counters().clone(), Delivery::Wait);
        let mut reading = Reading {
            path: self.path.clone(),
            worker,
            filters: Filters::new(self.bpf.clone()),
            pacer: self.speed.map(Pacer::new),
        };
        reading.read_all(&mut capture, &mut cx);
        reading.worker.finish(&mut cx);
        Ok(())
    }
}

/// The tracker settings for `capture`: a pcapng file's Decryption Secrets Blocks add to the
/// key store (one of its own without `--input-raw-tls-keylog`), so TLS is decrypted with no flag.
fn with_embedded_secrets(tracker: &TrackerConfig, capture: &mut CaptureFile) -> TrackerConfig {
    let mut tracker = tracker.clone();
    let store = tracker
        .tls
        .as_ref()
        .map_or_else(Default::default, |tls| tls.keys.clone());
    if capture.use_decryption_secrets(store.clone()) && tracker.tls.is_none() {
        tracker.tls = Some(TlsSettings {
            once_keys_known: true,
            ..TlsSettings::with_keys(store)
        });
    }
    tracker
}

/// A capture-file input for other plugins (GoReplay's `--input-raw file.pcap:80
/// --input-raw-engine pcap_file`), read as fast as possible.
pub fn file_input(
    path: PathBuf,
    tracker: TrackerConfig,
    bpf: Option<String>,
) -> Result<Box<dyn Input>, String> {
    file_reader::check(&path)?;
    if let Some(expression) = &bpf {
        compile_bpf(expression, 1).map_err(|e| format!("BPF filter {expression:?}: {e}"))?;
    }
    Ok(Box::new(FileInput {
        path,
        tracker,
        bpf,
        speed: None,
        workers: None,
    }))
}

/// Reading one file: filter, pace, hand frames to the capture worker.
struct Reading {
    path: PathBuf,
    worker: Worker,
    filters: Filters,
    /// With a speed: when each packet is due.
    pacer: Option<Pacer>,
}

impl Reading {
    fn read_all(&mut self, capture: &mut CaptureFile, cx: &mut InputContext) {
        let mut number = 0u64;
        while !self.worker.is_stopped() && !cx.is_stopping() {
            number += 1;
            match capture.next_frame() {
                Ok(Some(frame)) => self.packet(&frame, number, cx),
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(
                        "{}: packet {number}: {e}; the rest of the file is unreadable",
                        self.path.display()
                    );
                    cx.counters().add_refused(Reason::FormatError, 1);
                    break;
                }
            }
        }
    }

    fn packet(&mut self, frame: &Frame<'_>, number: u64, cx: &mut InputContext) {
        if !self.filters.pass(frame.linktype, frame.data, &self.path) {
            cx.counters()
                .extra("packets filtered by bpf")
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        if let Some(due) = self.pacer.as_mut().and_then(|p| p.due(frame.ts_ns)) {
            self.worker.flush(cx);
            if !cx.shutdown().sleep_until(due) {
                return;
            }
        }
        let result = self
            .worker
            .frame(frame.linktype, frame.data, frame.wire_len, frame.ts_ns, cx);
        if let Err(DecodeError::UnsupportedLinkType(linktype)) = result {
            if self.filters.first_unsupported(linktype) {
                tracing::warn!("{}: packet {number}: link type {linktype} is not supported; its packets are skipped", self.path.display());
            }
        }
    }
}

/// The BPF filter, compiled once per link type, and link types already warned about.
pub(crate) struct Filters {
    expression: Option<String>,
    compiled: HashMap<u32, Option<pcap::BpfProgram>>,
    warned: Vec<u32>,
}

impl Filters {
    pub(crate) fn new(expression: Option<String>) -> Self {
        Filters {
            expression,
            compiled: HashMap::new(),
            warned: Vec::new(),
        }
    }

    /// Whether a frame passes the filter (every frame does without one).
    #[inline]
    pub(crate) fn pass(&mut self, linktype: u32, data: &[u8], path: &std::path::Path) -> bool {
        match &self.expression {
            None => true,
            Some(_) => self.matches(linktype, data, path),
        }
    }

    #[cold]
    fn matches(&mut self, linktype: u32, data: &[u8], path: &std::path::Path) -> bool {
        let Some(expression) = &self.expression else {
            return true;
        };
        let program = self.compiled.entry(linktype).or_insert_with(|| {
            match compile_bpf(expression, linktype) {
                Ok(program) => Some(program),
                Err(e) => {
                    tracing::warn!(
                        "{}: the BPF filter does not apply to link type {linktype}: {e}",
                        path.display()
                    );
                    None
                }
            }
        });
        program.as_ref().is_none_or(|p| p.filter(data))
    }

    fn first_unsupported(&mut self, linktype: u32) -> bool {
        if self.warned.contains(&linktype) {
            return false;
        }
        self.warned.push(linktype);
        true
    }
}

/// Compiles `expression` for frames of `linktype`.
pub fn compile_bpf(expression: &str, linktype: u32) -> Result<pcap::BpfProgram, pcap::Error> {
    pcap::Capture::dead(pcap::Linktype(linktype as i32))?.compile(expression, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(path: PathBuf, speed: Option<f64>, workers: Option<usize>) -> FileInput {
        FileInput {
            path,
            tracker: TrackerConfig::default(),
            bpf: None,
            speed,
            workers,
        }
    }

    #[test]
    fn worker_counts_follow_size_pacing_and_the_flag() {
        let dir = tempfile::tempdir().unwrap();
        let small = dir.path().join("small.pcap");
        std::fs::write(&small, [0u8; 100]).unwrap();
        let big = dir.path().join("big.pcap");
        std::fs::File::create(&big)
            .unwrap()
            .set_len(SMALL_FILE)
            .unwrap();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(input(small.clone(), None, None).worker_count(), 1);
        assert_eq!(
            input(big.clone(), None, None).worker_count(),
            default_workers(cores)
        );
        assert_eq!(
            (default_workers(1), default_workers(2), default_workers(8)),
            (1, 1, 7)
        );
        assert_eq!(input(small, None, Some(3)).worker_count(), 3);
        assert_eq!(input(big.clone(), Some(1.0), None).worker_count(), 1);
        assert_eq!(input(big.clone(), Some(2.0), Some(4)).worker_count(), 1);
        assert_eq!(input(big, None, Some(0)).worker_count(), 1);
    }
}
