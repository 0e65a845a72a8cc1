//! `output-null`: accepts and discards every message (benchmarks, dry pipelines).
//!
//! Flags: `--output-null`. Example: `shadowtap --input-file requests.gor --output-null`.
#![deny(missing_docs)]

use shadowtap_api::{
    register_output, CoreSettings, Inbox, Output, OutputContext, OutputSpec, PluginError,
};

/// Flags of `output-null`.
#[derive(clap::Args, Debug)]
pub struct OutputNullArgs {
    /// Discard every message (for benchmarks and tests)
    #[arg(id = "output-null", long = "output-null")]
    pub output_null: bool,
}

struct NullOutput;

impl Output for NullOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        while let Some(batch) = inbox.recv_batch() {
            cx.counters().add_out(batch.len() as u64);
        }
        Ok(())
    }
}

fn build(args: OutputNullArgs, _: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    Ok(if args.output_null {
        vec![OutputSpec::new("output-null", Box::new(NullOutput))]
    } else {
        Vec::new()
    })
}

register_output! {
    name: "output-null",
    about: "Discards every message (benchmarks, dry runs)",
    args: OutputNullArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use shadowtap_api::{testkit, Kind, Message, Meta};

    #[test]
    fn conformance() {
        testkit::check_conformance("output-null", &[]);
    }

    #[test]
    fn counts_what_it_discards() {
        let spec = testkit::build_outputs("output-null", &["--output-null"])
            .unwrap()
            .remove(0);
        let msgs = (0..3)
            .map(|i| Message::new(Meta::new(Kind::Request, &i.to_string(), i, 0).unwrap(), "x"))
            .collect();
        let (snapshot, result) = testkit::run_output(spec, msgs);
        result.unwrap();
        assert_eq!(snapshot.passed, 3);
    }
}
