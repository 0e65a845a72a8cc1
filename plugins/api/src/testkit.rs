//! Shared checks and harnesses for plugin tests: build a plugin from flags, run an input to
//! completion, feed messages to an output, the conformance checks every plugin runs, and
//! fake plugins for engine tests ([`FakeInput`], [`FakeOutput`]).

use crate::ledger::{Ledger, Role, Snapshot};
use crate::message::Message;
use crate::meta::{Kind, Meta};
use crate::plugin::{
    Backpressure, CoreSettings, Inbox, Input, InputContext, InputSpec, Output, OutputContext,
    OutputSpec, PluginError, Shutdown,
};
use crate::registry::{self, Factory, PluginDescriptor};
use crossbeam_channel::{Receiver, Sender};
use std::sync::{Arc, Mutex};

fn descriptor(name: &str) -> &'static PluginDescriptor {
    registry::find(name).unwrap_or_else(|| panic!("plugin {name} is not registered"))
}

/// The command line of one plugin alone (with GoReplay-style booleans).
pub fn command(name: &str) -> clap::Command {
    let mut cmd = clap::Command::new("shadowtap");
    for group in registry::shared_groups() {
        cmd = (group.augment)(cmd);
    }
    crate::args::go_style_bools((descriptor(name).augment)(cmd))
}

/// The ids of every flag in a shared group (not the plugin's own).
fn shared_ids() -> Vec<String> {
    let mut cmd = clap::Command::new("shadowtap");
    for group in registry::shared_groups() {
        cmd = (group.augment)(cmd);
    }
    cmd.get_arguments()
        .map(|a| a.get_id().to_string())
        .collect()
}

fn matches(name: &str, flags: &[&str]) -> Result<clap::ArgMatches, PluginError> {
    let cmd = command(name);
    let mut argv = vec!["shadowtap".to_string()];
    argv.extend(flags.iter().map(|s| s.to_string()));
    let argv = crate::args::normalize_argv(&cmd, argv);
    cmd.try_get_matches_from(argv)
        .map_err(|e| PluginError::usage(name, e.to_string()))
}

/// Builds input instances of plugin `name` from `flags`.
pub fn build_inputs(name: &str, flags: &[&str]) -> Result<Vec<InputSpec>, PluginError> {
    let Factory::Input(factory) = descriptor(name).factory else {
        panic!("{name} is not an input");
    };
    let matches = matches(name, flags)?;
    factory(
        &matches,
        &CoreSettings::default().with_matches(matches.clone()),
    )
}

/// Builds output instances of plugin `name` from `flags`.
pub fn build_outputs(name: &str, flags: &[&str]) -> Result<Vec<OutputSpec>, PluginError> {
    let Factory::Output(factory) = descriptor(name).factory else {
        panic!("{name} is not an output");
    };
    let matches = matches(name, flags)?;
    factory(
        &matches,
        &CoreSettings::default().with_matches(matches.clone()),
    )
}

/// The error that building plugin `name` (an input or an output) from `flags` gives, as
/// text; panics if it builds.
pub fn build_error(name: &str, flags: &[&str]) -> String {
    let built = match descriptor(name).factory {
        Factory::Input(_) => build_inputs(name, flags).map(drop),
        Factory::Output(_) => build_outputs(name, flags).map(drop),
    };
    match built {
        Ok(()) => panic!("{name} {flags:?} built without an error"),
        Err(e) => e.to_string(),
    }
}

/// Why a ledger summary does not balance.
#[derive(Debug, thiserror::Error)]
pub enum LedgerCheckError {
    /// The text is not the JSON summary (`Ledger::summary_json`).
    #[error("not a ledger summary: {0}")]
    NotASummary(String),
    /// A plugin's counts do not add up.
    #[error("{label}: in {received} ≠ out {passed} + dropped {dropped} (in {json})")]
    Unbalanced {
        /// The plugin's label.
        label: String,
        /// Its `in`.
        received: u64,
        /// Its `out`.
        passed: u64,
        /// The sum of its drops.
        dropped: u64,
        /// The whole summary.
        json: String,
    },
}

/// Checks a JSON ledger summary (a line printed with `--stats-format json`): for every
/// plugin and engine stage, `in = out + Σ dropped(reason)`.
pub fn check_ledger_balances(json: &str) -> Result<(), LedgerCheckError> {
    let not_summary = |why: &str| LedgerCheckError::NotASummary(format!("{why}: {json}"));
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| not_summary(&e.to_string()))?;
    let plugins = value["plugins"]
        .as_array()
        .ok_or_else(|| not_summary("no \"plugins\" array"))?;
    for plugin in plugins {
        let count = |key: &str| plugin[key].as_u64().ok_or_else(|| not_summary(key));
        let (received, passed) = (count("in")?, count("out")?);
        let drops = plugin["dropped"]
            .as_object()
            .ok_or_else(|| not_summary("dropped"))?;
        let dropped: u64 = drops.values().filter_map(serde_json::Value::as_u64).sum();
        if received != passed + dropped {
            return Err(LedgerCheckError::Unbalanced {
                label: plugin["label"].as_str().unwrap_or("?").to_string(),
                received,
                passed,
                dropped,
                json: json.to_string(),
            });
        }
    }
    Ok(())
}

/// Asserts that a JSON ledger summary balances (see [`check_ledger_balances`]).
pub fn assert_ledger_balances(json: &str) {
    if let Err(e) = check_ledger_balances(json) {
        panic!("the ledger does not balance: {e}");
    }
}

/// Runs an input to completion; returns what it emitted, its counters and its result.
pub fn run_input(spec: InputSpec) -> (Vec<Message>, Snapshot, Result<(), PluginError>) {
    let ledger = Ledger::new();
    let counters = ledger.register(spec.label.clone(), Role::Input);
    let (_trigger, shutdown) = Shutdown::new();
    let (tx, rx) = crossbeam_channel::unbounded();
    let cx = InputContext::new(
        tx,
        counters.clone(),
        shutdown,
        None,
        CoreSettings::default(),
    )
    .with_backpressure(spec.backpressure);
    let result = spec.plugin.run(cx);
    (
        rx.try_iter().flatten().collect(),
        counters.snapshot(),
        result,
    )
}

/// Feeds `messages` to an output and waits for it to finish.
pub fn run_output(spec: OutputSpec, messages: Vec<Message>) -> (Snapshot, Result<(), PluginError>) {
    let ledger = Ledger::new();
    let counters = ledger.register(spec.label.clone(), Role::Output);
    let (_trigger, shutdown) = Shutdown::new();
    let (tx, rx) = crossbeam_channel::unbounded();
    counters.add_in(messages.len() as u64);
    // Uneven batches, as the engine sends them.
    let mut messages = messages.into_iter().peekable();
    let mut size = 1;
    while messages.peek().is_some() {
        tx.send(messages.by_ref().take(size).collect::<Vec<_>>())
            .expect("receiver alive");
        size = size % 7 + 1;
    }
    drop(tx);
    let cx = OutputContext::new(counters.clone(), shutdown, None, CoreSettings::default());
    let result = spec.plugin.run(Inbox::new(rx), cx);
    (counters.snapshot(), result)
}

/// The checks every plugin passes: it is registered under its folder's name, each flag's id
/// equals its long name and starts with the plugin's stem (or a shared stem it declares),
/// each flag has help text, and with no flags given the plugin builds no instance.
pub fn check_conformance(name: &str, shared_stems: &[&str]) {
    let desc = descriptor(name);
    assert!(!desc.about.is_empty(), "{name}: empty description");
    assert!(
        !desc.about.contains('\n'),
        "{name}: description must be one line"
    );
    let cmd = command(name);
    let shared = shared_ids();
    for arg in cmd.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" || shared.iter().any(|s| s == id) {
            continue;
        }
        let long = arg
            .get_long()
            .unwrap_or_else(|| panic!("{name}: flag {id} has no long name"));
        assert_eq!(id, long, "{name}: flag id must equal its long name");
        assert!(
            long.starts_with(name) || shared_stems.iter().any(|s| long.starts_with(s)),
            "{name}: flag --{long} does not start with the plugin's name"
        );
        assert!(
            arg.get_help().is_some(),
            "{name}: --{long} has no help text"
        );
    }
    let built = match desc.factory {
        Factory::Input(_) => build_inputs(name, &[]).map(|v| v.len()),
        Factory::Output(_) => build_outputs(name, &[]).map(|v| v.len()),
    };
    assert_eq!(
        built.ok(),
        Some(0),
        "{name}: builds instances without its flags"
    );
}

/// A request message with id `id` whose payload names it (`GET /<id> HTTP/1.1`).
pub fn request(id: &str) -> Message {
    message(
        Kind::Request,
        id,
        format!("GET /{id} HTTP/1.1\r\nHost: test\r\n\r\n"),
    )
}

/// A response message (kind 2) with id `id`.
pub fn response(id: &str) -> Message {
    message(
        Kind::Response,
        id,
        "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    )
}

fn message(kind: Kind, id: &str, payload: impl Into<bytes::Bytes>) -> Message {
    let meta = Meta::new(kind, id, crate::now_ns(), 0).expect("a valid test id");
    Message::new(meta, payload)
}

/// A fake input: pushes its messages in batches of a given size (flushing after each),
/// then ends.
pub struct FakeInput {
    messages: Vec<Message>,
    batch: usize,
}

impl FakeInput {
    /// Emits `messages`, one batch each.
    pub fn new(messages: Vec<Message>) -> Self {
        FakeInput { messages, batch: 1 }
    }

    /// The same input, flushing every `batch` messages.
    pub fn in_batches_of(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }

    /// As an input instance labelled `label`, declaring `backpressure`.
    pub fn spec(self, label: &str, backpressure: Backpressure) -> InputSpec {
        InputSpec {
            label: label.to_string(),
            plugin: Box::new(self),
            backpressure,
            limit: None,
        }
    }
}

impl Input for FakeInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        for chunk in self.messages.chunks(self.batch) {
            for msg in chunk {
                if cx.push(msg.clone()).is_err() {
                    return Ok(());
                }
            }
            if cx.flush().is_err() {
                return Ok(());
            }
        }
        Ok(())
    }
}

/// What a [`FakeOutput`] received, in order (shared with the test).
#[derive(Clone, Default, Debug)]
pub struct Received(Arc<Mutex<Vec<Message>>>);

impl Received {
    /// The messages received so far.
    pub fn messages(&self) -> Vec<Message> {
        self.0.lock().expect("received lock").clone()
    }

    /// Their ids, in order.
    pub fn ids(&self) -> Vec<String> {
        self.messages().iter().map(|m| m.id().to_string()).collect()
    }

    /// How many were received.
    pub fn len(&self) -> usize {
        self.0.lock().expect("received lock").len()
    }

    /// True when nothing was received.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lets a held [`FakeOutput`] start reading its inbox (when released or dropped).
#[derive(Debug)]
pub struct Release(Option<Sender<()>>);

impl Release {
    /// Lets the output read.
    pub fn release(mut self) {
        self.0.take();
    }
}

/// A fake output: takes every message from its inbox (counting each out) and records it in
/// [`Received`]. A held one reads nothing until its [`Release`] lets it (so that its queue
/// fills); a feeding-back one sends a replayed response (kind 3) back for every request.
pub struct FakeOutput {
    received: Received,
    hold: Option<Receiver<()>>,
    feed_back: bool,
}

impl FakeOutput {
    /// An output that reads at once, and what it received.
    pub fn new() -> (Self, Received) {
        let received = Received::default();
        let output = FakeOutput {
            received: received.clone(),
            hold: None,
            feed_back: false,
        };
        (output, received)
    }

    /// An output that reads nothing until released, what it received, and its release.
    pub fn held() -> (Self, Received, Release) {
        let (output, received) = FakeOutput::new();
        let (tx, rx) = crossbeam_channel::bounded(0);
        let output = FakeOutput {
            hold: Some(rx),
            ..output
        };
        (output, received, Release(Some(tx)))
    }

    /// The same output, feeding back a replayed response for every request.
    pub fn feeding_back(mut self) -> Self {
        self.feed_back = true;
        self
    }

    /// As an output instance labelled `label` with a queue of `queue_len` batches.
    pub fn spec(self, label: &str, queue_len: usize) -> OutputSpec {
        let feedback = self.feed_back;
        let mut spec = OutputSpec::new(label, Box::new(self));
        spec.queue_len = queue_len;
        spec.feedback = feedback;
        spec
    }
}

impl Output for FakeOutput {
    fn run(self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        if let Some(hold) = &self.hold {
            let _ = hold.recv();
        }
        while let Some(msg) = inbox.recv() {
            cx.counters().add_out(1);
            if self.feed_back && msg.kind().is_request() {
                let replayed = message(
                    Kind::ReplayedResponse,
                    msg.id(),
                    "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
                );
                let _ = cx.feed_back(replayed);
            }
            self.received.0.lock().expect("received lock").push(msg);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::Reason;

    #[test]
    fn balanced_and_unbalanced_summaries() {
        let ledger = Ledger::new();
        let input = ledger.register("input-file[a.gor]", Role::Input);
        input.add_in(3);
        input.add_out(2);
        input.add_drop(Reason::Malformed, 1);
        check_ledger_balances(&ledger.summary_json("summary")).unwrap();
        input.add_in(1);
        let err = check_ledger_balances(&ledger.summary_json("summary")).unwrap_err();
        assert!(
            err.to_string().starts_with("input-file[a.gor]: in 4"),
            "{err}"
        );
        assert!(check_ledger_balances("shadowtap: x in 1").is_err());
    }

    #[test]
    fn fake_input_emits_everything_in_order() {
        let messages = (0..5).map(|i| request(&format!("r{i}"))).collect();
        let spec = FakeInput::new(messages)
            .in_batches_of(2)
            .spec("fake-input", Backpressure::Wait);
        let (emitted, snapshot, result) = run_input(spec);
        result.unwrap();
        let ids: Vec<&str> = emitted.iter().map(|m| m.id()).collect();
        assert_eq!(ids, ["r0", "r1", "r2", "r3", "r4"]);
        assert_eq!((snapshot.received, snapshot.passed), (5, 5));
    }

    #[test]
    fn fake_output_records_and_a_held_one_waits() {
        let (output, received, release) = FakeOutput::held();
        let spec = output.spec("fake-output", 10);
        let messages = vec![request("a"), response("a")];
        let reader = std::thread::spawn(move || run_output(spec, messages));
        std::thread::sleep(std::time::Duration::from_millis(30));
        assert!(received.is_empty(), "held");
        release.release();
        let (snapshot, result) = reader.join().unwrap();
        result.unwrap();
        assert_eq!(received.ids(), ["a", "a"]);
        assert_eq!((snapshot.received, snapshot.passed), (2, 2));
    }
}
