//! Reading several `.gor` files at once and merging their records by timestamp.

use flate2::read::MultiGzDecoder;
use shadowtap_api::wire::{RecordError, RecordReader};
use shadowtap_api::{Counters, Message, Reason, Throttle};
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Room for the header line on top of the payload cap.
const HEADER_ALLOWANCE: usize = 4096;

/// One open file and its read-ahead buffer.
pub struct Source {
    path: PathBuf,
    reader: RecordReader<Box<dyn BufRead + Send>>,
    ahead: BinaryHeap<Reverse<Queued>>,
    exhausted: bool,
    bytes: u64,
}

/// A record waiting in the read-ahead buffer, ordered by (timestamp, read order).
struct Queued {
    timestamp: i64,
    order: u64,
    message: Message,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        (self.timestamp, self.order) == (other.timestamp, other.order)
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (self.timestamp, self.order).cmp(&(other.timestamp, other.order))
    }
}

/// Opens every file; a file that cannot be opened is reported, counted and skipped.
pub fn open_sources(files: &[PathBuf], payload_cap: usize, counters: &Counters) -> Vec<Source> {
    files
        .iter()
        .filter_map(|path| match open(path) {
            Ok(stream) => Some(Source {
                path: path.clone(),
                reader: RecordReader::new(stream, payload_cap.saturating_add(HEADER_ALLOWANCE)),
                ahead: BinaryHeap::new(),
                exhausted: false,
                bytes: 0,
            }),
            Err(e) => {
                tracing::error!(file = %path.display(), "cannot open: {e}");
                counters.add_error();
                None
            }
        })
        .collect()
}

fn open(path: &Path) -> std::io::Result<Box<dyn BufRead + Send>> {
    let file = File::open(path)?;
    if file.metadata()?.len() == 0 {
        tracing::warn!(file = %path.display(), "file is empty");
    }
    let is_gzip = path.extension().is_some_and(|e| e == "gz");
    Ok(if is_gzip {
        Box::new(BufReader::with_capacity(
            256 << 10,
            MultiGzDecoder::new(file),
        ))
    } else {
        Box::new(BufReader::with_capacity(256 << 10, file))
    })
}

/// The k-way merge: always yields the earliest record among the heads of all files.
pub struct Merger {
    sources: Vec<Source>,
    depth: usize,
    counters: Arc<Counters>,
    payload_cap: usize,
    order: u64,
    warnings: Throttle,
}

impl Merger {
    /// Merges `sources`, reading up to `depth` records ahead in each and cutting payloads
    /// to `payload_cap` bytes (the copy buffer size).
    pub fn new(
        sources: Vec<Source>,
        depth: usize,
        payload_cap: usize,
        counters: Arc<Counters>,
    ) -> Self {
        Merger {
            sources,
            depth,
            counters,
            payload_cap,
            order: 0,
            warnings: Throttle::default(),
        }
    }

    /// The next record in timestamp order, or `None` when every file is exhausted.
    pub fn next_message(&mut self) -> Option<Message> {
        for index in 0..self.sources.len() {
            self.fill(index);
        }
        let earliest = self
            .sources
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.ahead.peek().map(|Reverse(q)| (q.timestamp, i)))
            .min()?
            .1;
        let Reverse(queued) = self.sources[earliest].ahead.pop()?;
        Some(queued.message)
    }

    /// Files read and bytes of records read so far.
    pub fn totals(&self) -> (usize, u64) {
        (
            self.sources.len(),
            self.sources.iter().map(|s| s.bytes).sum(),
        )
    }

    fn fill(&mut self, index: usize) {
        while !self.sources[index].exhausted && self.sources[index].ahead.len() < self.depth {
            let next = self.sources[index].reader.next_record();
            match next {
                Ok(Some(record)) => self.queue(index, record),
                Ok(None) => self.sources[index].exhausted = true,
                Err(e) => self.report(index, e),
            }
        }
    }

    fn queue(&mut self, index: usize, record: shadowtap_api::wire::Record) {
        let mut message = record.message;
        let cut = message.truncate_payload(self.payload_cap) || record.truncated_bytes > 0;
        if cut {
            self.counters.add_truncated(1);
            self.warn(
                index,
                &format!(
                    "record {} is larger than --copy-buffer-size; truncated",
                    record.number
                ),
            );
        }
        let source = &mut self.sources[index];
        source.bytes += (message.meta.line_len() + message.payload.len()) as u64;
        self.order += 1;
        source.ahead.push(Reverse(Queued {
            timestamp: message.meta.timestamp(),
            order: self.order,
            message,
        }));
    }

    fn report(&mut self, index: usize, error: RecordError) {
        self.counters.add_in(1);
        let reason = match error {
            RecordError::Oversized { .. } => Reason::Oversized,
            _ => Reason::Malformed,
        };
        self.counters.add_drop(reason, 1);
        if matches!(
            error,
            RecordError::Io { .. } | RecordError::Unterminated { .. }
        ) {
            self.sources[index].exhausted = true;
        }
        if matches!(error, RecordError::Io { .. }) {
            self.counters.add_error();
        }
        self.warn(index, &format!("{error}; skipped"));
    }

    fn warn(&self, index: usize, what: &str) {
        if let Some(held_back) = self.warnings.allow() {
            let file = self.sources[index].path.display();
            if held_back > 0 {
                tracing::warn!("{file}: {what} ({held_back} similar warnings held back)");
            } else {
                tracing::warn!("{file}: {what}");
            }
        }
    }
}
