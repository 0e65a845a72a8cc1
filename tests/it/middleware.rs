//! The middleware bridge with the shipped helper libraries in every language, and failures:
//! crashes and restarts, garbage output, dropped messages, stderr passthrough.

use crate::common::*;
use std::path::PathBuf;
use std::sync::OnceLock;

fn requests() -> Vec<Record> {
    vec![
        Record::request(
            "000000000000000000000001",
            1,
            "GET /a HTTP/1.1\r\nHost: shop\r\nX-Env: prod\r\n\r\n",
        ),
        Record::response(
            "000000000000000000000001",
            2,
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
        ),
        Record::request(
            "000000000000000000000002",
            3,
            "POST /b HTTP/1.1\r\nHost: shop\r\nContent-Length: 4\r\n\r\nbody",
        ),
    ]
}

/// Runs `requests()` through `command` and returns what reached stdout, asserting success.
fn through(command: &str) -> Vec<Record> {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &requests());
    let output = run_in(
        Some(&repo()),
        &[
            "--input-file",
            &format!("{}|100000%", path_str(&input)),
            "--middleware",
            command,
            "--output-stdout",
        ],
    );
    assert_success(&output);
    decode(&output.stdout)
}

fn assert_header_rewritten(records: &[Record]) {
    assert_eq!(records.len(), 3, "{records:?}");
    assert_eq!(
        records[0].payload_text(),
        "GET /a HTTP/1.1\r\nHost: shop\r\nX-Env: staging\r\n\r\n"
    );
    assert_eq!(records[1], requests()[1], "responses pass unchanged");
    assert_eq!(
        records[2].payload_text(),
        "POST /b HTTP/1.1\r\nX-Env: staging\r\nHost: shop\r\nContent-Length: 4\r\n\r\nbody"
    );
    assert_eq!(records[2].meta, requests()[2].meta);
}

#[test]
fn python_helper_rewrites_a_header() {
    assert_eq!(through("python3 middleware/python/echo.py"), requests());
    assert_header_rewritten(&through(
        "python3 middleware/python/rewrite_header.py X-Env staging",
    ));
}

#[test]
fn node_helper_rewrites_a_header() {
    assert_eq!(through("node middleware/node/echo.js"), requests());
    assert_header_rewritten(&through(
        "node middleware/node/rewrite-header.js X-Env staging",
    ));
}

#[test]
fn shell_helper_rewrites_a_header() {
    assert_eq!(through("bash middleware/shell/echo.sh"), requests());
    assert_header_rewritten(&through(
        "bash middleware/shell/rewrite_header.sh X-Env staging",
    ));
}

/// Builds the Rust helper's examples next to the binary under test, once.
fn rust_examples() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let profile_dir = PathBuf::from(binary()).parent().unwrap().to_path_buf();
        let target_dir = profile_dir.parent().unwrap();
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let status = std::process::Command::new(cargo)
            .args([
                "build",
                "-q",
                "-p",
                "shadowtap-middleware",
                "--examples",
                "--target-dir",
            ])
            .arg(target_dir)
            .current_dir(repo())
            .status()
            .expect("run cargo");
        assert!(
            status.success(),
            "building the Rust middleware examples failed"
        );
        profile_dir.join("examples")
    })
}

#[test]
fn rust_helper_rewrites_a_header() {
    let dir = rust_examples();
    assert_eq!(through(path_str(&dir.join("echo"))), requests());
    let rewrite = format!("{} X-Env staging", path_str(&dir.join("rewrite_header")));
    assert_header_rewritten(&through(&rewrite));
}

const CRASHER: &str = r#"
import os, sys
limit = int(sys.argv[1])
for n, line in enumerate(iter(sys.stdin.buffer.readline, b"")):
    if n == limit:
        sys.stderr.write("crashing on purpose\n"); sys.stderr.flush()
        os._exit(3)
    sys.stdout.buffer.write(line); sys.stdout.flush()
"#;

fn script(dir: &std::path::Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    format!("python3 {}", path_str(&path))
}

fn counter(text: &str, label_prefix: &str, field: &str) -> u64 {
    let part = text
        .split(" | ")
        .find(|p| p.contains(label_prefix))
        .unwrap_or_else(|| panic!("{label_prefix} in {text}"));
    let after = part
        .split(&format!("{field} "))
        .nth(1)
        .map_or("0", |s| s.split([' ', ')', ',']).next().unwrap());
    after.parse().unwrap()
}

#[test]
fn crashing_middleware_is_restarted_and_losses_are_counted() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    // 3 s of input: the crash (at the 5th message) comes while the input still sends, even
    // when the interpreter is slow to start on a loaded machine.
    write_requests(&input, &plain_gets(30), 100_000_000);
    let crasher = script(dir.path(), "crash.py", CRASHER);
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--middleware",
        &format!("{crasher} 4"),
        "--output-stdout",
    ]);
    let text = stderr(&output);
    assert_eq!(
        output.status.code(),
        Some(1),
        "losses must fail the run: {text}"
    );
    assert!(text.contains("[middleware] crashing on purpose"), "{text}");
    assert!(text.contains("restarting"), "{text}");
    let summary = text.lines().find(|l| l.starts_with("shadowtap: ")).unwrap();
    let passed = decode(&output.stdout).len() as u64;
    let lost = counter(summary, "middleware[", "lost in middleware crash");
    assert!(passed >= 4, "{summary}");
    assert_eq!(passed + lost, 30, "{summary}");
}

#[test]
fn restart_disabled_exits_1() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_requests(&input, &plain_gets(10), 100_000_000);
    let crasher = script(dir.path(), "crash.py", CRASHER);
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--middleware",
        &format!("{crasher} 2"),
        "--middleware-restart=false",
        "--output-null",
    ]);
    assert_eq!(output.status.code(), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--middleware-restart=false"),
        "{}",
        stderr(&output)
    );
}

const GARBAGE: &str = r#"
import sys
for n, line in enumerate(iter(sys.stdin.buffer.readline, b"")):
    if n == 0:
        sys.stdout.write("this is not hex\n")
        sys.stdout.write("abc\n")
        sys.stdout.write("41424344\n")
    if n % 2 == 0:
        sys.stdout.buffer.write(line)
    sys.stdout.flush()
"#;

#[test]
fn garbage_lines_are_named_and_skipped_and_unechoed_messages_counted() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &traffic(5, 0));
    let middleware = script(dir.path(), "garbage.py", GARBAGE);
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--middleware",
        &middleware,
        "--output-stdout",
    ]);
    assert_success(&output);
    let text = stderr(&output);
    assert!(
        text.contains("output line 1: byte 0x74 at column 1 is not a hex digit"),
        "{text}"
    );
    assert!(text.contains("malformed lines"), "{text}");
    let passed = decode(&output.stdout);
    assert_eq!(passed.len(), 5, "only requests were echoed");
    assert!(passed.iter().all(|r| r.kind() == b'1'));
    let summary = text.lines().find(|l| l.starts_with("shadowtap: ")).unwrap();
    assert_eq!(
        counter(summary, "middleware[", "dropped by middleware"),
        5,
        "{summary}"
    );
}

#[test]
fn missing_middleware_program_exits_2() {
    let output = run(&[
        "--input-dummy",
        "x",
        "--middleware",
        "/no/such/program --flag",
        "--output-null",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--middleware: cannot start"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn helper_library_unit_tests_pass() {
    let python = std::process::Command::new("python3")
        .args([
            "-m",
            "unittest",
            "discover",
            "-s",
            "middleware/python",
            "-q",
        ])
        .current_dir(repo())
        .output()
        .expect("python3");
    assert!(
        python.status.success(),
        "{}",
        String::from_utf8_lossy(&python.stderr)
    );
    let node = std::process::Command::new("node")
        .args(["--test", "middleware/node/"])
        .current_dir(repo())
        .output()
        .expect("node");
    assert!(
        node.status.success(),
        "{}",
        String::from_utf8_lossy(&node.stdout)
    );
}

/// The npm `goreplay_middleware` package, installed once under the target directory; `None`
/// (after printing SKIPPED) when node or npm is missing outside CI.
fn goreplay_npm_package() -> Option<PathBuf> {
    let profile_dir = PathBuf::from(binary()).parent().unwrap().to_path_buf();
    let dir = profile_dir.join("npm-goreplay");
    let module = dir.join("node_modules/goreplay_middleware");
    if module.is_dir() {
        return Some(dir);
    }
    std::fs::create_dir_all(&dir).unwrap();
    let installed = std::process::Command::new("npm")
        .args([
            "install",
            "--no-audit",
            "--no-fund",
            "goreplay_middleware@1",
        ])
        .current_dir(&dir)
        .status()
        .is_ok_and(|s| s.success());
    if installed && module.is_dir() {
        return Some(dir);
    }
    prerequisite_missing(
        "npm install goreplay_middleware failed",
        "needs node and npm: apt-get install -y nodejs npm",
    );
    None
}

const NPM_ECHO: &str = r#"
var gor = require("goreplay_middleware");
gor.init();
gor.on("message", function (data) { return data; });
"#;

#[test]
fn npm_goreplay_middleware_that_never_exits_is_killed_without_failing_the_run() {
    let Some(package_dir) = goreplay_npm_package() else {
        return;
    };
    let script = package_dir.join("echo.js");
    std::fs::write(&script, NPM_ECHO).unwrap();
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &requests());
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--middleware",
        &format!("node {}", path_str(&script)),
        "--output-stdout",
    ]);
    let text = stderr(&output);
    assert_success(&output);
    assert_eq!(decode(&output.stdout), requests(), "{text}");
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("with no message in flight; killed it"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    assert!(!text.contains("in-flight message(s) lost"), "{text}");
}

/// Echoes every message but the first, then prints the first again with 100 MB more hex
/// payload and no newline, and exits.
const HUGE_LINE: &str = r#"
import sys
lines = list(iter(sys.stdin.buffer.readline, b""))
for line in lines[1:]:
    sys.stdout.buffer.write(line)
sys.stdout.buffer.write(lines[0].rstrip(b"\n"))
chunk = b"41" * (1 << 19)
for _ in range(100):
    sys.stdout.buffer.write(chunk)
sys.stdout.flush()
"#;

#[test]
fn a_100_mb_middleware_line_is_skipped_in_bounded_memory_and_counted_oversized() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_gor(&input, &requests());
    let middleware = script(dir.path(), "huge.py", HUGE_LINE);
    let output = run_with_address_space_limit(
        1 << 30,
        &[
            "--input-file",
            &format!("{}|100000%", path_str(&input)),
            "--middleware",
            &middleware,
            "--output-stdout",
        ],
    );
    let text = stderr(&output);
    assert_success(&output);
    assert_eq!(decode(&output.stdout), requests()[1..], "{text}");
    assert!(
        text.contains("output line 3: longer than") && text.contains("counted oversized"),
        "{text}"
    );
    let summary = text.lines().find(|l| l.starts_with("shadowtap: ")).unwrap();
    assert_eq!(counter(summary, "middleware[", "oversized"), 1, "{summary}");
    assert_eq!(
        counter(summary, "middleware[", "dropped by middleware"),
        0,
        "{summary}"
    );
}
