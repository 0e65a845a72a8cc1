//! One open output file: buffered, gzip'd when its name ends in `.gz`, always appended to.
//!
//! A `.gz` file is a series of gzip members, one finished per flush: after a `kill -9` the
//! file holds complete members (readable by `zcat`, GoReplay and `--input-file`) and at most
//! one unfinished member with the last interval's records. Appending to such a file first cuts
//! that unfinished member off ([`gzip_append_target`]), so later members stay readable.

use flate2::write::GzEncoder;
use shadowtap_api::{wire, Message};
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

enum Sink {
    Plain(BufWriter<File>),
    /// `None` only while one member is being finished and the next started.
    Gzip(Option<GzEncoder<BufWriter<File>>>),
}

/// An open file and what has been written to it by this process.
pub struct RecordFile {
    path: PathBuf,
    sink: Sink,
    records: u64,
    bytes: u64,
    unflushed: u64,
}

fn gzip_member(out: BufWriter<File>) -> GzEncoder<BufWriter<File>> {
    GzEncoder::new(out, flate2::Compression::default())
}

impl RecordFile {
    /// Opens `path` for appending (created if missing); see [`gzip_append_target`] for an
    /// existing `.gz` file. [`RecordFile::path`] stays `path` even when writing beside it.
    pub fn open(path: &Path) -> io::Result<Self> {
        let is_gzip = path.extension().is_some_and(|e| e == "gz");
        let target = match is_gzip {
            true => gzip_append_target(path)?,
            false => path.to_path_buf(),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&target)?;
        if !is_gzip {
            end_torn_record(&mut file, &target)?;
        }
        let buffered = BufWriter::with_capacity(256 << 10, file);
        let sink = if is_gzip {
            Sink::Gzip(Some(gzip_member(buffered)))
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
            Sink::Gzip(Some(w)) => wire::write_record(w, msg)?,
            Sink::Gzip(None) => return Err(io::Error::other("gzip member not restarted")),
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

    /// Pushes buffered records to the file (for `.gz`, finishes the gzip member and starts
    /// the next); returns how many records reached the file since the last flush.
    pub fn flush(&mut self) -> io::Result<u64> {
        if self.unflushed == 0 {
            return Ok(0);
        }
        match &mut self.sink {
            Sink::Plain(w) => w.flush()?,
            Sink::Gzip(member) => {
                let finished = member.take().expect("a gzip member").finish()?;
                let mut out = finished;
                out.flush()?;
                *member = Some(gzip_member(out));
            }
        }
        Ok(std::mem::take(&mut self.unflushed))
    }

    /// Flushes and ends the gzip stream; returns how many records reached the file.
    pub fn close(self) -> io::Result<u64> {
        match self.sink {
            Sink::Plain(mut w) => w.flush()?,
            Sink::Gzip(Some(w)) if self.unflushed > 0 => w.finish()?.flush()?,
            Sink::Gzip(_) => {}
        }
        Ok(self.unflushed)
    }
}

/// Where appending to the `.gz` file `path` may go on: `path` itself, after cutting off an
/// unfinished last member (a killed run's last interval); or, when the file is damaged before
/// its end (or is not gzip), a new file beside it, named in a warning, so that appending
/// never destroys or hides what it cannot read.
pub fn gzip_append_target(path: &Path) -> io::Result<PathBuf> {
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(path.to_path_buf()),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    match scan_members(BufReader::new(file))? {
        Scan::Complete => Ok(path.to_path_buf()),
        Scan::UnfinishedTail(complete) => {
            OpenOptions::new()
                .write(true)
                .open(path)?
                .set_len(complete)?;
            tracing::warn!(
                file = %path.display(),
                "output-file: cut {} bytes of an unfinished gzip member (a previous run was \
                 killed) before appending",
                len - complete
            );
            Ok(path.to_path_buf())
        }
        Scan::Damaged(at) => {
            let beside = free_sibling(path);
            tracing::warn!(
                file = %path.display(),
                "output-file: not valid gzip at byte {at}; appending to {} instead",
                beside.display()
            );
            Ok(beside)
        }
    }
}

/// What reading an existing `.gz` file's members found.
enum Scan {
    Complete,
    /// Complete members up to this offset, then one cut short by the end of the file.
    UnfinishedTail(u64),
    /// Invalid data after this offset of complete members.
    Damaged(u64),
}

fn scan_members(mut input: BufReader<File>) -> io::Result<Scan> {
    let mut complete = 0;
    loop {
        if input.fill_buf()?.is_empty() {
            return Ok(Scan::Complete);
        }
        let mut member = flate2::bufread::GzDecoder::new(&mut input);
        match io::copy(&mut member, &mut io::sink()) {
            Ok(_) => complete = input.stream_position()?,
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Ok(Scan::UnfinishedTail(complete))
            }
            Err(_) => return Ok(Scan::Damaged(complete)),
        }
    }
}

/// `dir/name.N.gz` for the first N that does not exist.
fn free_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let stem = name.strip_suffix(".gz").unwrap_or(&name).to_string();
    (1..)
        .map(|n| path.with_file_name(format!("{stem}.{n}.gz")))
        .find(|candidate| !candidate.exists())
        .expect("some free name")
}

/// A plain file whose last record was cut short (a `kill -9` mid-write) gets its separator, so
/// that the torn record stays one bad record instead of swallowing the first appended one.
fn end_torn_record(file: &mut File, path: &Path) -> io::Result<()> {
    let len = file.metadata()?.len();
    let tail_len = wire::RECORD_SEPARATOR.len() as u64;
    if len == 0 {
        return Ok(());
    }
    let mut tail = vec![0; len.min(tail_len) as usize];
    file.seek(io::SeekFrom::Start(len - tail.len() as u64))?;
    std::io::Read::read_exact(file, &mut tail)?;
    if tail != wire::RECORD_SEPARATOR {
        tracing::warn!(
            "{}: the last record was cut short; it is closed with a separator before appending",
            path.display()
        );
        file.write_all(wire::RECORD_SEPARATOR)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{Kind, Meta};
    use std::io::Read;

    #[test]
    fn appending_to_a_torn_plain_file_keeps_every_appended_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("torn.gor");
        let mut whole = Vec::new();
        wire::write_record(&mut whole, &msg(1)).unwrap();
        wire::write_record(&mut whole, &msg(2)).unwrap();
        std::fs::write(&path, &whole[..whole.len() - 5]).unwrap();
        let mut file = RecordFile::open(&path).unwrap();
        file.write(&msg(3)).unwrap();
        file.flush().unwrap();
        drop(file);
        let bytes = std::fs::read(&path).unwrap();
        let mut reader = wire::RecordReader::new(&bytes[..], 1 << 20);
        let mut ids = Vec::new();
        while let Ok(Some(record)) = reader.next_record() {
            ids.push(record.message.meta.id().to_string());
        }
        assert_eq!(ids.first().map(String::as_str), Some("id1"));
        assert_eq!(ids.last().map(String::as_str), Some("id3"));
    }

    fn msg(i: i64) -> Message {
        Message::new(
            Meta::new(Kind::Request, &format!("id{i}"), i, 0).unwrap(),
            "GET / HTTP/1.1\r\n\r\n",
        )
    }

    fn gunzip(path: &Path) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        flate2::read::MultiGzDecoder::new(File::open(path)?).read_to_end(&mut out)?;
        Ok(out)
    }

    #[test]
    fn each_flush_finishes_a_member_and_an_unfinished_tail_is_cut() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.gor.gz");
        let mut file = RecordFile::open(&path).unwrap();
        file.write(&msg(1)).unwrap();
        assert_eq!(file.flush().unwrap(), 1);
        file.write(&msg(2)).unwrap();
        assert_eq!(file.flush().unwrap(), 1);
        let complete = std::fs::read(&path).unwrap();
        let mut expected = Vec::new();
        wire::write_record(&mut expected, &msg(1)).unwrap();
        wire::write_record(&mut expected, &msg(2)).unwrap();
        assert_eq!(
            gunzip(&path).unwrap(),
            expected,
            "readable while still open"
        );
        drop(file);
        // What a kill -9 leaves: half a member after the complete ones.
        let mut killed = complete.clone();
        killed.extend_from_slice(&complete[..complete.len() / 4]);
        std::fs::write(&path, &killed).unwrap();
        assert!(gunzip(&path).is_err());
        assert_eq!(gzip_append_target(&path).unwrap(), path);
        assert_eq!(std::fs::read(&path).unwrap(), complete);
    }

    #[test]
    fn a_damaged_or_foreign_file_is_never_cut_and_appending_goes_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.gor.gz");
        std::fs::write(&path, b"plain text, not gzip").unwrap();
        let mut file = RecordFile::open(&path).unwrap();
        file.write(&msg(1)).unwrap();
        file.close().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"plain text, not gzip");
        assert!(!gunzip(&dir.path().join("b.gor.1.gz")).unwrap().is_empty());
    }
}
