//! shadowtap's engine: the command line, the emitter that copies every message from every
//! input through an optional middleware to every output (its dispatch steps in `transform`
//! and `route`), the rate limiter and the ledger.
//!
//! Plugins live under `plugins/` and register themselves; this crate links them all through
//! `shadowtap-plugins`. Example: `shadowtap --input-file 'requests_*.gor' --output-stdout`.
#![deny(missing_docs)]

pub mod cli;
pub mod emitter;
pub mod ledger;
pub mod limiter;
pub mod metrics;
pub mod middleware;
pub mod modifier;
pub mod prettify;
pub mod route;
pub mod transform;

#[cfg(feature = "plugins")]
extern crate shadowtap_plugins;

use shadowtap_api::{Ledger, PluginError, Shutdown, ShutdownTrigger};
use std::sync::Arc;
use std::time::Duration;

/// Exit status for a successful run.
pub const EXIT_OK: i32 = 0;
/// Exit status for a runtime failure (or messages lost to errors).
pub const EXIT_FAILURE: i32 = 1;
/// Exit status for a usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// Exit status for a run that went well but failed a gate (`--output-diff-max-regressions`).
pub const EXIT_GATE: i32 = 3;

/// Runs shadowtap with `argv` (program name first) and returns the exit status.
pub fn run_cli(argv: Vec<String>) -> i32 {
    let matches = match cli::parse_matches(argv) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
        }
    };
    init_logging(matches.get_one::<u8>("verbose").copied().unwrap_or(0));
    let config = match cli::configure(&matches) {
        Ok(config) => config,
        Err(e) => return report_config_error(e),
    };
    if config.core.list_plugins {
        print!("{}", cli::plugin_list());
        return EXIT_OK;
    }
    if let Err(e) = cli::require_inputs_and_outputs(&config) {
        eprintln!("shadowtap: {e}");
        return EXIT_USAGE;
    }
    run(config)
}

fn report_config_error(error: PluginError) -> i32 {
    eprintln!("shadowtap: {error}");
    match error {
        PluginError::Usage { .. } => EXIT_USAGE,
        _ => EXIT_FAILURE,
    }
}

fn run(config: cli::Config) -> i32 {
    if let Some(user) = &config.core.user {
        if let Err(e) = drop_privileges(user) {
            eprintln!("shadowtap: --user: {e}");
            return EXIT_USAGE;
        }
    }
    log_panics_once();
    let ledger = Ledger::new();
    let (trigger, shutdown) = Shutdown::new();
    let trigger = Arc::new(trigger);
    watch_signals(trigger.clone(), ledger.clone(), config.core.stats_format);
    if let Some(after) = config.core.exit_after {
        stop_after(trigger.clone(), after);
    }
    if let Some(address) = &config.core.metrics {
        if let Err(e) = metrics::serve(address, ledger.clone()) {
            eprintln!("shadowtap: --metrics: cannot listen on {address}: {e}");
            return EXIT_FAILURE;
        }
    }
    let stats_format = config.core.stats_format;
    let stats = config
        .core
        .stats
        .then(|| ledger::start_stats(ledger.clone(), config.core.stats_interval, stats_format));
    let pipeline = emitter::Pipeline {
        inputs: config.inputs,
        outputs: config.outputs,
        middleware: config.middleware,
        split_output: config.core.split_output,
        settings: config.settings,
        modifier: config.modifier,
        prettify: config.prettify,
    };
    let outcome = emitter::run(pipeline, &ledger, &trigger, &shutdown);
    if let Some((stop, handle)) = stats {
        drop(stop);
        let _ = handle.join();
    }
    if let Some(problem) = outcome.usage_error {
        eprintln!("shadowtap: {problem}");
        return EXIT_USAGE;
    }
    eprintln!("{}", ledger::final_summary(&ledger, stats_format));
    for failure in &outcome.failures {
        eprintln!("shadowtap: error: {failure}");
    }
    if !outcome.failures.is_empty() || ledger.errors() > 0 {
        return EXIT_FAILURE;
    }
    let gates = ledger.gate_failures();
    for gate in &gates {
        eprintln!("shadowtap: gate failed: {gate}");
    }
    if gates.is_empty() {
        EXIT_OK
    } else {
        EXIT_GATE
    }
}

/// Every plugin thread is named after its plugin's label and run under `catch_panic`: this
/// hook writes the one log line a panic gets, naming that thread, and the run goes on to end
/// with exit status 1 (the catching side counts an error).
fn log_panics_once() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let name = thread.name().unwrap_or("a shadowtap thread");
        let message = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "(no message)".into());
        let location = info
            .location()
            .map_or(String::new(), |l| format!(" at {}:{}", l.file(), l.line()));
        tracing::error!("{name}: panicked{location}: {message}");
    }));
}

/// Becomes `name` (its uid, primary gid, no supplementary groups). Capture sockets are opened
/// while the command line is configured, before this, so they stay usable.
fn drop_privileges(name: &str) -> Result<(), String> {
    use nix::unistd::{setgid, setgroups, setuid, User};
    let user = User::from_name(name)
        .map_err(|e| format!("cannot look up user {name:?}: {e}"))?
        .ok_or_else(|| format!("no user {name:?}"))?;
    setgroups(&[]).map_err(|e| format!("cannot drop supplementary groups: {e}"))?;
    setgid(user.gid).map_err(|e| format!("cannot switch to group {}: {e}", user.gid))?;
    setuid(user.uid).map_err(|e| format!("cannot switch to user {name:?}: {e}"))?;
    tracing::info!("running as {name} (uid {}, gid {})", user.uid, user.gid);
    Ok(())
}

fn init_logging(verbose: u8) {
    use std::io::IsTerminal;
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}

/// How long the first SIGINT/SIGTERM lets queues drain before the process exits anyway
/// (status 1, the summary printed), so a stuck plugin thread cannot keep it alive.
pub const DRAIN_DEADLINE: Duration = Duration::from_secs(30);

/// First SIGINT/SIGTERM: stop inputs and drain (at most [`DRAIN_DEADLINE`]). Second: exit
/// at once.
fn watch_signals(trigger: Arc<ShutdownTrigger>, ledger: Arc<Ledger>, format: cli::StatsFormat) {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) else {
        tracing::warn!("cannot install signal handlers; Ctrl-C will not drain queues");
        return;
    };
    std::thread::spawn(move || {
        for signal in signals.forever() {
            if trigger.is_triggered() {
                eprintln!("shadowtap: second signal; exiting without draining");
                std::process::exit(128 + signal);
            }
            eprintln!("shadowtap: stopping: draining queues (signal again to exit at once)");
            trigger.trigger();
            exit_after_drain_deadline(ledger.clone(), format);
        }
    });
}

fn exit_after_drain_deadline(ledger: Arc<Ledger>, format: cli::StatsFormat) {
    std::thread::spawn(move || {
        std::thread::sleep(DRAIN_DEADLINE);
        // What threads still hold is lost now: counted, so the ledger stays exact.
        ledger.settle(shadowtap_api::Reason::Shutdown);
        eprintln!("{}", ledger::final_summary(&ledger, format));
        eprintln!("shadowtap: error: still draining {DRAIN_DEADLINE:?} after the signal; exiting");
        std::process::exit(EXIT_FAILURE);
    });
}

fn stop_after(trigger: Arc<ShutdownTrigger>, after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        tracing::info!("--exit-after {after:?} reached; stopping");
        trigger.trigger();
    });
}
