//! The plugin registry: each plugin crate submits one [`PluginDescriptor`] through
//! `inventory`, and the engine folds their `clap::Args` into one command line.

use crate::ledger::Role;
use crate::plugin::{CoreSettings, InputSpec, OutputSpec, PluginError};

/// Builds a plugin's instances from the parsed command line.
#[derive(Clone, Copy)]
pub enum Factory {
    /// An input plugin's factory.
    Input(fn(&clap::ArgMatches, &CoreSettings) -> Result<Vec<InputSpec>, PluginError>),
    /// An output plugin's factory.
    Output(fn(&clap::ArgMatches, &CoreSettings) -> Result<Vec<OutputSpec>, PluginError>),
}

/// What a plugin crate registers.
pub struct PluginDescriptor {
    /// Kebab name, also its folder and flag stem (`input-file`).
    pub name: &'static str,
    /// A one-line description for `--list-plugins`.
    pub about: &'static str,
    /// Adds the plugin's flags to the command.
    pub augment: fn(clap::Command) -> clap::Command,
    /// Builds its instances.
    pub factory: Factory,
}

impl PluginDescriptor {
    /// Input or output.
    pub fn role(&self) -> Role {
        match self.factory {
            Factory::Input(_) => Role::Input,
            Factory::Output(_) => Role::Output,
        }
    }
}

inventory::collect!(PluginDescriptor);

/// A group of flags that several plugins read (e.g. `--input-raw-*` for every capture input):
/// added to the command line once, read by each plugin with
/// [`CoreSettings::shared_args`](crate::CoreSettings::shared_args).
pub struct SharedArgsDescriptor {
    /// The help heading.
    pub heading: &'static str,
    /// Adds the flags to the command.
    pub augment: fn(clap::Command) -> clap::Command,
}

inventory::collect!(SharedArgsDescriptor);

/// Every registered shared flag group, sorted by heading.
pub fn shared_groups() -> Vec<&'static SharedArgsDescriptor> {
    let mut all: Vec<_> = inventory::iter::<SharedArgsDescriptor>
        .into_iter()
        .collect();
    all.sort_by_key(|d| d.heading);
    all
}

/// Adds every plugin's and every shared group's flags to `cmd`, each under its heading.
pub fn augment_all(mut cmd: clap::Command) -> clap::Command {
    for group in shared_groups() {
        cmd = (group.augment)(cmd);
    }
    for plugin in registered() {
        cmd = (plugin.augment)(cmd);
    }
    cmd
}

/// Registers a `clap::Args` struct of flags shared by several plugins, under `heading`.
#[macro_export]
macro_rules! register_shared_args {
    (heading: $heading:literal, args: $args:ty $(,)?) => {
        const _: () = {
            fn augment(cmd: $crate::clap::Command) -> $crate::clap::Command {
                <$args as $crate::clap::Args>::augment_args(cmd.next_help_heading($heading))
            }
            $crate::inventory::submit! {
                $crate::registry::SharedArgsDescriptor { heading: $heading, augment }
            }
        };
    };
}

/// Every registered plugin, sorted by name.
pub fn registered() -> Vec<&'static PluginDescriptor> {
    let mut all: Vec<_> = inventory::iter::<PluginDescriptor>.into_iter().collect();
    all.sort_by_key(|d| d.name);
    all
}

/// The registered plugin called `name`.
pub fn find(name: &str) -> Option<&'static PluginDescriptor> {
    inventory::iter::<PluginDescriptor>
        .into_iter()
        .find(|d| d.name == name)
}

/// Registers an input plugin: its name, a one-line description, its `clap::Args` struct and
/// a factory `fn(Args, &CoreSettings) -> Result<Vec<InputSpec>, PluginError>`.
#[macro_export]
macro_rules! register_input {
    (name: $name:literal, about: $about:literal, args: $args:ty, build: $build:path $(,)?) => {
        $crate::__register_plugin!($name, $about, $args, $build, Input, InputSpec);
    };
}

/// Registers an output plugin; the same form as [`register_input!`], with a factory that
/// returns `Vec<OutputSpec>`.
#[macro_export]
macro_rules! register_output {
    (name: $name:literal, about: $about:literal, args: $args:ty, build: $build:path $(,)?) => {
        $crate::__register_plugin!($name, $about, $args, $build, Output, OutputSpec);
    };
}

/// The body of [`register_input!`] and [`register_output!`].
#[doc(hidden)]
#[macro_export]
macro_rules! __register_plugin {
    ($name:literal, $about:literal, $args:ty, $build:path, $role:ident, $spec:ident) => {
        const _: () = {
            fn augment(cmd: $crate::clap::Command) -> $crate::clap::Command {
                <$args as $crate::clap::Args>::augment_args(cmd.next_help_heading($name))
            }
            fn factory(
                matches: &$crate::clap::ArgMatches,
                settings: &$crate::CoreSettings,
            ) -> ::std::result::Result<::std::vec::Vec<$crate::$spec>, $crate::PluginError> {
                let args = <$args as $crate::clap::FromArgMatches>::from_arg_matches(matches)
                    .map_err(|e| $crate::PluginError::usage($name, e.to_string()))?;
                $build(args, settings)
            }
            $crate::inventory::submit! {
                $crate::PluginDescriptor {
                    name: $name,
                    about: $about,
                    augment,
                    factory: $crate::Factory::$role(factory),
                }
            }
        };
    };
}
