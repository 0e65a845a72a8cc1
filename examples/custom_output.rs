//! Extending shadowtap from Rust: an output plugin defined outside `plugins/`, registered in
//! this binary, with the whole engine and every built-in plugin still available.
//!
//! ```sh
//! cargo run --example custom_output -- --input-file requests.gor --output-method-count
//! ```
//!
//! It counts requests per HTTP method and prints the table when the run ends.

use shadowtap_api::{
    register_output, CoreSettings, Inbox, Kind, Output, OutputContext, OutputSpec, PluginError,
};
use std::collections::BTreeMap;

/// Flags of the example output.
#[derive(clap::Args, Debug)]
struct OutputMethodCountArgs {
    /// Count requests per HTTP method and print the table at the end
    #[arg(id = "output-method-count", long = "output-method-count")]
    output_method_count: bool,
}

struct MethodCount;

impl Output for MethodCount {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for msg in inbox {
            cx.counters().add_out(1);
            if msg.kind() != Kind::Request {
                continue;
            }
            let method = msg.payload.split(|&b| b == b' ').next().unwrap_or_default();
            *counts
                .entry(String::from_utf8_lossy(method).into_owned())
                .or_default() += 1;
        }
        for (method, count) in counts {
            println!("{method:<8} {count}");
        }
        Ok(())
    }
}

fn build(args: OutputMethodCountArgs, _: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    Ok(if args.output_method_count {
        vec![OutputSpec::new(
            "output-method-count",
            Box::new(MethodCount),
        )]
    } else {
        Vec::new()
    })
}

register_output! {
    name: "output-method-count",
    about: "Counts requests per HTTP method (an example of an out-of-tree plugin)",
    args: OutputMethodCountArgs,
    build: build,
}

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    std::process::exit(shadowtap::run_cli(argv));
}
