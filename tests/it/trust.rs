//! Trust: a bad id cannot break a worker, a panicking plugin cannot hang the run, and a
//! listener input slowed by a slow output loses nothing (every run's ledger balances: see
//! `common::wait_output`).

use crate::common::*;
use crate::nginx::{free_port, wait_for_port};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An HTTP/1.1 server on loopback that answers every request `200` after `delay`, over
/// keep-alive connections; counts the requests it answered.
struct SlowServer {
    url: String,
    answered: Arc<AtomicUsize>,
}

impl SlowServer {
    fn start(delay: Duration) -> SlowServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let answered = Arc::new(AtomicUsize::new(0));
        let counter = answered.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let counter = counter.clone();
                std::thread::spawn(move || serve(stream, delay, &counter));
            }
        });
        SlowServer { url, answered }
    }

    fn answered(&self) -> usize {
        self.answered.load(Ordering::SeqCst)
    }
}

/// Answers bodiless requests on one connection until it closes.
fn serve(stream: TcpStream, delay: Duration, answered: &AtomicUsize) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) if line == "\r\n" => {
                std::thread::sleep(delay);
                let answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
                if writer.write_all(answer).is_err() {
                    return;
                }
                answered.fetch_add(1, Ordering::SeqCst);
            }
            Ok(_) => {}
        }
    }
}

/// `count` requests whose ids hold a TAB, then `good` well-formed ones.
fn tab_ids_then_good(path: &std::path::Path, count: usize, good: usize) {
    let get = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut records: Vec<Record> = (0..count)
        .map(|i| Record {
            meta: format!("1 bad\t{i} {} 0\n", 1_000 + i).into_bytes(),
            payload: get.as_bytes().to_vec(),
        })
        .collect();
    records.extend((0..good).map(|i| Record::request(&format!("good{i}"), 5_000 + i as i64, get)));
    write_gor(path, &records);
}

#[test]
fn tab_ids_are_malformed_drops_and_the_replay_ends() {
    let server = SlowServer::start(Duration::ZERO);
    let dir = tempdir();
    let input = dir.path().join("tabs.gor");
    tab_ids_then_good(&input, 20, 5);
    let started = Instant::now();
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--output-http",
        &server.url,
        "--output-http-track-response",
        "--output-null",
    ]);
    let text = stderr(&output);
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    assert_success(&output);
    let label = format!("input-file[{}]", path_str(&input));
    assert_eq!(summary_counter(&text, &label, "malformed"), 20, "{text}");
    assert!(text.contains("is invalid"), "the record is named: {text}");
    assert_eq!(server.answered(), 5, "{text}");
    let http = format!("output-http[{}]", server.url);
    assert_eq!(summary_counter(&text, &http, "out"), 5, "{text}");
    assert_eq!(summary_counter(&text, "output-null", "out"), 10, "{text}");
    assert!(
        !text.contains("unsent at shutdown"),
        "all delivered: {text}"
    );
}

#[test]
fn a_panicking_output_worker_ends_the_run_with_status_1() {
    let server = SlowServer::start(Duration::ZERO);
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_requests(&input, &plain_gets(20), 1_000);
    let worker = format!("output-http[{}]-worker", server.url);
    let child = command()
        .args([
            "--input-file",
            path_str(&input),
            "--output-http",
            &server.url,
        ])
        .env("SHADOWTAP_TEST_PANIC", &worker)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, Duration::from_secs(20));
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let http = format!("output-http[{}]", server.url);
    assert_eq!(
        summary_counter(&text, &http, "plugin panicked"),
        20,
        "{text}"
    );
    assert!(
        !text.contains("thread '"),
        "no default panic message: {text}"
    );
    let logged = text
        .lines()
        .filter(|l| l.contains(&format!("{worker}: panicked")))
        .count();
    assert_eq!(logged, 20, "one line per panic, naming the plugin: {text}");
}

#[test]
fn a_panicking_input_ends_the_run_with_status_1() {
    let child = command()
        .args(["--input-dummy", "x", "--output-null"])
        .env("SHADOWTAP_TEST_PANIC", "input-dummy")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let output = wait_output(child, Duration::from_secs(20));
    let text = stderr(&output);
    assert_eq!(output.status.code(), Some(1), "{text}");
    let logged: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("input-dummy[x]: panicked"))
        .collect();
    assert_eq!(logged.len(), 1, "{text}");
    assert!(text.contains("error: input-dummy[x] panicked"), "{text}");
}

#[test]
fn input_tcp_into_a_slow_target_loses_nothing() {
    let server = SlowServer::start(Duration::from_millis(5));
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let count = 300;
    write_requests(&input, &plain_gets(count), 1_000);
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let receiver = command()
        .args([
            "--input-tcp",
            &address,
            "--output-http",
            &server.url,
            "--output-http-workers",
            "1",
            "--output-http-queue-len",
            "2",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(10));
    let sender = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&input)),
        "--output-tcp",
        &address,
    ]);
    assert_success(&sender);
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.answered() < count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    terminate(&receiver);
    let output = wait_output(receiver, Duration::from_secs(40));
    let text = stderr(&output);
    assert_success(&output);
    assert_eq!(server.answered(), count, "{text}");
    let http = format!("output-http[{}]", server.url);
    assert_eq!(summary_counter(&text, &http, "out"), count as u64, "{text}");
    assert!(!text.contains("dropped"), "nothing dropped: {text}");
}

#[test]
fn an_input_tcp_peer_sending_a_tab_id_gets_a_malformed_drop() {
    let dir = tempdir();
    let out = dir.path().join("out.gor");
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let receiver = command()
        .args(["--input-tcp", &address, "--output-file", path_str(&out)])
        .arg("--output-file-append")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_port(port, Duration::from_secs(10));
    let get = "GET / HTTP/1.1\r\n\r\n";
    let records = [
        Record::request("good1", 1, get),
        Record {
            meta: b"1 bad\tid 2 0\n".to_vec(),
            payload: get.as_bytes().to_vec(),
        },
        Record::request("good2", 3, get),
    ];
    let mut peer = TcpStream::connect(&address).unwrap();
    peer.write_all(&encode(&records)).unwrap();
    drop(peer);
    std::thread::sleep(Duration::from_millis(500));
    terminate(&receiver);
    let output = wait_output(receiver, Duration::from_secs(20));
    let text = stderr(&output);
    assert_success(&output);
    let label = format!("input-tcp[{address}]");
    assert_eq!(summary_counter(&text, &label, "malformed"), 1, "{text}");
    let ids: Vec<String> = read_gor(&out).iter().map(Record::id).collect();
    assert_eq!(ids, ["good1", "good2"], "{text}");
}

#[test]
fn middleware_output_with_a_tab_id_is_a_malformed_drop() {
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    let out = dir.path().join("out.gor");
    write_requests(&input, &plain_gets(3), 1_000);
    let script = dir.path().join("tab_ids.py");
    std::fs::write(
        &script,
        "import sys, binascii\n\
         for n, line in enumerate(sys.stdin):\n    \
             raw = binascii.unhexlify(line.strip())\n    \
             if n == 1:\n        \
                 head, rest = raw.split(b'\\n', 1)\n        \
                 f = head.split(b' ')\n        \
                 f[1] = b'x\\ty'\n        \
                 raw = b' '.join(f) + b'\\n' + rest\n    \
             sys.stdout.write(binascii.hexlify(raw).decode() + '\\n')\n    \
             sys.stdout.flush()\n",
    )
    .unwrap();
    let middleware = format!("python3 {}", path_str(&script));
    let output = run(&[
        "--input-file",
        path_str(&input),
        "--middleware",
        &middleware,
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ]);
    let text = stderr(&output);
    assert_success(&output);
    assert_eq!(read_gor(&out).len(), 2, "{text}");
    assert_eq!(
        summary_counter(&text, "middleware[", "malformed"),
        1,
        "{text}"
    );
    assert!(text.contains("output line 2"), "the line is named: {text}");
}

#[test]
fn the_first_signal_ends_a_run_stuck_on_a_silent_target_within_the_drain_deadline() {
    let server = SlowServer::start(Duration::from_secs(3600));
    let dir = tempdir();
    let input = dir.path().join("in.gor");
    write_requests(&input, &plain_gets(3), 1_000);
    let child = command()
        .args([
            "--input-file",
            path_str(&input),
            "--output-http",
            &server.url,
        ])
        .args(["--output-http-timeout", "1h"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let signalled = Instant::now();
    terminate(&child);
    let output = wait_output(child, Duration::from_secs(45));
    let text = stderr(&output);
    assert!(signalled.elapsed() < Duration::from_secs(40), "{text}");
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert!(text.contains("still draining"), "{text}");
    let http = format!("output-http[{}]", server.url);
    assert_eq!(
        summary_counter(&text, &http, "unsent at shutdown"),
        3,
        "{text}"
    );
}
