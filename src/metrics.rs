//! `--metrics ADDR`: the ledger as Prometheus text (exposition format 0.0.4) at `/metrics`,
//! served by hyper on one thread (a tokio current-thread runtime): connections are served
//! concurrently (at most 64), a request head must arrive within 2 s and a connection is closed
//! after 5 s, so a slow or silent client delays nobody. (tiny_http was considered: it serves
//! each connection on its own thread but has no deadline for a request that trickles in.)
//!
//! Series: `shadowtap_messages_in_total{plugin,role}`, `shadowtap_messages_out_total`,
//! `shadowtap_messages_dropped_total{plugin,role,reason}`, `shadowtap_messages_truncated_total`,
//! `shadowtap_errors_total`, and every extra counter of a plugin as
//! `shadowtap_counter{plugin,role,name}`, and keyed ones with their key as one more label
//! (`shadowtap_counter{plugin,role,name="diff pairs",endpoint="GET /users/{id}"}`).

use bytes::Bytes;
use http_body_util::Full;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use shadowtap_api::Ledger;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// A client must have sent its whole request head within this long.
const HEAD_DEADLINE: Duration = Duration::from_secs(2);
/// A connection is closed after this long, whatever it is doing.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed at once.
const MAX_CONNECTIONS: usize = 64;

/// Binds `address` (`:9090` means all interfaces) and serves the ledger from a thread.
pub fn serve(address: &str, ledger: Arc<Ledger>) -> io::Result<SocketAddr> {
    let address = if address.starts_with(':') {
        format!("0.0.0.0{address}")
    } else {
        address.to_string()
    };
    let listener = TcpListener::bind(&address)?;
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || runtime.block_on(accept_loop(listener, ledger)))?;
    tracing::info!(address = %local, "serving Prometheus metrics at /metrics");
    Ok(local)
}

async fn accept_loop(listener: TcpListener, ledger: Arc<Ledger>) {
    let listener = match tokio::net::TcpListener::from_std(listener) {
        Ok(listener) => listener,
        Err(e) => return tracing::warn!("metrics: cannot serve: {e}"),
    };
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                tracing::debug!("metrics: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            tracing::debug!("metrics: {MAX_CONNECTIONS} connections open; one refused");
            continue;
        };
        let ledger = ledger.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let response = answer(&request, &ledger);
                async move { Ok::<_, Infallible>(response) }
            });
            let connection = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEAD_DEADLINE)
                .keep_alive(false)
                .title_case_headers(true)
                .serve_connection(TokioIo::new(stream), service);
            match tokio::time::timeout(CONNECTION_DEADLINE, connection).await {
                Ok(Err(e)) => tracing::debug!("metrics: {e}"),
                Err(_) => tracing::debug!("metrics: connection closed at its deadline"),
                Ok(Ok(())) => {}
            }
            drop(slot);
        });
    }
}

fn answer(request: &Request<hyper::body::Incoming>, ledger: &Ledger) -> Response<Full<Bytes>> {
    let (status, body) = match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/metrics") => (StatusCode::OK, render(ledger)),
        (&Method::GET | &Method::HEAD, _) => (
            StatusCode::NOT_FOUND,
            "not found; try /metrics\n".to_string(),
        ),
        _ => (StatusCode::METHOD_NOT_ALLOWED, "use GET\n".to_string()),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
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
        "Extra named counters of each plugin (bytes, connections, errors by kind...), \
         keyed ones with their key as one more label.",
        "untyped",
        snapshots
            .iter()
            .flat_map(|s| {
                let extra = s
                    .extra
                    .iter()
                    .map(move |(name, n)| (format!("{},name=\"{}\"", base(s), escape(name)), *n));
                let keyed = s.keyed.iter().map(move |k| {
                    let labels = format!(
                        "{},name=\"{}\",{}=\"{}\"",
                        base(s),
                        escape(&k.name),
                        k.label,
                        escape(&k.key)
                    );
                    (labels, k.value)
                });
                extra.chain(keyed)
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

    #[test]
    fn keyed_counters_join_the_counter_family_with_their_key() {
        let ledger = Ledger::new();
        let c = ledger.register("output-diff[r.html]", Role::Output);
        c.extra("diff pairs")
            .fetch_add(5, std::sync::atomic::Ordering::Relaxed);
        c.keyed("diff pairs", "endpoint", "GET /users/{id}")
            .fetch_add(4, std::sync::atomic::Ordering::Relaxed);
        let text = render(&ledger);
        let keyed = "shadowtap_counter{plugin=\"output-diff[r.html]\",role=\"output\",\
                     name=\"diff pairs\",endpoint=\"GET /users/{id}\"} 4";
        assert!(text.lines().any(|l| l == keyed), "{keyed} not in\n{text}");
        assert_eq!(text.matches("# TYPE shadowtap_counter ").count(), 1);
        assert!(!ledger.summary().contains("GET /users"));
    }
}
