//! `output-stdout`: writes every message to standard output as a `.gor` record (header line,
//! payload, `\n🐵🙈🙉\n`), byte-identical to what `output-file` writes.
//!
//! Flags: `--output-stdout`, `--output-stdout-format gor|json` (json: one structured record per
//! line, see `shadowtap-record`; with `--grpc-descriptor-set` gRPC messages are decoded in
//! them). Example: `shadowtap --input-pcap web.pcap:80 --output-stdout`.
//! When the reader of stdout goes away (`| head`), the run ends quietly with status 0.
#![deny(missing_docs)]

use shadowtap_api::Message;
use shadowtap_api::{
    register_output, wire, CoreSettings, Counters, Inbox, Next, Output, OutputContext, OutputSpec,
    PluginError, Reason,
};
use shadowtap_record::Recorder;
use std::io::{self, BufWriter, Write};
use std::time::Duration;

/// Flags of `output-stdout`.
#[derive(clap::Args, Debug)]
pub struct OutputStdoutArgs {
    /// Write every message to stdout in the .gor record format
    #[arg(id = "output-stdout", long = "output-stdout")]
    pub output_stdout: bool,
    /// gor: .gor records (default, as GoReplay); json: one structured JSON record per line
    #[arg(id = "output-stdout-format", long = "output-stdout-format", value_parser = ["gor", "json"], default_value = "gor")]
    pub output_stdout_format: String,
}

/// How each message is written.
#[derive(Debug)]
enum Format {
    Gor,
    Json(Recorder),
}

impl Format {
    fn write(&self, out: &mut impl Write, msg: &Message, counters: &Counters) -> io::Result<()> {
        match self {
            Format::Gor => wire::write_record(out, msg),
            Format::Json(recorder) => {
                out.write_all(recorder.record(msg, counters).to_json().as_bytes())?;
                out.write_all(b"\n")
            }
        }
    }
}

struct StdoutOutput {
    format: Format,
}

const IDLE_FLUSH: Duration = Duration::from_millis(100);

impl Output for StdoutOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
        loop {
            let (written, count) = match inbox.recv_timeout(IDLE_FLUSH) {
                Next::Message(msg) => (self.format.write(&mut out, &msg, cx.counters()), 1),
                Next::Timeout => (out.flush(), 0),
                Next::Closed => break,
            };
            match written {
                Ok(()) => cx.counters().add_out(count),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                    cx.counters().add_drop(Reason::Shutdown, count);
                    return discard_after_broken_pipe(inbox, &cx);
                }
                Err(e) => return Err(PluginError::io("writing to stdout", e)),
            }
        }
        match out.flush() {
            Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
                Err(PluginError::io("writing to stdout", e))
            }
            _ => Ok(()),
        }
    }
}

fn discard_after_broken_pipe(inbox: Inbox, cx: &OutputContext) -> Result<(), PluginError> {
    tracing::info!("stdout was closed by its reader; stopping");
    cx.stop_run();
    for _ in inbox {
        cx.counters().add_drop(Reason::Shutdown, 1);
    }
    Ok(())
}

fn build(args: OutputStdoutArgs, settings: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    if !args.output_stdout {
        return Ok(Vec::new());
    }
    let format = if args.output_stdout_format == "json" {
        Format::Json(Recorder::from_settings(settings)?)
    } else {
        Format::Gor
    };
    Ok(vec![OutputSpec::new(
        "output-stdout",
        Box::new(StdoutOutput { format }),
    )])
}

register_output! {
    name: "output-stdout",
    about: "Writes every message to stdout as a .gor record",
    args: OutputStdoutArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use shadowtap_api::testkit;

    #[test]
    fn conformance() {
        testkit::check_conformance("output-stdout", &[]);
    }
}
