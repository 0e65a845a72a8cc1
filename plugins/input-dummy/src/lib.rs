//! `input-dummy`: GoReplay's synthetic source. Every second it emits one request and its
//! response, forever, which is handy for checking a pipeline end to end.
//!
//! Flags: `--input-dummy NAME` (repeatable; the value only labels the instance).
//! Example: `shadowtap --input-dummy x --output-stdout`.
#![deny(missing_docs)]

use shadowtap_api::values::split_limit;
use shadowtap_api::{
    instance_label, now_ns, random_id, register_input, CoreSettings, Input, InputContext,
    InputSpec, Kind, Message, Meta, PluginError,
};
use std::time::Duration;

/// Flags of `input-dummy`.
#[derive(clap::Args, Debug)]
pub struct InputDummyArgs {
    /// Emit a request and its response every second (the value is only a label)
    #[arg(id = "input-dummy", long = "input-dummy", value_name = "NAME")]
    pub input_dummy: Vec<String>,
}

const REQUEST: &str =
    "GET / HTTP/1.1\r\nHost: www.w3.org\r\nUser-Agent: Go 1.1 package http\r\nAccept-Encoding: gzip\r\n\r\n";
const RESPONSE: &str = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";

struct DummyInput {
    interval: Duration,
}

impl DummyInput {
    fn pair() -> [Message; 2] {
        let id = random_id();
        let now = now_ns();
        [
            Message::new(
                Meta::new(Kind::Request, &id, now, -1).expect("random ids are hex"),
                REQUEST,
            ),
            Message::new(
                Meta::new(Kind::Response, &id, now + 1, 1).expect("random ids are hex"),
                RESPONSE,
            ),
        ]
    }
}

impl Input for DummyInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        while cx.shutdown().sleep(self.interval) {
            for msg in DummyInput::pair() {
                if cx.emit(msg).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    }
}

fn build(args: InputDummyArgs, _: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    args.input_dummy
        .iter()
        .map(|value| {
            let (name, limit) =
                split_limit(value).map_err(|e| PluginError::usage("--input-dummy", e))?;
            Ok(InputSpec {
                label: instance_label("input-dummy", &name),
                plugin: Box::new(DummyInput {
                    interval: Duration::from_secs(1),
                }),
                backpressure: shadowtap_api::Backpressure::Wait,
                limit,
            })
        })
        .collect()
}

register_input! {
    name: "input-dummy",
    about: "Emits a synthetic request and response every second",
    args: InputDummyArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::testkit;

    #[test]
    fn conformance() {
        testkit::check_conformance("input-dummy", &[]);
    }

    #[test]
    fn pair_shares_an_id() {
        let [request, response] = DummyInput::pair();
        assert_eq!(request.id(), response.id());
        assert_eq!(request.id().len(), 24);
        assert_eq!(request.kind(), Kind::Request);
        assert_eq!(response.kind(), Kind::Response);
    }
}
