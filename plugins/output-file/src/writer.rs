//! One open output file: buffered, gzip'd when its name ends in `.gz`, always appended to.

use flate2::write::GzEncoder;
use shadowtap_api::{wire, Message};
use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

enum Sink {
    Plain(BufWriter<File>),
    Gzip(GzEncoder<BufWriter<File>>),
}

/// An open file and what has been written to it by this process.
pub struct RecordFile {
    path: PathBuf,
    sink: Sink,
    records: u64,
    bytes: u64,
    unflushed: u64,
}

impl RecordFile {
    /// Opens `path` for appending (created if missing).
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let buffered = BufWriter::with_capacity(256 << 10, file);
        let sink = if path.extension().is_some_and(|e| e == "gz") {
            Sink::Gzip(GzEncoder::new(buffered, flate2::Compression::default()))
        } else {
            Sink::Plain(buffered)
        };
        Ok(RecordFile {
            path: path.to_path_buf(),
            sink,
            records: 0,
            bytes: 0,
            unflushed: 0,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records written.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Uncompressed bytes written.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends one record.
    pub fn write(&mut self, msg: &Message) -> io::Result<()> {
        match &mut self.sink {
            Sink::Plain(w) => wire::write_record(w, msg)?,
            Sink::Gzip(w) => wire::write_record(w, msg)?,
        }
        self.records += 1;
        self.unflushed += 1;
        self.bytes += wire::record_len(msg) as u64;
        Ok(())
    }

    /// Records written since the last successful flush.
    pub fn unflushed(&self) -> u64 {
        self.unflushed
    }

    /// Pushes buffered records to the file (a gzip sync point for `.gz`); returns how many
    /// records reached the file since the last flush.
    pub fn flush(&mut self) -> io::Result<u64> {
        match &mut self.sink {
            Sink::Plain(w) => w.flush()?,
            Sink::Gzip(w) => w.flush()?,
        }
        Ok(std::mem::take(&mut self.unflushed))
    }

    /// Flushes and ends the gzip stream; returns how many records reached the file.
    pub fn close(self) -> io::Result<u64> {
        match self.sink {
            Sink::Plain(mut w) => w.flush()?,
            Sink::Gzip(w) => w.finish()?.flush()?,
        }
        Ok(self.unflushed)
    }
}
