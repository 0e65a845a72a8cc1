//! The command line: GoReplay flag syntax, the plugin registry, help and errors.

use crate::common::*;

/// The crate folders under `plugins/`, split into plugins (`input-*`, `output-*`) and the rest.
fn plugin_folders() -> (Vec<String>, Vec<String>) {
    let mut folders: Vec<String> = std::fs::read_dir(repo().join("plugins"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| e.path().join("Cargo.toml").exists())
        .map(|e| e.file_name().into_string().unwrap())
        .collect();
    folders.sort();
    folders
        .into_iter()
        .partition(|name| name.starts_with("input-") || name.starts_with("output-"))
}

/// The first column of every row of the table in plugins/README.md headed by `heading`.
fn readme_table(heading: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("plugins/README.md")).unwrap();
    let table = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("plugins/README.md has no table headed {heading:?}"));
    let mut names: Vec<String> = table
        .lines()
        .skip(2)
        .take_while(|line| line.starts_with('|'))
        .map(|line| line.split('|').nth(1).unwrap().trim().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn every_plugin_folder_is_registered_and_every_plugin_has_a_folder() {
    let (plugins, _) = plugin_folders();
    let output = run(&["--list-plugins"]);
    assert_success(&output);
    let listed: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().to_string())
        .collect();
    assert_eq!(listed, plugins);
}

#[test]
fn plugins_readme_has_a_row_for_every_crate_folder() {
    let (plugins, support) = plugin_folders();
    assert_eq!(readme_table("| plugin | role |"), plugins);
    assert_eq!(readme_table("| crate | what it is for |"), support);
}

#[test]
fn list_plugins_shows_role_and_description() {
    let text = String::from_utf8(run(&["--list-plugins"]).stdout).unwrap();
    let line = text.lines().find(|l| l.starts_with("input-file")).unwrap();
    assert!(
        line.contains(" input ") && line.contains("Replays .gor files"),
        "{line}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("output-stdout") && l.contains(" output ")),
        "{text}"
    );
}

#[test]
fn help_groups_flags_by_plugin() {
    let output = run(&["--help"]);
    assert_success(&output);
    let text = String::from_utf8(output.stdout).unwrap();
    for heading in [
        "Core:",
        "input-file:",
        "output-file:",
        "output-stdout:",
        "input-dummy:",
        "output-null:",
    ] {
        assert!(text.contains(heading), "missing {heading} in\n{text}");
    }
    let file_section = text.split("input-file:").nth(1).unwrap();
    assert!(
        file_section
            .trim_start()
            .starts_with("--input-file <PATH_OR_GLOB>"),
        "{file_section}"
    );
}

#[test]
fn goreplay_flag_syntax_is_accepted() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(3, 0));
    let file = format!("{}|100000%", path_str(&input));
    for args in [
        vec!["-input-file", &file, "-output-stdout"],
        vec!["--input-file", &file, "--output-stdout=true"],
        vec![
            &format!("--input-file={file}"),
            "-output-stdout=1",
            "--split-output=false",
        ],
    ] {
        let output = run(&args);
        assert_success(&output);
        assert_eq!(decode(&output.stdout).len(), 6, "{args:?}");
    }
}

#[test]
fn unknown_flags_and_bad_values_exit_2_naming_the_flag() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--input-dummy", "x", "--output-null", "--no-such-flag"],
            "--no-such-flag",
        ),
        (
            &[
                "--input-dummy",
                "x",
                "--output-null",
                "--copy-buffer-size",
                "lots",
            ],
            "--copy-buffer-size",
        ),
        (
            &["--input-dummy", "x", "--output-null", "--exit-after", "5"],
            "--exit-after",
        ),
        (
            &["--input-dummy", "x", "--output-null", "--stats=maybe"],
            "--stats",
        ),
        (&["--input-dummy", "x|fast", "--output-null"], "rate limit"),
    ];
    for (args, expected) in cases {
        let output = run(args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{args:?}: {}",
            stderr(&output)
        );
        assert!(
            stderr(&output).contains(expected),
            "{args:?}: {}",
            stderr(&output)
        );
    }
}

#[test]
fn a_run_needs_an_input_and_an_output() {
    let output = run(&["--output-null"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("at least one input"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn bool_flag_with_separate_value_is_rejected_instead_of_ignoring_the_rest() {
    let output = run(&[
        "--input-dummy",
        "x",
        "--split-output",
        "true",
        "--output-null",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
}
