//! `output-file`: records messages to `.gor` files (GoReplay's format; gzip when the name
//! ends in `.gz`), with GoReplay's name tokens and chunking.
//!
//! Flags: `--output-file TEMPLATE` (repeatable; tokens `%Y %m %d %H %M %S %NS` of local time,
//! `%r` the message id, `%t` its kind, `%i` a random instance id), `--output-file-append`,
//! `--output-file-queue-limit N` (records per chunk, default 256), `--output-file-size-limit SIZE`
//! (default 32mb), `--output-file-max-size-limit SIZE` (total, default 1tb),
//! `--output-file-flush-interval DURATION` (default 1s).
//!
//! Buffered records reach the disk at least every flush interval, however busy the output.
//! A `.gz` file is written as one gzip member per interval, so a `kill -9` loses at most the
//! last interval: the finished members stay readable by `zcat`, GoReplay and `--input-file`,
//! and `--output-file-append` cuts the unfinished member off before appending (or, if the
//! file is damaged before its end, writes `NAME.1.gz` beside it and says so).
//! Ids expanded by `%r` are sanitised (`/`, `\`, control characters and `..` become `_`).
//!
//! Without `--output-file-append`, `requests.gor` is written as chunks `requests_0.gor`,
//! `requests_1.gor`, … (a restart continues after the highest existing index); with it, the
//! file named by the template is opened in append mode and really appended to.
//!
//! Example: `shadowtap --input-raw :80 --output-file 'traffic-%Y%m%d.gor.gz'`.
#![deny(missing_docs)]

mod naming;
mod writer;

use naming::{next_chunk, InstanceId, Template};
use shadowtap_api::values::{duration_value, size_value, split_limit};
use shadowtap_api::{
    instance_label, register_output, wire, CoreSettings, Inbox, Message, Next, Output,
    OutputContext, OutputSpec, PluginError, Reason, Throttle,
};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use writer::RecordFile;

/// Flags of `output-file`.
#[derive(clap::Args, Debug)]
pub struct OutputFileArgs {
    /// Record messages to a file; name tokens %Y %m %d %H %M %S %NS %r %t %i; .gz compresses
    #[arg(id = "output-file", long = "output-file", value_name = "TEMPLATE")]
    pub output_file: Vec<String>,
    /// Append to the file named by the template instead of writing numbered chunks
    #[arg(id = "output-file-append", long = "output-file-append")]
    pub output_file_append: bool,
    /// Records per chunk before starting the next chunk (0 = no limit)
    #[arg(
        id = "output-file-queue-limit",
        long = "output-file-queue-limit",
        default_value_t = 256,
        value_name = "N"
    )]
    pub output_file_queue_limit: u64,
    /// Bytes per chunk before starting the next chunk, e.g. 32mb (0 = no limit)
    #[arg(id = "output-file-size-limit", long = "output-file-size-limit", value_parser = size_value, default_value = "32mb", value_name = "SIZE")]
    pub output_file_size_limit: u64,
    /// Total bytes this output writes; later messages are dropped and counted
    #[arg(id = "output-file-max-size-limit", long = "output-file-max-size-limit", value_parser = size_value, default_value = "1tb", value_name = "SIZE")]
    pub output_file_max_size_limit: u64,
    /// How often buffered records are flushed to disk
    #[arg(id = "output-file-flush-interval", long = "output-file-flush-interval", value_parser = duration_value, default_value = "1s", value_name = "DURATION")]
    pub output_file_flush_interval: Duration,
}

/// Limits that decide when a chunk is full and when the output stops writing.
#[derive(Clone, Copy, Debug)]
struct Limits {
    append: bool,
    records_per_chunk: u64,
    bytes_per_chunk: u64,
    total_bytes: u64,
}

struct FileOutput {
    template: Template,
    limits: Limits,
    flush_interval: Duration,
    current: Option<RecordFile>,
    current_name: Option<PathBuf>,
    written_total: u64,
    warnings: Throttle,
}

impl Output for FileOutput {
    fn run(mut self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let interval = self.flush_interval.max(Duration::from_millis(10));
        let mut next_flush = Instant::now() + interval;
        loop {
            let wait = next_flush.saturating_duration_since(Instant::now());
            match inbox.recv_timeout(wait) {
                Next::Message(msg) => self.write(&msg, &cx),
                Next::Timeout => {}
                Next::Closed => break,
            }
            // Every interval under any load, not only after an idle one.
            if Instant::now() >= next_flush {
                self.flush(&cx);
                next_flush = Instant::now() + interval;
            }
        }
        self.close(&cx);
        Ok(())
    }
}

impl FileOutput {
    fn write(&mut self, msg: &Message, cx: &OutputContext) {
        let len = wire::record_len(msg) as u64;
        if self.written_total + len > self.limits.total_bytes {
            cx.counters().add_drop(Reason::SizeLimit, 1);
            self.warn("--output-file-max-size-limit reached; dropping messages");
            return;
        }
        let path = self.path_for(msg);
        if self.current.as_ref().is_none_or(|f| f.path() != path) {
            self.close(cx);
            match RecordFile::open(&path) {
                Ok(file) => self.current = Some(file),
                Err(e) => return self.fail(cx, &path, &e, 1),
            }
            self.current_name = Some(self.template.render(msg));
        }
        let file = self.current.as_mut().expect("opened above");
        match file.write(msg) {
            Ok(()) => self.written_total += len,
            Err(e) => {
                let file = self.current.take().expect("current file");
                self.fail(cx, file.path(), &e, file.unflushed() + 1);
            }
        }
    }

    /// The path this message goes to: the template's name, or its current or next chunk.
    fn path_for(&self, msg: &Message) -> PathBuf {
        let name = self.template.render(msg);
        if self.limits.append {
            return name;
        }
        match (&self.current, &self.current_name) {
            (Some(file), Some(current)) if *current == name && !self.chunk_full(file) => {
                file.path().to_path_buf()
            }
            (Some(file), Some(current)) if *current == name => next_chunk(&name, Some(file.path())),
            _ => next_chunk(&name, None),
        }
    }

    fn chunk_full(&self, file: &RecordFile) -> bool {
        let limits = self.limits;
        (limits.records_per_chunk > 0 && file.records() >= limits.records_per_chunk)
            || (limits.bytes_per_chunk > 0 && file.bytes() >= limits.bytes_per_chunk)
    }

    /// Flushes buffered records; they count as written only once they reached the file.
    fn flush(&mut self, cx: &OutputContext) {
        let Some(file) = &mut self.current else {
            return;
        };
        match file.flush() {
            Ok(written) => cx.counters().add_out(written),
            Err(e) => {
                let file = self.current.take().expect("current file");
                self.fail(cx, file.path(), &e, file.unflushed());
            }
        }
    }

    fn close(&mut self, cx: &OutputContext) {
        let Some(file) = self.current.take() else {
            return;
        };
        let path = file.path().to_path_buf();
        let unflushed = file.unflushed();
        match file.close() {
            Ok(written) => cx.counters().add_out(written),
            Err(e) => self.fail(cx, &path, &e, unflushed),
        }
    }

    /// Counts `lost` records as dropped by an output error and reports the path.
    fn fail(&self, cx: &OutputContext, path: &std::path::Path, error: &std::io::Error, lost: u64) {
        cx.counters().add_drop(Reason::OutputError, lost);
        cx.counters().add_error();
        self.warn(&format!("cannot write {}: {error}", path.display()));
    }

    fn warn(&self, what: &str) {
        if let Some(held_back) = self.warnings.allow() {
            tracing::error!("output-file: {what} ({held_back} similar messages held back)");
        }
    }
}

fn build(args: OutputFileArgs, _: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    let instance = InstanceId::random();
    let limits = Limits {
        append: args.output_file_append,
        records_per_chunk: args.output_file_queue_limit,
        bytes_per_chunk: args.output_file_size_limit,
        total_bytes: args.output_file_max_size_limit,
    };
    args.output_file
        .iter()
        .map(|value| {
            let (template, limit) =
                split_limit(value).map_err(|e| PluginError::usage("--output-file", e))?;
            check_directory(&template)?;
            let output = FileOutput {
                template: Template::new(&template, instance.clone()),
                limits,
                flush_interval: args.output_file_flush_interval,
                current: None,
                current_name: None,
                written_total: 0,
                warnings: Throttle::default(),
            };
            let mut spec =
                OutputSpec::new(instance_label("output-file", &template), Box::new(output));
            spec.limit = limit;
            Ok(spec)
        })
        .collect()
}

/// Fails early when the directory of a template without tokens in its directory part is missing.
fn check_directory(template: &str) -> Result<(), PluginError> {
    let dir = std::path::Path::new(template)
        .parent()
        .filter(|d| !d.as_os_str().is_empty());
    match dir {
        Some(dir) if !dir.to_string_lossy().contains('%') && !dir.is_dir() => {
            Err(PluginError::usage(
                "--output-file",
                format!("directory {} does not exist", dir.display()),
            ))
        }
        _ => Ok(()),
    }
}

register_output! {
    name: "output-file",
    about: "Records messages to .gor files (gzip for .gz), chunked as GoReplay does",
    args: OutputFileArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use shadowtap_api::{testkit, wire, Kind, Message, Meta};

    fn messages(n: i64) -> Vec<Message> {
        (0..n)
            .map(|i| {
                Message::new(
                    Meta::new(Kind::Request, &format!("id{i}"), i, 0).unwrap(),
                    format!("GET /{i} HTTP/1.1\r\n\r\n"),
                )
            })
            .collect()
    }

    fn read_back(path: &std::path::Path) -> Vec<Message> {
        let bytes = std::fs::read(path).unwrap();
        let mut reader = wire::RecordReader::new(&bytes[..], 1 << 20);
        std::iter::from_fn(|| reader.next_record().unwrap())
            .map(|r| r.message)
            .collect()
    }

    #[test]
    fn conformance() {
        testkit::check_conformance("output-file", &[]);
    }

    #[test]
    fn chunks_by_queue_limit() {
        let dir = tempfile::tempdir().unwrap();
        let template = dir.path().join("out.gor");
        let spec = testkit::build_outputs(
            "output-file",
            &[
                "--output-file",
                template.to_str().unwrap(),
                "--output-file-queue-limit",
                "2",
            ],
        )
        .unwrap()
        .remove(0);
        let (snapshot, result) = testkit::run_output(spec, messages(5));
        result.unwrap();
        assert_eq!(snapshot.passed, 5);
        assert_eq!(read_back(&dir.path().join("out_0.gor")).len(), 2);
        assert_eq!(read_back(&dir.path().join("out_1.gor")).len(), 2);
        assert_eq!(read_back(&dir.path().join("out_2.gor")).len(), 1);
    }

    #[test]
    fn append_really_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.gor");
        for _ in 0..2 {
            let spec = testkit::build_outputs(
                "output-file",
                &[
                    "--output-file",
                    path.to_str().unwrap(),
                    "--output-file-append",
                ],
            )
            .unwrap()
            .remove(0);
            testkit::run_output(spec, messages(3)).1.unwrap();
        }
        assert_eq!(read_back(&path).len(), 6);
    }

    #[test]
    fn max_size_drops_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log.gor");
        let spec = testkit::build_outputs(
            "output-file",
            &[
                "--output-file",
                path.to_str().unwrap(),
                "--output-file-append",
                "--output-file-max-size-limit",
                "100",
            ],
        )
        .unwrap()
        .remove(0);
        let (snapshot, _) = testkit::run_output(spec, messages(5));
        assert_eq!(snapshot.passed, 2);
        assert_eq!(snapshot.dropped(), 3);
    }

    #[test]
    fn missing_directory_is_a_usage_error() {
        let err = testkit::build_error("output-file", &["--output-file", "/nonexistent/dir/x.gor"]);
        assert!(err.contains("/nonexistent/dir"), "{err}");
    }
}
