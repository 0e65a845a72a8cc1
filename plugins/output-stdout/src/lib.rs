//! `output-stdout`: writes every message to standard output as a `.gor` record (header line,
//! payload, `\n🐵🙈🙉\n`), byte-identical to what `output-file` writes.
//!
//! Flags: `--output-stdout`. Example: `shadowtap --input-file requests.gor --output-stdout | less`.
//! When the reader of stdout goes away (`| head`), the run ends quietly with status 0.
#![deny(missing_docs)]

use shadowtap_api::{
    register_output, wire, CoreSettings, Inbox, Next, Output, OutputContext, OutputSpec,
    PluginError, Reason,
};
use std::io::{self, BufWriter, Write};
use std::time::Duration;

/// Flags of `output-stdout`.
#[derive(clap::Args, Debug)]
pub struct OutputStdoutArgs {
    /// Write every message to stdout in the .gor record format
    #[arg(id = "output-stdout", long = "output-stdout")]
    pub output_stdout: bool,
}

struct StdoutOutput;

const IDLE_FLUSH: Duration = Duration::from_millis(100);

impl Output for StdoutOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let mut out = BufWriter::with_capacity(64 << 10, io::stdout().lock());
        loop {
            let (written, count) = match inbox.recv_timeout(IDLE_FLUSH) {
                Next::Message(msg) => (wire::write_record(&mut out, &msg), 1),
                Next::Timeout => (out.flush(), 0),
                Next::Closed => break,
            };
            match written {
                Ok(()) => cx.counters().add_out(count),
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
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

fn build(args: OutputStdoutArgs, _: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    Ok(if args.output_stdout {
        vec![OutputSpec::new("output-stdout", Box::new(StdoutOutput))]
    } else {
        Vec::new()
    })
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
