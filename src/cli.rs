//! The command line: core flags plus every registered plugin's flags, GoReplay-style
//! (`-flag` or `--flag`, `--flag=value` or `--flag value`, booleans as `--flag[=true|false]`).

use crate::middleware::MiddlewareConfig;
use crate::modifier::{Modifier, ModifierArgs};
use crate::prettify::Prettifier;
use anyhow::{bail, Context, Result};
use clap::{CommandFactory, FromArgMatches, Parser};
use shadowtap_api::registry::{self, Factory};
use shadowtap_api::values::{bool_value, duration_value, size_value};
use shadowtap_api::{CoreSettings, InputSpec, OutputSpec, PluginError};
use shadowtap_record::Recorder;
use std::time::Duration;

const ABOUT: &str =
    "Capture, record and replay HTTP traffic (a GoReplay-compatible traffic router)";

/// Core flags of shadowtap.
#[derive(Parser, Debug)]
#[command(name = "shadowtap", version, about, next_help_heading = "Core")]
pub struct CoreArgs {
    /// Pass every message through this command (hex lines on stdin/stdout), e.g. "python3 scrub.py"
    #[arg(id = "middleware", long = "middleware", value_name = "COMMAND")]
    pub middleware: Option<String>,
    /// Restart the middleware with backoff when it exits (false: exit with status 1)
    #[arg(id = "middleware-restart", long = "middleware-restart", action = clap::ArgAction::Set,
          num_args = 0..=1, require_equals = true, default_missing_value = "true",
          default_value = "true", value_parser = bool_value)]
    pub middleware_restart: bool,
    /// Send each request to one output, round-robin, instead of to all (responses follow)
    #[arg(id = "split-output", long = "split-output")]
    pub split_output: bool,
    /// Largest payload passed on; longer ones are cut and counted as truncated
    #[arg(id = "copy-buffer-size", long = "copy-buffer-size", value_parser = size_value, default_value = "5mb", value_name = "SIZE")]
    pub copy_buffer_size: u64,
    /// Stop after this long (e.g. 30s, 5m), draining queues first
    #[arg(id = "exit-after", long = "exit-after", value_parser = duration_value, value_name = "DURATION")]
    pub exit_after: Option<Duration>,
    /// Print the counters every --stats-interval
    #[arg(id = "stats", long = "stats")]
    pub stats: bool,
    /// How often --stats prints
    #[arg(id = "stats-interval", long = "stats-interval", value_parser = duration_value, default_value = "5s", value_name = "DURATION")]
    pub stats_interval: Duration,
    /// How --stats lines and the exit summary are printed: text, or json (each text line followed by one JSON object)
    #[arg(id = "stats-format", long = "stats-format", value_enum, default_value_t = StatsFormat::Text, value_name = "FORMAT")]
    pub stats_format: StatsFormat,
    /// Log detail: 0 info, 1 debug, 2+ trace (RUST_LOG overrides)
    #[arg(
        id = "verbose",
        long = "verbose",
        default_value_t = 0,
        value_name = "LEVEL"
    )]
    pub verbose: u8,
    /// List every plugin with its role and a one-line description, then exit
    #[arg(id = "list-plugins", long = "list-plugins")]
    pub list_plugins: bool,
    /// De-chunk and gunzip HTTP messages (Content-Length fixed) before middleware and modifiers
    #[arg(id = "prettify-http", long = "prettify-http")]
    pub prettify_http: bool,
    /// Serve the counters as Prometheus text at http://ADDR/metrics (e.g. :9090)
    #[arg(id = "metrics", long = "metrics", value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Drop privileges to this user (and its group) once capture sockets are open
    #[arg(id = "user", long = "user", value_name = "NAME")]
    pub user: Option<String>,
    /// The --http-* filters and rewrites.
    #[command(flatten)]
    pub modifiers: ModifierArgs,
}

/// How the ledger is printed (`--stats-format`).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatsFormat {
    /// One human line (`label in N out N dropped N (reason N)…`).
    Text,
    /// One JSON object per line (`{"event":"stats"|"summary","plugins":[…]}`).
    Json,
}

/// A parsed command line: core settings and every configured plugin instance.
pub struct Config {
    /// The core flags.
    pub core: CoreArgs,
    /// Input instances.
    pub inputs: Vec<InputSpec>,
    /// Output instances.
    pub outputs: Vec<OutputSpec>,
    /// The middleware, if any.
    pub middleware: Option<MiddlewareConfig>,
    /// The `--http-*` filters and rewrites, if any.
    pub modifier: Option<Modifier>,
    /// The settings the plugins were built with (and that they see while running).
    pub settings: CoreSettings,
    /// `--prettify-http`, with the run's gRPC descriptor set.
    pub prettify: Option<Prettifier>,
}

/// The whole command: core flags, then each plugin's flags under a heading of its own.
pub fn command() -> clap::Command {
    let cmd = registry::augment_all(CoreArgs::command());
    let cmd = cmd.about(ABOUT).next_help_heading(None::<&str>);
    shadowtap_api::args::go_style_bools(cmd)
}

/// Parses `argv` (clap errors, including `--help`, come back as `clap::Error`).
pub fn parse_matches(argv: Vec<String>) -> Result<clap::ArgMatches, clap::Error> {
    let cmd = command();
    let argv = shadowtap_api::args::normalize_argv(&cmd, argv);
    cmd.try_get_matches_from(argv)
}

/// The settings every plugin is built with. `--http-set-header "Host: …"` implies
/// output-http's `--http-original-host` (as in GoReplay: otherwise output-http would replace
/// the Host that was just set with its target's), through [`CoreSettings::original_host`].
pub fn core_settings(core: &CoreArgs, matches: &clap::ArgMatches) -> CoreSettings {
    CoreSettings::new(usize::try_from(core.copy_buffer_size).unwrap_or(usize::MAX))
        .with_original_host(core.modifiers.sets_host())
        .with_matches(matches.clone())
}

/// Builds the configuration from parsed flags.
pub fn configure(matches: &clap::ArgMatches) -> Result<Config, PluginError> {
    let core = CoreArgs::from_arg_matches(matches)
        .map_err(|e| PluginError::usage("shadowtap", e.to_string()))?;
    let settings = core_settings(&core, matches);
    let descriptors = shadowtap_record::descriptors_of(&settings)?;
    let prettify = core
        .prettify_http
        .then(|| Prettifier::new(Recorder::new(descriptors, settings.copy_buffer_size)));
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for plugin in registry::registered() {
        match plugin.factory {
            Factory::Input(build) => inputs.extend(build(matches, &settings)?),
            Factory::Output(build) => outputs.extend(build(matches, &settings)?),
        }
    }
    let middleware = core
        .middleware
        .as_deref()
        .map(|command| {
            MiddlewareConfig::parse(command, core.middleware_restart, settings.copy_buffer_size)
                .map(|config| MiddlewareConfig {
                    prettify: prettify.clone(),
                    ..config
                })
        })
        .transpose()
        .map_err(|e| PluginError::usage("--middleware", e))?;
    let modifier = Modifier::new(core.modifiers.clone());
    Ok(Config {
        core,
        inputs,
        outputs,
        middleware,
        modifier,
        settings,
        prettify,
    })
}

/// `--list-plugins`: one line per plugin.
pub fn plugin_list() -> String {
    registry::registered()
        .iter()
        .map(|p| format!("{:<16} {:<7} {}\n", p.name, p.role().as_str(), p.about))
        .collect()
}

/// Checks that the run has something to do.
pub fn require_inputs_and_outputs(config: &Config) -> Result<()> {
    if config.inputs.is_empty() || config.outputs.is_empty() {
        bail!(
            "at least one input (e.g. --input-file, --input-dummy) and one output (e.g. --output-file, --output-stdout) are required; see --help and --list-plugins"
        );
    }
    Ok(())
}

/// Reads a whole command line from the process arguments.
pub fn process_argv() -> Result<Vec<String>> {
    std::env::args_os()
        .map(|a| {
            a.into_string()
                .map_err(|bad| anyhow::anyhow!("argument {bad:?} is not valid UTF-8"))
        })
        .collect::<Result<_>>()
        .context("reading the command line")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(flags: &[&str]) -> CoreSettings {
        let mut argv = vec!["shadowtap".to_string()];
        argv.extend(flags.iter().map(|f| f.to_string()));
        let matches = parse_matches(argv).unwrap();
        let core = CoreArgs::from_arg_matches(&matches).unwrap();
        core_settings(&core, &matches)
    }

    #[test]
    fn setting_host_implies_original_host_through_the_settings() {
        assert!(settings(&["--http-set-header", "Host: staging.example"]).original_host);
        assert!(settings(&["-http-set-header=host:staging.example"]).original_host);
        assert!(!settings(&["--http-set-header", "X-Host: a"]).original_host);
        assert!(!settings(&[]).original_host);
    }

    #[test]
    fn settings_carry_the_copy_buffer_size() {
        assert_eq!(
            settings(&["--copy-buffer-size", "1kb"]).copy_buffer_size,
            1024
        );
    }
}
