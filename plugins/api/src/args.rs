//! GoReplay-style command lines on top of clap: `-flag` as well as `--flag`, and booleans
//! written `--flag`, `--flag=true` or `--flag=false`.

use clap::{Arg, ArgAction, Command};

/// Turns every plain boolean flag into one that also takes `=true` / `=false`.
pub fn go_style_bools(cmd: Command) -> Command {
    cmd.mut_args(|arg| {
        if matches!(arg.get_action(), ArgAction::SetTrue) {
            go_style_bool(arg, false)
        } else {
            arg
        }
    })
}

/// A boolean flag that is set by `--flag` or `--flag=BOOL`, defaulting to `default`.
pub fn go_style_bool(arg: Arg, default: bool) -> Arg {
    arg.action(ArgAction::Set)
        .num_args(0..=1)
        .require_equals(true)
        .default_missing_value("true")
        .default_value(if default { "true" } else { "false" })
        .value_parser(crate::values::bool_value)
}

/// Rewrites `-long-flag` (GoReplay's single dash) to `--long-flag` for every long flag `cmd`
/// knows; anything else (values such as `-1`, short flags) is left alone.
pub fn normalize_argv(cmd: &Command, argv: Vec<String>) -> Vec<String> {
    let longs: Vec<&str> = cmd.get_arguments().filter_map(|a| a.get_long()).collect();
    let mut after_separator = false;
    argv.into_iter()
        .enumerate()
        .map(|(i, word)| {
            if i == 0 || after_separator {
                return word;
            }
            if word == "--" {
                after_separator = true;
                return word;
            }
            match word.strip_prefix('-') {
                Some(rest) if !rest.starts_with('-') => {
                    let name = rest.split('=').next().unwrap_or(rest);
                    if longs.contains(&name) {
                        format!("-{word}")
                    } else {
                        word
                    }
                }
                _ => word,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn command() -> Command {
        go_style_bools(
            Command::new("t")
                .arg(
                    Arg::new("input-file")
                        .long("input-file")
                        .action(ArgAction::Append),
                )
                .arg(Arg::new("stats").long("stats").action(ArgAction::SetTrue))
                .arg(
                    Arg::new("offset")
                        .long("offset")
                        .allow_negative_numbers(true),
                ),
        )
    }

    fn parse(words: &[&str]) -> Result<clap::ArgMatches, clap::Error> {
        let cmd = command();
        let argv = normalize_argv(&cmd, words.iter().map(|s| s.to_string()).collect());
        cmd.try_get_matches_from(argv)
    }

    #[test]
    fn single_and_double_dash() {
        let m = parse(&["t", "-input-file", "a", "--input-file=b", "-stats"]).unwrap();
        let files: Vec<&String> = m.get_many("input-file").unwrap().collect();
        assert_eq!(files, ["a", "b"]);
        assert!(m.get_one::<bool>("stats").copied().unwrap());
    }

    #[test]
    fn bools_take_equals_values() {
        assert!(!parse(&["t"])
            .unwrap()
            .get_one::<bool>("stats")
            .copied()
            .unwrap());
        assert!(parse(&["t", "--stats=true"])
            .unwrap()
            .get_one::<bool>("stats")
            .copied()
            .unwrap());
        assert!(!parse(&["t", "--stats=false"])
            .unwrap()
            .get_one::<bool>("stats")
            .copied()
            .unwrap());
        assert!(parse(&["t", "--stats=maybe"]).is_err());
        assert!(parse(&["t", "--stats", "true"]).is_err());
    }

    #[test]
    fn negative_values_are_not_flags() {
        let m = parse(&["t", "--offset", "-1"]).unwrap();
        assert_eq!(m.get_one::<String>("offset").unwrap(), "-1");
    }
}
