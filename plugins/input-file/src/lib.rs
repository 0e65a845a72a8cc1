//! `input-file`: replays `.gor` files (GoReplay's format, `.gz` transparently) with their
//! original timing, merging several files by timestamp.
//!
//! Flags: `--input-file PATH_OR_GLOB[|SPEED%|N]` (repeatable; each value is one
//! independently-timed input), `--input-file-loop`, `--input-file-read-depth N`,
//! `--input-file-max-wait DURATION`, `--input-file-speed 2x|200%`, `--input-file-dry-run`.
//! A `|200%` suffix replays twice as fast; `|10` passes at most 10 requests a second.
//!
//! Example: `shadowtap --input-file 'requests_*.gor|200%' --output-http http://staging`.
//!
//! Unlike GoReplay, the input ends when its files end (so the run exits), a glob that
//! matches nothing is an error, and bad records are reported by file and record number.
//! Payloads over `--copy-buffer-size` are cut (counted `truncated`); a record over
//! `wire::MAX_RECORD_LEN` (64 MiB) is skipped without being buffered whole, counted
//! `oversized`, and reading goes on at the next separator.
#![deny(missing_docs)]

mod merge;
mod timing;

use merge::{open_sources, Merger};
use shadowtap_api::pacing::{self, Pacer};
use shadowtap_api::values::{duration_value, split_limit};
use shadowtap_api::{
    instance_label, register_input, CoreSettings, Input, InputContext, InputSpec, Limit,
    PluginError,
};
use std::path::PathBuf;
use std::time::Duration;
use timing::DryRunSummary;

/// Flags of `input-file`.
#[derive(clap::Args, Debug)]
pub struct InputFileArgs {
    /// Replay a .gor file or glob (.gz read transparently); suffix |200% for speed, |N for N req/s
    #[arg(id = "input-file", long = "input-file", value_name = "PATH_OR_GLOB")]
    pub input_file: Vec<String>,
    /// Start again from the first file when all files have been replayed
    #[arg(id = "input-file-loop", long = "input-file-loop")]
    pub input_file_loop: bool,
    /// Records read ahead per file and re-ordered by timestamp
    #[arg(
        id = "input-file-read-depth",
        long = "input-file-read-depth",
        default_value_t = 100,
        value_name = "N"
    )]
    pub input_file_read_depth: usize,
    /// Longest pause between two records, after the speed factor (0 = no cap)
    #[arg(id = "input-file-max-wait", long = "input-file-max-wait", value_parser = duration_value, default_value = "0", value_name = "DURATION")]
    pub input_file_max_wait: Duration,
    /// Replay speed for files without a |N% suffix: 2x, 200% or 2 (twice as fast)
    #[arg(id = "input-file-speed", long = "input-file-speed", value_parser = pacing::parse_speed, default_value = "1", value_name = "SPEED")]
    pub input_file_speed: f64,
    /// Read every file, print a summary (records, bytes, timing) and exit without replaying
    #[arg(id = "input-file-dry-run", long = "input-file-dry-run")]
    pub input_file_dry_run: bool,
}

/// One `--input-file` value: a glob replayed as one timed stream.
struct FileInput {
    pattern: String,
    files: Vec<PathBuf>,
    speed: f64,
    max_wait: Duration,
    read_depth: usize,
    looping: bool,
    dry_run: bool,
}

impl Input for FileInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let cap = cx.settings().copy_buffer_size;
        let mut files = self.files.clone();
        let mut summary = DryRunSummary::default();
        loop {
            let sources = open_sources(&files, cap, cx.counters());
            let mut merger = Merger::new(sources, self.read_depth, cap, cx.counters().clone());
            let replayed = if self.dry_run {
                summary.read_all(&mut merger, self.speed, self.max_wait);
                0
            } else {
                self.replay(&mut merger, &mut cx)
            };
            summary.files += files.len() as u64;
            if !self.looping || self.dry_run || cx.is_stopping() {
                break;
            }
            if replayed == 0 {
                tracing::warn!(input = %self.pattern, "nothing to replay; not looping");
                break;
            }
            files = expand(&self.pattern).unwrap_or(files);
        }
        if self.dry_run {
            print!("{}", summary.render());
        }
        Ok(())
    }
}

impl FileInput {
    /// Emits every record with its original timing; returns how many were emitted.
    fn replay(&self, merger: &mut Merger, cx: &mut InputContext) -> u64 {
        let mut pacer = Pacer::new(self.speed).with_max_wait(self.max_wait);
        let mut emitted = 0;
        while let Some(msg) = merger.next_message() {
            if !pacer.wait(msg.meta.timestamp(), cx.shutdown()) || cx.emit(msg).is_err() {
                break;
            }
            emitted += 1;
        }
        emitted
    }
}

/// The files a pattern names, sorted; an error if none.
fn expand(pattern: &str) -> Result<Vec<PathBuf>, String> {
    let paths = glob::glob(pattern).map_err(|e| format!("invalid glob {pattern:?}: {e}"))?;
    let mut files = Vec::new();
    for path in paths.flatten() {
        if path.is_dir() {
            tracing::warn!(path = %path.display(), "skipping a directory matched by --input-file");
        } else {
            files.push(path);
        }
    }
    if files.is_empty() {
        let path = PathBuf::from(pattern);
        return Err(if path.is_dir() {
            format!("{pattern:?} is a directory, not a .gor file (use 'DIR/*.gor')")
        } else if path.exists() {
            format!("{pattern:?} is not readable")
        } else {
            format!("no file matches {pattern:?}")
        });
    }
    files.sort();
    Ok(files)
}

fn build(args: InputFileArgs, _: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    let usage = |message: String| PluginError::usage("--input-file", message);
    args.input_file
        .iter()
        .map(|value| {
            let (pattern, limit) = split_limit(value).map_err(usage)?;
            let (speed, limit) = match limit {
                Some(Limit::Percent(p)) if p <= 0.0 => {
                    return Err(usage(format!("speed {p}% in {value:?} must be above 0")))
                }
                Some(Limit::Percent(p)) => (p / 100.0, None),
                other => (args.input_file_speed, other),
            };
            let files = expand(&pattern).map_err(usage)?;
            Ok(InputSpec {
                label: instance_label("input-file", &pattern),
                plugin: Box::new(FileInput {
                    pattern,
                    files,
                    speed,
                    max_wait: args.input_file_max_wait,
                    read_depth: args.input_file_read_depth.max(1),
                    looping: args.input_file_loop,
                    dry_run: args.input_file_dry_run,
                }),
                backpressure: shadowtap_api::Backpressure::Wait,
                limit,
            })
        })
        .collect()
}

register_input! {
    name: "input-file",
    about: "Replays .gor files (and .gz) with their original timing, merged by timestamp",
    args: InputFileArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use shadowtap_api::{testkit, wire, Kind, Message, Meta};
    use std::io::Write;

    fn write_gor(path: &std::path::Path, stamps: &[i64]) {
        let mut file = std::fs::File::create(path).unwrap();
        for &ts in stamps {
            let msg = Message::new(
                Meta::new(Kind::Request, &format!("id{ts}"), ts, 0).unwrap(),
                format!("GET /{ts} HTTP/1.1\r\n\r\n"),
            );
            wire::write_record(&mut file, &msg).unwrap();
        }
    }

    #[test]
    fn conformance() {
        testkit::check_conformance("input-file", &[]);
    }

    #[test]
    fn merges_two_files_by_timestamp() {
        let dir = tempfile::tempdir().unwrap();
        write_gor(&dir.path().join("a.gor"), &[1, 4, 5]);
        write_gor(&dir.path().join("b.gor"), &[2, 3, 6]);
        let pattern = format!("{}/*.gor|100000%", dir.path().display());
        let spec = testkit::build_inputs("input-file", &["--input-file", &pattern])
            .unwrap()
            .remove(0);
        let (messages, snapshot, result) = testkit::run_input(spec);
        result.unwrap();
        let stamps: Vec<i64> = messages.iter().map(|m| m.meta.timestamp()).collect();
        assert_eq!(stamps, [1, 2, 3, 4, 5, 6]);
        assert_eq!(snapshot.passed, 6);
    }

    #[test]
    fn reads_gzip() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("p.gor");
        write_gor(&plain, &[1, 2]);
        let gz = dir.path().join("p.gor.gz");
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::fast(),
        );
        encoder.write_all(&std::fs::read(&plain).unwrap()).unwrap();
        encoder.finish().unwrap();
        let spec = testkit::build_inputs("input-file", &["--input-file", gz.to_str().unwrap()])
            .unwrap()
            .remove(0);
        let (messages, _, result) = testkit::run_input(spec);
        result.unwrap();
        assert_eq!(messages.len(), 2);
    }

    #[test]
    fn missing_and_directory_paths_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope*.gor");
        let err = testkit::build_error("input-file", &["--input-file", missing.to_str().unwrap()]);
        assert!(err.contains("no file matches"), "{err}");
        let err = testkit::build_error(
            "input-file",
            &["--input-file", dir.path().to_str().unwrap()],
        );
        assert!(err.contains("is a directory"), "{err}");
    }
}
