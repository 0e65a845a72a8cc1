//! Checks a page the way a person's browser shows it, with Debian's real headless Chromium
//! driven over the DevTools protocol on `--remote-debugging-pipe` (fd 3 in, fd 4 out,
//! NUL-separated JSON; no websocket needed). One run gives the DOM after the page's scripts
//! ran, every console error, uncaught exception and browser-side error (a blocked or failed
//! load, a CSP violation), and a PNG screenshot with the share of pixels that are not the
//! page background. The whole run is bounded by [`TIMEOUT`]: Chromium runs in its own
//! process group, which is killed on every exit path, so no process is left behind.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// Debian's Chromium launcher.
pub const CHROMIUM: &str = "/usr/bin/chromium";
/// What installs [`CHROMIUM`].
pub const INSTALL: &str = "apt-get install -y --no-install-recommends chromium";
/// Longest a whole [`check_page`] may take before Chromium is killed.
pub const TIMEOUT: Duration = Duration::from_secs(30);
const WIDTH: u32 = 1280;
const HEIGHT: u32 = 2000;
/// Time the page gets after its load event, for timers that throw late.
const SETTLE_MS: u64 = 250;

/// What a real browser made of a page.
#[derive(Debug)]
pub struct PageCheck {
    /// `document.documentElement.outerHTML` after the load event and scripts ran.
    pub dom: String,
    /// console.error/console.assert calls, uncaught exceptions and browser error log entries.
    pub console_errors: Vec<String>,
    /// A 1280×2000 PNG of the viewport.
    pub screenshot: PathBuf,
    /// Fraction (0..1) of screenshot pixels that differ from the most common colour.
    pub non_background_pixels: f64,
}

#[derive(Debug, thiserror::Error)]
pub enum BrowserError {
    #[error("{0} is missing: install it with `apt-get install chromium`")]
    Missing(PathBuf),
    #[error("cannot start chromium: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("i/o with chromium or the work directory: {0}")]
    Io(#[from] std::io::Error),
    #[error("chromium did not finish within {0:?}; it was killed")]
    Timeout(Duration),
    #[error("chromium closed the DevTools pipe (see {0})")]
    Closed(PathBuf),
    #[error("DevTools {method} failed: {error}")]
    Protocol { method: String, error: Value },
    #[error("DevTools {method} answered without {key}")]
    Answer { method: String, key: &'static str },
    #[error("DevTools sent invalid JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("navigation to {url} failed: {reason}")]
    Navigation { url: String, reason: String },
    #[error("the screenshot is not valid base64")]
    Base64,
    #[error("the screenshot is not a PNG: {0}")]
    Png(#[from] png::DecodingError),
}

/// What to install when Chromium is missing, or `None` when it is there.
pub fn prerequisite() -> Option<&'static str> {
    (!Path::new(CHROMIUM).exists()).then_some(INSTALL)
}

/// Loads `html` in headless Chromium and reports what it showed. Files (Chromium's profile,
/// its log, the screenshot) go under `workdir`.
pub fn check_page(html: &Path, workdir: &Path) -> Result<PageCheck, BrowserError> {
    check_page_within(html, workdir, TIMEOUT)
}

/// [`check_page`] with its own time limit.
pub fn check_page_within(
    html: &Path,
    workdir: &Path,
    timeout: Duration,
) -> Result<PageCheck, BrowserError> {
    if prerequisite().is_some() {
        return Err(BrowserError::Missing(CHROMIUM.into()));
    }
    let html = std::fs::canonicalize(html)?;
    let url = format!("file://{}", html.display());
    let profile = fresh_profile(workdir)?;
    let log = workdir.join("chromium.log");
    let result = Browser::start(&profile, &log, timeout).and_then(|mut b| b.check(&url, workdir));
    let _ = std::fs::remove_dir_all(&profile);
    result
}

fn fresh_profile(workdir: &Path) -> Result<PathBuf, BrowserError> {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = workdir.join(format!("chromium-profile-{}-{n}", std::process::id()));
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// A running Chromium and its DevTools pipe. Dropping it kills Chromium's process group.
struct Browser {
    child: Child,
    input: ChildStdin,
    messages: Receiver<Value>,
    deadline: Instant,
    timeout: Duration,
    next_id: u64,
    session: Option<String>,
    loaded: bool,
    errors: Vec<String>,
    log: PathBuf,
}

impl Browser {
    fn start(profile: &Path, log: &Path, timeout: Duration) -> Result<Self, BrowserError> {
        let mut child = chromium_command(profile, log)?
            .spawn()
            .map_err(BrowserError::Spawn)?;
        let (tx, messages) = mpsc::channel();
        let output = child.stdout.take().expect("stdout is piped");
        std::thread::spawn(move || {
            for frame in BufReader::new(output).split(0) {
                let Ok(frame) = frame else { break };
                let Ok(message) = serde_json::from_slice::<Value>(&frame) else {
                    break;
                };
                if tx.send(message).is_err() {
                    break;
                }
            }
        });
        let input = child.stdin.take().expect("stdin is piped");
        Ok(Browser {
            child,
            input,
            messages,
            deadline: Instant::now() + timeout,
            timeout,
            next_id: 0,
            session: None,
            loaded: false,
            errors: Vec::new(),
            log: log.to_path_buf(),
        })
    }

    fn check(&mut self, url: &str, workdir: &Path) -> Result<PageCheck, BrowserError> {
        self.attach()?;
        self.navigate(url)?;
        let settle = format!("new Promise(r => setTimeout(r, {SETTLE_MS}))");
        self.evaluate(&settle)?;
        let dom = self.evaluate("document.documentElement.outerHTML")?;
        let dom = dom.as_str().unwrap_or_default().to_string();
        let png = self.screenshot()?;
        let screenshot = workdir.join("screenshot.png");
        std::fs::write(&screenshot, &png)?;
        let non_background_pixels = non_background_fraction(&png)?;
        self.close();
        Ok(PageCheck {
            dom,
            console_errors: std::mem::take(&mut self.errors),
            screenshot,
            non_background_pixels,
        })
    }

    /// Opens a fresh tab and enables the domains that report errors, before any page loads.
    fn attach(&mut self) -> Result<(), BrowserError> {
        let target = self.call("Target.createTarget", json!({ "url": "about:blank" }))?;
        let target_id = field(&target, "targetId", "Target.createTarget")?;
        let params = json!({ "targetId": target_id, "flatten": true });
        let attached = self.call("Target.attachToTarget", params)?;
        self.session = Some(field(&attached, "sessionId", "Target.attachToTarget")?.to_string());
        for domain in ["Page", "Runtime", "Log"] {
            self.call(&format!("{domain}.enable"), json!({}))?;
        }
        let metrics =
            json!({ "width": WIDTH, "height": HEIGHT, "deviceScaleFactor": 1, "mobile": false });
        self.call("Emulation.setDeviceMetricsOverride", metrics)?;
        Ok(())
    }

    fn navigate(&mut self, url: &str) -> Result<(), BrowserError> {
        self.loaded = false;
        let answer = self.call("Page.navigate", json!({ "url": url }))?;
        if let Some(reason) = answer.get("errorText").and_then(Value::as_str) {
            return Err(BrowserError::Navigation {
                url: url.into(),
                reason: reason.into(),
            });
        }
        while !self.loaded {
            self.next_message()?;
        }
        Ok(())
    }

    /// Evaluates `expression` in the page (awaiting a promise) and returns its value.
    fn evaluate(&mut self, expression: &str) -> Result<Value, BrowserError> {
        let params =
            json!({ "expression": expression, "returnByValue": true, "awaitPromise": true });
        let answer = self.call("Runtime.evaluate", params)?;
        if let Some(exception) = answer.get("exceptionDetails") {
            let error = exception.clone();
            return Err(BrowserError::Protocol {
                method: "Runtime.evaluate".into(),
                error,
            });
        }
        Ok(answer
            .pointer("/result/value")
            .cloned()
            .unwrap_or(Value::Null))
    }

    fn screenshot(&mut self) -> Result<Vec<u8>, BrowserError> {
        let shot = self.call("Page.captureScreenshot", json!({ "format": "png" }))?;
        let data = field(&shot, "data", "Page.captureScreenshot")?;
        base64_decode(data).ok_or(BrowserError::Base64)
    }

    /// Asks Chromium to quit; [`Drop`] kills whatever is left.
    fn close(&mut self) {
        self.session = None;
        let _ = self.send("Browser.close", json!({}));
        let until = Instant::now() + Duration::from_secs(3);
        while Instant::now() < until && matches!(self.child.try_wait(), Ok(None)) {
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a command and waits for its answer, recording the events that come meanwhile.
    fn call(&mut self, method: &str, params: Value) -> Result<Value, BrowserError> {
        let id = self.send(method, params)?;
        loop {
            let message = self.next_message()?;
            if message.get("id").and_then(Value::as_u64) != Some(id) {
                continue;
            }
            if let Some(error) = message.get("error") {
                let error = error.clone();
                return Err(BrowserError::Protocol {
                    method: method.into(),
                    error,
                });
            }
            return Ok(message.get("result").cloned().unwrap_or(Value::Null));
        }
    }

    fn send(&mut self, method: &str, params: Value) -> Result<u64, BrowserError> {
        self.next_id += 1;
        let mut message = json!({ "id": self.next_id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut frame = serde_json::to_vec(&message)?;
        frame.push(0);
        self.input.write_all(&frame)?;
        self.input.flush()?;
        Ok(self.next_id)
    }

    /// The next message from Chromium; error events are recorded before it is returned.
    fn next_message(&mut self) -> Result<Value, BrowserError> {
        let left = self.deadline.saturating_duration_since(Instant::now());
        let message = self.messages.recv_timeout(left).map_err(|e| match e {
            RecvTimeoutError::Timeout => BrowserError::Timeout(self.timeout),
            RecvTimeoutError::Disconnected => BrowserError::Closed(self.log.clone()),
        })?;
        if let Some(error) = error_event(&message) {
            self.errors.push(error);
        }
        if message.get("method").and_then(Value::as_str) == Some("Page.loadEventFired") {
            self.loaded = true;
        }
        Ok(message)
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // The launcher execs Chromium, so the child's pid is the group's id; renderers and
        // the zygote are in the group too.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            let _ = nix::sys::signal::killpg(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Chromium with its DevTools pipe on our stdin/stdout: the shell moves them to fds 3 and 4,
/// where `--remote-debugging-pipe` expects them.
fn chromium_command(profile: &Path, log: &Path) -> Result<Command, BrowserError> {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(r#"exec "$0" "$@" 3<&0 4>&1 </dev/null >/dev/null"#)
        .arg(CHROMIUM)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--remote-debugging-pipe",
        ])
        .arg(format!("--window-size={WIDTH},{HEIGHT}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log)?)
        .process_group(0);
    Ok(command)
}

fn field<'a>(answer: &'a Value, key: &'static str, method: &str) -> Result<&'a str, BrowserError> {
    answer
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| BrowserError::Answer {
            method: method.into(),
            key,
        })
}

/// The text of an event that reports an error on the page, if `message` is one.
fn error_event(message: &Value) -> Option<String> {
    let params = message.get("params")?;
    match message.get("method")?.as_str()? {
        "Runtime.consoleAPICalled" => {
            let kind = params.get("type")?.as_str()?;
            matches!(kind, "error" | "assert")
                .then(|| format!("console.{kind}: {}", console_args(params)))
        }
        "Runtime.exceptionThrown" => {
            let details = params.get("exceptionDetails")?;
            let text = details
                .pointer("/exception/description")
                .or_else(|| details.get("text"))
                .and_then(Value::as_str)
                .unwrap_or("exception");
            Some(format!("uncaught: {text}"))
        }
        "Log.entryAdded" => {
            let entry = params.get("entry")?;
            (entry.get("level")?.as_str()? == "error").then(|| {
                let text = entry.get("text").and_then(Value::as_str).unwrap_or("");
                let url = entry.get("url").and_then(Value::as_str).unwrap_or("");
                format!("log: {text} {url}").trim_end().to_string()
            })
        }
        _ => None,
    }
}

fn console_args(params: &Value) -> String {
    let args = params.get("args").and_then(Value::as_array);
    let text = |arg: &Value| match arg.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(v) => v.to_string(),
        None => arg
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_string(),
    };
    args.map(|a| a.iter().map(text).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for byte in text.bytes().take_while(|b| *b != b'=') {
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// Share of pixels whose colour differs from the most common one (the page background).
pub fn non_background_fraction(png_bytes: &[u8]) -> Result<f64, BrowserError> {
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png_bytes));
    decoder.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().unwrap_or(0)];
    let info = reader.next_frame(&mut buf)?;
    let samples = info.color_type.samples();
    let mut counts = std::collections::HashMap::<&[u8], usize>::new();
    for pixel in buf[..info.buffer_size()].chunks_exact(samples) {
        *counts.entry(pixel).or_default() += 1;
    }
    let total: usize = counts.values().sum();
    let background = counts.values().copied().max().unwrap_or(0);
    Ok(if total == 0 {
        0.0
    } else {
        1.0 - background as f64 / total as f64
    })
}

/// [`check_page`], or `None` when Chromium is missing (a failure under `CI=true`, `SKIPPED`
/// elsewhere, as for every prerequisite).
pub fn check_page_or_skip(html: &Path, workdir: &Path) -> Option<PageCheck> {
    if let Some(install) = prerequisite() {
        crate::common::prerequisite_missing("chromium", install);
        return None;
    }
    Some(check_page(html, workdir).unwrap_or_else(|e| panic!("{}: {e}", html.display())))
}

/// The proof that the checker sees what it says it sees.
#[cfg(test)]
mod proof {
    use super::*;

    fn check(html: &str) -> (tempfile::TempDir, Option<PageCheck>) {
        let dir = crate::common::tempdir();
        let page = dir.path().join("page.html");
        std::fs::write(&page, html).expect("write page");
        let check = check_page_or_skip(&page, dir.path());
        assert_no_chromium_left(dir.path());
        (dir, check)
    }

    /// No process runs with a command line naming `dir` (where its profile was).
    fn assert_no_chromium_left(dir: &Path) {
        let needle = dir.to_string_lossy().into_owned();
        for entry in std::fs::read_dir("/proc").expect("read /proc").flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
                continue;
            };
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            assert!(
                !(cmdline.contains("chromium") && cmdline.contains(&needle)),
                "chromium left running: {cmdline}"
            );
        }
    }

    #[test]
    fn console_errors_and_uncaught_exceptions_are_reported() {
        let (_dir, Some(page)) = check(
            "<!DOCTYPE html><body><script>console.log(\"fine\"); console.error(\"x\", 42);</script>",
        ) else {
            return;
        };
        assert_eq!(page.console_errors, ["console.error: x 42"]);
        let (_dir, Some(page)) = check(
            "<!DOCTYPE html><body><script>setTimeout(() => { throw new Error(\"late\") }, 50); throw new Error(\"y\");</script>",
        ) else {
            return;
        };
        assert_eq!(page.console_errors.len(), 2, "{:?}", page.console_errors);
        assert!(
            page.console_errors[0].starts_with("uncaught: Error: y"),
            "{:?}",
            page.console_errors
        );
    }

    #[test]
    fn a_clean_page_reports_nothing_and_a_blank_one_is_all_background() {
        let (_dir, Some(blank)) = check(
            "<!DOCTYPE html><body><script>console.log(\"ok\"); console.warn(\"meh\")</script>",
        ) else {
            return;
        };
        assert!(
            blank.console_errors.is_empty(),
            "{:?}",
            blank.console_errors
        );
        assert!(
            blank.non_background_pixels < 0.0001,
            "{}",
            blank.non_background_pixels
        );
        assert!(blank.screenshot.is_file());
        let (_dir, Some(text)) =
            check("<!DOCTYPE html><body><h1 style=\"font-size:120px\">Hello</h1>")
        else {
            return;
        };
        assert!(
            text.non_background_pixels > 0.001,
            "{}",
            text.non_background_pixels
        );
    }

    #[test]
    fn a_hanging_page_times_out_and_chromium_is_killed() {
        if prerequisite().is_some() {
            return crate::common::prerequisite_missing("chromium", INSTALL);
        }
        let dir = crate::common::tempdir();
        let page = dir.path().join("page.html");
        std::fs::write(&page, "<!DOCTYPE html><body><script>for (;;) {}</script>").unwrap();
        let started = Instant::now();
        let result = check_page_within(&page, dir.path(), Duration::from_secs(3));
        assert!(
            matches!(result, Err(BrowserError::Timeout(_))),
            "{result:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_no_chromium_left(dir.path());
    }
}
