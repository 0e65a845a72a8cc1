//! Listeners against hostile or careless peers: input-http's caps, input-tcp's and
//! input-http's connection limit, memory budget, idle timeout, tokens and client certificates,
//! `--metrics` under a slowloris client, and secrets kept out of stderr.

use crate::common::*;
use crate::nginx::{free_port, wait_for_port};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn spawn(args: &[&str]) -> Child {
    command()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start shadowtap")
}

/// Starts shadowtap listening on `port` (with `args`) and waits until it accepts.
fn listening(port: u16, args: &[&str]) -> Child {
    let child = spawn(args);
    wait_for_port(port, Duration::from_secs(10));
    // wait_for_port's own connection must have ended before limits are tested.
    std::thread::sleep(Duration::from_millis(200));
    child
}

fn stop(child: Child) -> String {
    terminate(&child);
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
    stderr(&output)
}

fn connect(port: u16) -> TcpStream {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Everything the peer sends until it closes (or resets) the connection.
fn read_all(stream: &mut TcpStream) -> String {
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Writes `total` bytes made of `pattern` until done or the peer stops reading, then
/// `end`; returns the answer, read meanwhile (a reset after it must not destroy it).
fn flood(mut stream: TcpStream, pattern: &[u8], total: usize, end: &[u8]) -> String {
    let mut reader = stream.try_clone().unwrap();
    let answer = std::thread::spawn(move || read_all(&mut reader));
    let block = pattern.repeat((64 << 10) / pattern.len());
    let mut sent = 0;
    while sent < total && stream.write_all(&block).is_ok() {
        sent += block.len();
    }
    let _ = stream.write_all(end);
    answer.join().unwrap()
}

/// The resident set size of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

fn http_input(port: u16, extra: &[&str]) -> Child {
    let address = format!("127.0.0.1:{port}");
    let mut args = vec!["--input-http", &address, "--output-null"];
    args.extend_from_slice(extra);
    listening(port, &args)
}

#[test]
fn input_http_caps_every_length_a_client_sends() {
    let port = free_port();
    let child = http_input(port, &[]);
    let pid = child.id();
    let before = rss_kib(pid);
    // Endless trailers, chunk-size line and head (64 MiB each), then 16 MiB of tiny chunks.
    let mut trailers = connect(port);
    trailers
        .write_all(b"POST /t HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n")
        .unwrap();
    let trailer_answer = flood(trailers, b"X-Trailer: 1234567890\r\n", 64 << 20, b"");
    let mut size_line = connect(port);
    size_line
        .write_all(b"POST /s HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n1")
        .unwrap();
    let size_answer = flood(size_line, b"0", 64 << 20, b"");
    let mut head = connect(port);
    head.write_all(b"GET /h HTTP/1.1\r\n").unwrap();
    let head_answer = flood(head, b"X-Header: 1234567890\r\n", 64 << 20, b"");
    let mut chunks = connect(port);
    chunks
        .write_all(b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunks_answer = flood(
        chunks,
        b"a\r\n0123456789\r\n",
        16 << 20,
        b"0\r\n\r\nGET /close HTTP/1.1\r\nConnection: close\r\n\r\n",
    );
    let grown = rss_kib(pid).saturating_sub(before);
    eprintln!("input-http RSS grew by {grown} KiB");
    let err = stop(child);
    assert!(
        trailer_answer.starts_with("HTTP/1.1 431"),
        "{trailer_answer}"
    );
    assert!(size_answer.starts_with("HTTP/1.1 400"), "{size_answer}");
    assert!(head_answer.starts_with("HTTP/1.1 431"), "{head_answer}");
    assert!(chunks_answer.starts_with("HTTP/1.1 200"), "{chunks_answer}");
    assert!(grown < 40 << 10, "RSS grew by {grown} KiB; stderr:\n{err}");
    assert_eq!(summary_counter(&err, "input-http", "oversized"), 3, "{err}");
    assert_eq!(summary_counter(&err, "input-http", "truncated"), 1, "{err}");
}

#[test]
fn input_http_counts_bad_and_unfinished_requests() {
    let port = free_port();
    let child = http_input(port, &["--input-http-idle-timeout", "500ms"]);
    let mut bad = connect(port);
    bad.write_all(b"NOT HTTP\x01\r\n\r\n").unwrap();
    let bad_answer = read_all(&mut bad);
    let mut unfinished = connect(port);
    unfinished
        .write_all(b"POST /u HTTP/1.1\r\nContent-Length: 10\r\n\r\nabc")
        .unwrap();
    let started = Instant::now();
    let _ = read_all(&mut unfinished);
    let closed_after = started.elapsed();
    let err = stop(child);
    assert!(bad_answer.starts_with("HTTP/1.1 400"), "{bad_answer}");
    assert!(closed_after < Duration::from_secs(5), "{closed_after:?}");
    assert_eq!(summary_counter(&err, "input-http", "malformed"), 1, "{err}");
    assert_eq!(
        summary_counter(&err, "input-http", "incomplete"),
        1,
        "{err}"
    );
}

#[test]
fn input_http_token_right_and_wrong() {
    let port = free_port();
    let dir = tempdir();
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "tok-EN-8a7d\n").unwrap();
    let child = http_input(
        port,
        &["--input-http-auth-token-file", path_str(&token_file)],
    );
    let ask = |auth: &str| {
        let mut stream = connect(port);
        write!(
            stream,
            "GET /x HTTP/1.1\r\nHost: a\r\n{auth}Connection: close\r\n\r\n"
        )
        .unwrap();
        read_all(&mut stream)
    };
    let right = ask("Authorization: Bearer tok-EN-8a7d\r\n");
    let wrong = ask("Authorization: Bearer tok-EN-8a7e\r\n");
    let missing = ask("");
    let err = stop(child);
    assert!(right.starts_with("HTTP/1.1 200"), "{right}");
    assert!(wrong.starts_with("HTTP/1.1 401"), "{wrong}");
    assert!(missing.starts_with("HTTP/1.1 401"), "{missing}");
    assert_eq!(summary_counter(&err, "input-http", "out"), 1, "{err}");
    assert_eq!(
        summary_counter(&err, "input-http", "unauthorized"),
        2,
        "{err}"
    );
    assert!(err.contains("127.0.0.1:"), "the peer is named: {err}");
    assert!(!err.contains("tok-EN"), "a token leaked: {err}");
}

#[test]
fn input_http_connection_limit_answers_503() {
    let port = free_port();
    let child = http_input(port, &["--input-http-max-connections", "2"]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect(port)).collect();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = connect(port);
    let answer = read_all(&mut third);
    drop(held);
    let err = stop(child);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert_eq!(
        summary_counter(&err, "input-http", "connection limit"),
        1,
        "{err}"
    );
}

fn tcp_input(port: u16, extra: &[&str]) -> Child {
    let address = format!("127.0.0.1:{port}");
    let mut args = vec!["--input-tcp", &address, "--output-null"];
    args.extend_from_slice(extra);
    listening(port, &args)
}

/// True if the peer closes `stream` within `limit` (reads give EOF or an error).
fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    stream.set_read_timeout(Some(limit)).unwrap();
    let mut byte = [0u8; 1];
    !matches!(stream.read(&mut byte), Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut))
}

#[test]
fn input_tcp_idle_connections_time_out_and_the_limit_holds() {
    let port = free_port();
    let child = tcp_input(
        port,
        &[
            "--input-tcp-max-connections",
            "3",
            "--input-tcp-idle-timeout",
            "1s",
        ],
    );
    let mut admitted: Vec<TcpStream> = (0..3).map(|_| connect(port)).collect();
    admitted[0]
        .write_all(b"1 0000000000000000000000aa 1 0\nGET / HTTP/1.1\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut refused: Vec<TcpStream> = (0..4).map(|_| connect(port)).collect();
    for stream in &mut refused {
        assert!(closed_within(stream, Duration::from_millis(500)));
    }
    let started = Instant::now();
    for stream in &mut admitted {
        assert!(closed_within(stream, Duration::from_secs(5)));
    }
    let idle_for = started.elapsed();
    // Idle peers are gone: a new one is admitted again.
    let mut again = connect(port);
    assert!(!closed_within(&mut again, Duration::from_millis(300)));
    drop(again);
    let err = stop(child);
    assert!(idle_for < Duration::from_secs(3), "{idle_for:?}");
    assert_eq!(
        summary_counter(&err, "input-tcp", "connection limit"),
        4,
        "{err}"
    );
    assert_eq!(summary_counter(&err, "input-tcp", "incomplete"), 1, "{err}");
}

#[test]
fn input_tcp_memory_budget_refuses_beyond_it() {
    let port = free_port();
    // Each connection reserves 2 x 200kb + 128kb: one fits in 1mb, two do not.
    let child = tcp_input(
        port,
        &[
            "--copy-buffer-size",
            "200kb",
            "--input-tcp-max-memory",
            "1mb",
        ],
    );
    let mut first = connect(port);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = connect(port);
    assert!(closed_within(&mut second, Duration::from_secs(2)));
    assert!(!closed_within(&mut first, Duration::from_millis(300)));
    drop(first);
    let err = stop(child);
    assert_eq!(
        summary_counter(&err, "input-tcp", "memory budget"),
        1,
        "{err}"
    );
}

#[test]
fn input_tcp_garbage_records_log_a_bounded_number_of_lines() {
    let port = free_port();
    let child = tcp_input(port, &[]);
    let mut stream = connect(port);
    let garbage = [b"not a header\npayload".as_slice(), SEPARATOR].concat();
    let all = garbage.repeat(20_000);
    stream.write_all(&all).unwrap();
    drop(stream);
    std::thread::sleep(Duration::from_millis(500));
    let err = stop(child);
    assert_eq!(
        summary_counter(&err, "input-tcp", "malformed"),
        20_000,
        "{err}"
    );
    let lines = err.lines().filter(|l| l.contains("input-tcp:")).count();
    assert!(lines <= 5, "{lines} warning lines:\n{err}");
    assert!(err.contains("more like this"), "{err}");
}

/// A record line as output-tcp sends it.
fn record(i: usize) -> Record {
    Record::request(
        &format!("{:024x}", i + 1),
        1_000 + i as i64,
        "GET / HTTP/1.1\r\n\r\n",
    )
}

#[test]
fn input_tcp_token_from_output_tcp_right_and_wrong() {
    let port = free_port();
    let dir = tempdir();
    let (input, out) = (dir.path().join("in.gor"), dir.path().join("out.gor"));
    write_gor(&input, &(0..20).map(record).collect::<Vec<_>>());
    let address = format!("127.0.0.1:{port}");
    let child = command()
        .args(["--input-tcp", &address, "--output-file", path_str(&out)])
        .arg("--output-file-append")
        .env("SHADOWTAP_INPUT_TCP_AUTH_TOKEN", "sekrit-77")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(10));
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "sekrit-77\n").unwrap();
    let sender = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-tcp",
        &address,
        "--output-tcp-workers",
        "1",
        "--output-tcp-auth-token-file",
        path_str(&token_file),
    ]);
    assert_success(&sender);
    let mut wrong = connect(port);
    let mut forged = b"AUTH sekrit-78\n".to_vec();
    forged.extend_from_slice(&encode(&[record(99)]));
    wrong.write_all(&forged).unwrap();
    assert!(closed_within(&mut wrong, Duration::from_secs(2)));
    let mut none = connect(port);
    none.write_all(&encode(&[record(98)])).unwrap();
    assert!(closed_within(&mut none, Duration::from_secs(2)));
    std::thread::sleep(Duration::from_millis(300));
    let err = stop(child);
    assert_eq!(read_gor(&out).len(), 20, "{err}");
    assert_eq!(
        summary_counter(&err, "input-tcp", "unauthorized"),
        2,
        "{err}"
    );
    assert!(!err.contains("sekrit"), "a token leaked: {err}");
    assert!(!stderr(&sender).contains("sekrit"));
}

fn openssl(args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match status {
        Ok(status) => assert!(status.success(), "openssl {args:?}"),
        Err(_) => panic!("openssl must be installed (apt-get install -y openssl)"),
    }
}

/// A CA, a server certificate for localhost and a client certificate signed by the CA.
fn certificates(dir: &Path) {
    let p = |name: &str| dir.join(name).to_str().unwrap().to_string();
    let subj = |cn: &str| format!("/CN={cn}");
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &subj("test ca"),
        "-keyout",
        &p("ca.key"),
        "-out",
        &p("ca.pem"),
    ]);
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        &subj("localhost"),
        "-keyout",
        &p("server.key"),
        "-out",
        &p("server.pem"),
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        &subj("client"),
        "-keyout",
        &p("client.key"),
        "-out",
        &p("client.csr"),
    ]);
    std::fs::write(
        dir.join("client.ext"),
        "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
    )
    .unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        &p("client.csr"),
        "-CA",
        &p("ca.pem"),
        "-CAkey",
        &p("ca.key"),
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        &p("client.ext"),
        "-out",
        &p("client.pem"),
    ]);
}

#[test]
fn input_tcp_requires_a_client_certificate_signed_by_its_ca() {
    let dir = tempdir();
    certificates(dir.path());
    let p = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
    let (input, out) = (dir.path().join("in.gor"), dir.path().join("out.gor"));
    write_gor(&input, &(0..10).map(record).collect::<Vec<_>>());
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let child = spawn(&[
        "--input-tcp",
        &address,
        "--input-tcp-secure",
        "--input-tcp-certificate",
        &p("server.pem"),
        "--input-tcp-certificate-key",
        &p("server.key"),
        "--input-tcp-tls-client-ca",
        &p("ca.pem"),
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ]);
    wait_for_port(port, Duration::from_secs(10));
    let sender = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-tcp",
        &address,
        "--output-tcp-workers",
        "1",
        "--output-tcp-skip-verify",
        "--output-tcp-tls-cert",
        &p("client.pem"),
        "--output-tcp-tls-key",
        &p("client.key"),
    ]);
    assert_success(&sender);
    // Without a certificate: refused in the handshake.
    let anonymous = Command::new("openssl")
        .args(["s_client", "-connect", &address, "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let mut anonymous = anonymous.expect("openssl must be installed (apt-get install -y openssl)");
    let mut stdin = anonymous.stdin.take().unwrap();
    let _ = stdin.write_all(&encode(&[record(50)]));
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(10);
    while anonymous.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = anonymous.kill();
    let _ = anonymous.wait();
    std::thread::sleep(Duration::from_millis(300));
    let err = stop(child);
    assert_eq!(read_gor(&out).len(), 10, "{err}");
    assert_eq!(
        summary_counter(&err, "input-tcp", "unauthorized"),
        1,
        "{err}"
    );
}

#[test]
fn metrics_answers_while_a_slowloris_client_holds_a_connection() {
    let port = free_port();
    let http_port = free_port();
    let child = spawn(&[
        "--input-http",
        &format!("127.0.0.1:{http_port}"),
        "--output-null",
        "--metrics",
        &format!("127.0.0.1:{port}"),
    ]);
    wait_for_port(http_port, Duration::from_secs(10));
    wait_for_port(port, Duration::from_secs(10));
    let mut slow = connect(port);
    let trickle = std::thread::spawn(move || {
        for byte in b"GET /metrics HTTP/1.1\r\n" {
            if slow.write_all(&[*byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let started = Instant::now();
    let mut scrape = connect(port);
    scrape
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let text = read_all(&mut scrape);
    let took = started.elapsed();
    trickle.join().unwrap();
    stop(child);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("shadowtap_messages_in_total"), "{text}");
    assert!(took < Duration::from_secs(1), "the scrape took {took:?}");
}

#[test]
fn passwords_in_urls_never_reach_stderr() {
    let dead = free_port();
    let runs = [
        vec![
            "--input-dummy".to_string(),
            "x".into(),
            "--output-es".into(),
            "ftp://elastic:pa55-Word@127.0.0.1:9200/idx".into(),
        ],
        vec![
            "--input-dummy".into(),
            "x".into(),
            "--output-http".into(),
            format!("http://replayer:pa55-Word@127.0.0.1:{dead}/"),
        ],
        vec![
            "--input-dummy".into(),
            "x".into(),
            "--exit-after".into(),
            "300ms".into(),
            "--output-es".into(),
            format!("http://elastic:pa55-Word@127.0.0.1:{dead}/idx"),
            "--output-es-retries".into(),
            "0".into(),
        ],
    ];
    for args in runs {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let output = run(&args);
        let err = stderr(&output);
        assert!(
            !err.contains("pa55-Word"),
            "{args:?} leaked the password:\n{err}"
        );
    }
    let output = run(&[
        "--input-dummy",
        "x",
        "--output-http",
        &format!("http://replayer:pa55-Word@127.0.0.1:{dead}/"),
    ]);
    assert!(
        stderr(&output).contains("replayer:***@"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn secrets_come_from_files_and_sasl_without_tls_warns() {
    let dir = tempdir();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "kafka-pa55\n").unwrap();
    let dead = free_port();
    let mut child = command()
        .args(["--input-dummy", "x", "--output-kafka-host"])
        .arg(format!("127.0.0.1:{dead}"))
        .args(["--output-kafka-topic", "t", "--output-kafka-use-sasl"])
        .args(["--output-kafka-username", "u", "--kafka-sasl-password-file"])
        .arg(&password)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut seen = String::new();
    let mut warned = false;
    while Instant::now() < deadline && !warned {
        let Some(Ok(line)) = lines.next() else { break };
        warned = line.contains("SASL/PLAIN without TLS: the password travels in the clear");
        seen.push_str(&line);
        seen.push('\n');
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(warned, "{seen}");
    assert!(!seen.contains("kafka-pa55"), "{seen}");
    // A token file that cannot be read is named; its content never is.
    let output = run(&[
        "--input-tcp",
        "127.0.0.1:0",
        "--output-null",
        "--input-tcp-auth-token-file",
        "/nonexistent/token",
    ]);
    assert_eq!(output.status.code(), Some(2), "a usage error");
    assert!(
        stderr(&output).contains("/nonexistent/token"),
        "{}",
        stderr(&output)
    );
}
