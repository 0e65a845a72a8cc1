//! `--metrics ADDR`: the ledger as Prometheus text (exposition format 0.0.4) at `/metrics`,
//! served by a small HTTP/1.x server thread (one request per connection).
//!
//! Series: `shadowtap_messages_in_total{plugin,role}`, `shadowtap_messages_out_total`,
//! `shadowtap_messages_dropped_total{plugin,role,reason}`, `shadowtap_messages_truncated_total`,
//! `shadowtap_errors_total`, and every extra counter of a plugin as
//! `shadowtap_counter{plugin,role,name}`.

use shadowtap_api::Ledger;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

/// Binds `address` (`:9090` means all interfaces) and serves the ledger from a thread.
pub fn serve(address: &str, ledger: Arc<Ledger>) -> io::Result<SocketAddr> {
    let address = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    };
    let listener = TcpListener::bind(&address)?;
    let local = listener.local_addr()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || {
            for stream in listener.incoming().flatten() {
                if let Err(e) = answer(stream, &ledger) {
                    tracing::debug!("metrics: {e}");
                }
            }
        })?;
    tracing::info!(address = %local, "serving Prometheus metrics at /metrics");
    Ok(local)
}

fn answer(mut stream: TcpStream, ledger: &Ledger) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.set_write_timeout(Some(Duration::from_secs(2)))?;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && !head.windows(2).any(|w| w == b"\n\n") {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
        if head.len() > 16 << 10 {
            break;
        }
    }
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let method = parts.next().unwrap_or_default();
    let path = parts.next().unwrap_or_default();
    let path = path.split(|&b| b == b'?').next().unwrap_or_default();
    let (status, body) = match (method, path) {
        (b"GET" | b"HEAD", b"/metrics") => ("200 OK", render(ledger)),
        (b"GET" | b"HEAD", _) => ("404 Not Found", "not found; try /metrics\n".to_string()),
        _ => ("405 Method Not Allowed", "use GET\n".to_string()),
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    if method != b"HEAD" {
        response.push_str(&body);
    }
    stream.write_all(response.as_bytes())
}

/// Escapes a label value (`\`, `"` and newlines).
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// The whole exposition text.
pub fn render(ledger: &Ledger) -> String {
    let snapshots = ledger.snapshot();
    let mut out = String::new();
    let mut family = |name: &str, help: &str, kind: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        for (labels, value) in rows {
            let _ = writeln!(out, "{name}{{{labels}}} {value}");
        }
    };
    let base = |s: &shadowtap_api::ledger::Snapshot| {
        format!(
            "plugin=\"{}\",role=\"{}\"",
            escape(&s.label),
            s.role.as_str()
        )
    };
    family(
        "shadowtap_messages_in_total",
        "Messages that came in (read by an input, queued to an output, seen by a stage).",
        "counter",
        snapshots.iter().map(|s| (base(s), s.received)).collect(),
    );
    family(
        "shadowtap_messages_out_total",
        "Messages that went on (emitted by an input, delivered by an output).",
        "counter",
        snapshots.iter().map(|s| (base(s), s.passed)).collect(),
    );
    family(
        "shadowtap_messages_dropped_total",
        "Messages that did not go on, by reason.",
        "counter",
        snapshots
            .iter()
            .flat_map(|s| {
                s.drops.iter().map(move |(reason, n)| {
                    (
                        format!("{},reason=\"{}\"", base(s), escape(reason.as_str())),
                        *n,
                    )
                })
            })
            .collect(),
    );
    family(
        "shadowtap_messages_truncated_total",
        "Messages passed on with their payload cut to --copy-buffer-size.",
        "counter",
        snapshots.iter().map(|s| (base(s), s.truncated)).collect(),
    );
    family(
        "shadowtap_errors_total",
        "Runtime errors.",
        "counter",
        snapshots.iter().map(|s| (base(s), s.errors)).collect(),
    );
    family(
        "shadowtap_counter",
        "Extra named counters of each plugin (bytes, connections, errors by kind...).",
        "untyped",
        snapshots
            .iter()
            .flat_map(|s| {
                s.extra
                    .iter()
                    .map(move |(name, n)| (format!("{},name=\"{}\"", base(s), escape(name)), *n))
            })
            .collect(),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{Reason, Role};

    #[test]
    fn renders_every_family_with_escaped_labels() {
        let ledger = Ledger::new();
        let c = ledger.register("output-http[http://a\"b\\c]", Role::Output);
        c.add_in(3);
        c.add_out(2);
        c.add_drop(Reason::OutputError, 1);
        c.extra("error: refused")
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let text = render(&ledger);
        let label = "plugin=\"output-http[http://a\\\"b\\\\c]\",role=\"output\"";
        for line in [
            format!("shadowtap_messages_in_total{{{label}}} 3"),
            format!("shadowtap_messages_out_total{{{label}}} 2"),
            format!("shadowtap_messages_dropped_total{{{label},reason=\"output error\"}} 1"),
            format!("shadowtap_counter{{{label},name=\"error: refused\"}} 1"),
            format!("shadowtap_errors_total{{{label}}} 0"),
        ] {
            assert!(text.lines().any(|l| l == line), "{line} not in\n{text}");
        }
        assert_eq!(escape("a\nb"), "a\\nb");
    }
}
