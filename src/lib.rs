//! shadowtap's engine: the command line, the emitter that copies every message from every
//! input through an optional middleware to every output, the rate limiter and the ledger.
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
    let ledger = Ledger::new();
    let (trigger, shutdown) = Shutdown::new();
    let trigger = Arc::new(trigger);
    watch_signals(trigger.clone());
    if let Some(after) = config.core.exit_after {
        stop_after(trigger.clone(), after);
    }
    if let Some(address) = &config.core.metrics {
        if let Err(e) = metrics::serve(address, ledger.clone()) {
            eprintln!("shadowtap: --metrics: cannot listen on {address}: {e}");
            return EXIT_FAILURE;
        }
    }
    let stats = config
        .core
        .stats
        .then(|| ledger::start_stats(ledger.clone(), config.core.stats_interval));
    let pipeline = emitter::Pipeline {
        inputs: config.inputs,
        outputs: config.outputs,
        middleware: config.middleware,
        split_output: config.core.split_output,
        settings: shadowtap_api::CoreSettings::new(config.core.copy_buffer_size as usize),
        modifier: config.modifier,
        prettify: config.core.prettify_http,
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
    eprintln!("{}", ledger::final_summary(&ledger));
    for failure in &outcome.failures {
        eprintln!("shadowtap: error: {failure}");
    }
    if outcome.failures.is_empty() && ledger.errors() == 0 {
        EXIT_OK
    } else {
        EXIT_FAILURE
    }
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

/// First SIGINT/SIGTERM: stop inputs and drain. Second: exit at once.
fn watch_signals(trigger: Arc<ShutdownTrigger>) {
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
        }
    });
}

fn stop_after(trigger: Arc<ShutdownTrigger>, after: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(after);
        tracing::info!("--exit-after {after:?} reached; stopping");
        trigger.trigger();
    });
}
