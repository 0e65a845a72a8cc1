//! `output-kafka` and `input-kafka` against a real Kafka-protocol broker, `tansu` (in-memory
//! storage, started on a free loopback port per test), with `kafka-python` (a pure-Python
//! client, independent of librdkafka) on the other side.
//!
//! tansu's memory storage does not survive a restart, so the "broker down mid-stream loses
//! nothing" check runs against librdkafka's mock cluster in output-kafka's unit tests.

use crate::common::*;
use crate::nginx::{free_port, wait_for_port};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A tansu broker on loopback, stopped on drop.
struct Tansu {
    child: Child,
    port: u16,
    binary: PathBuf,
}

fn tansu_binary() -> Option<PathBuf> {
    let candidates = [
        std::env::var_os("TANSU").map(PathBuf::from),
        std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo/bin/tansu")),
        Some(PathBuf::from("/usr/local/bin/tansu")),
    ];
    if let Some(found) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        return Some(found);
    }
    if Command::new("tansu").arg("--version").output().is_ok() {
        return Some(PathBuf::from("tansu"));
    }
    prerequisite_missing(
        "the Kafka tests need the tansu broker",
        "cargo install tansu --locked --features dynostore, or set TANSU=/path/to/tansu",
    );
    None
}

impl Tansu {
    /// A broker on loopback, or `None` (after `prerequisite_missing`) without tansu.
    fn start() -> Option<Tansu> {
        let binary = tansu_binary()?;
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(&binary)
            .args(["broker", "--storage-engine", "memory://tansu/"])
            .args(["--listener-url", &url, "--advertised-listener-url", &url])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        wait_for_port(port, Duration::from_secs(20));
        Some(Tansu {
            child,
            port,
            binary,
        })
    }

    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    fn create_topic(&self, topic: &str, partitions: u32) {
        let status = Command::new(&self.binary)
            .args([
                "topic",
                "create",
                topic,
                "--partitions",
                &partitions.to_string(),
            ])
            .args(["--broker", &format!("tcp://127.0.0.1:{}", self.port)])
            .stdout(Stdio::null())
            .status()
            .expect("tansu topic create");
        assert!(status.success(), "creating topic {topic}");
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The kafka-python helper: `consume BROKER TOPIC N` prints one JSON record per line (hex
/// key and value, partition); `produce BROKER TOPIC FILE` sends one record per line of FILE
/// (`hexkey hexvalue`).
const CLIENT: &str = r#"
import json, sys
try:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
except ImportError:
    sys.exit("kafka-python is missing: pip install kafka-python")
cmd, broker, topic = sys.argv[1:4]
if cmd == "consume":
    want = int(sys.argv[4])
    c = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, consumer_timeout_ms=8000)
    c.assign([TopicPartition(topic, p) for p in sorted(c.partitions_for_topic(topic))])
    c.seek_to_beginning()
    n = 0
    for m in c:
        print(json.dumps({"p": m.partition, "k": (m.key or b"").hex(), "v": m.value.hex()}))
        n += 1
        if n >= want + 10:
            break
else:
    p = KafkaProducer(bootstrap_servers=broker, acks="all")
    for line in open(sys.argv[4]):
        key, value = line.split()
        p.send(topic, key=bytes.fromhex(key), value=bytes.fromhex(value))
    p.flush(30)
"#;

fn python_client(dir: &Path, args: &[&str]) -> String {
    let script = dir.join("kafka_client.py");
    std::fs::write(&script, CLIENT).unwrap();
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        output.status.success(),
        "kafka-python client {args:?} failed: {}",
        stderr(&output)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// (partition, key, value) of every record of `topic`, read with kafka-python.
fn consume(dir: &Path, broker: &Tansu, topic: &str, want: usize) -> Vec<(u64, Vec<u8>, Vec<u8>)> {
    let text = python_client(
        dir,
        &["consume", &broker.bootstrap(), topic, &want.to_string()],
    );
    text.lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            (
                v["p"].as_u64().unwrap(),
                unhex(v["k"].as_str().unwrap()),
                unhex(v["v"].as_str().unwrap()),
            )
        })
        .collect()
}

fn produce(dir: &Path, broker: &Tansu, topic: &str, records: &[Record]) {
    let lines: String = records
        .iter()
        .map(|r| {
            format!(
                "{} {}{}\n",
                hex(r.id().as_bytes()),
                hex(&r.meta),
                hex(&r.payload)
            )
        })
        .collect();
    let file = dir.join("produce.txt");
    std::fs::write(&file, lines).unwrap();
    python_client(
        dir,
        &["produce", &broker.bootstrap(), topic, path_str(&file)],
    );
}

fn raw(record: &Record) -> Vec<u8> {
    [record.meta.clone(), record.payload.clone()].concat()
}

#[test]
fn kafka_output_raw_is_read_back_byte_for_byte_by_kafka_python() {
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("raw", 3);
    let dir = tempdir();
    let gor = dir.path().join("in.gor");
    let records = traffic(100, 1_700_000_000_000_000_000);
    write_gor(&gor, &records);
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&gor)),
        "--output-kafka",
        &format!("{}/raw", broker.bootstrap()),
    ]);
    assert_success(&output);
    assert_eq!(
        summary_counter(&stderr(&output), "output-kafka", "out"),
        200,
        "{}",
        stderr(&output)
    );
    let got = consume(dir.path(), &broker, "raw", 200);
    assert_eq!(got.len(), 200);
    let mut values: Vec<Vec<u8>> = got.iter().map(|(_, _, v)| v.clone()).collect();
    let mut want: Vec<Vec<u8>> = records.iter().map(raw).collect();
    values.sort();
    want.sort();
    assert_eq!(values, want);
    // Keyed by id: a request and its response share a partition, in order.
    for (partition, key, value) in &got {
        let id = String::from_utf8(key.clone()).unwrap();
        assert!(String::from_utf8_lossy(value).contains(&id));
        let same: Vec<_> = got.iter().filter(|(_, k, _)| k == key).collect();
        assert_eq!(same.len(), 2);
        assert!(same.iter().all(|(p, _, _)| p == partition));
        assert_eq!(same[0].2[0], b'1', "request first");
    }
    let partitions: std::collections::HashSet<u64> = got.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(partitions.len(), 3, "ids spread over the partitions");
}

#[test]
fn kafka_output_json_is_goreplay_kafka_message_json() {
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("json", 1);
    let dir = tempdir();
    let gor = dir.path().join("in.gor");
    write_gor(
        &gor,
        &[
            Record {
                meta: b"1 2 3\n".to_vec(),
                payload: b"GET / HTTP1.1\r\nHeader: 1\r\n\r\n".to_vec(),
            },
            Record::request(
                "a1",
                4,
                "POST /q?a=<b>&c HTTP/1.1\r\nhost: h\r\nX-Multi: 1\r\nx-multi: 2\r\n\r\nbody",
            ),
            Record::response("a1", 5, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        ],
    );
    let output = run(&[
        "--input-file",
        &format!("{}|100000%", path_str(&gor)),
        "--output-kafka-host",
        &broker.bootstrap(),
        "--output-kafka-topic",
        "json",
        "--output-kafka-json-format",
    ]);
    assert_success(&output);
    let values: Vec<String> = consume(dir.path(), &broker, "json", 3)
        .into_iter()
        .map(|(_, _, v)| String::from_utf8(v).unwrap())
        .collect();
    assert_eq!(
        values,
        [
            r#"{"Req_URL":"","Req_Type":"1","Req_ID":"2","Req_Ts":"3","Req_Method":"GET"}"#,
            r#"{"Req_URL":"/q?a=\u003cb\u003e\u0026c","Req_Type":"1","Req_ID":"a1","Req_Ts":"4","Req_Method":"POST","Req_Body":"body","Req_Headers":{"Host":"h","X-Multi":"1, 2"}}"#,
            r#"{"Req_URL":"","Req_Type":"2","Req_ID":"a1","Req_Ts":"5","Req_Method":"HTTP/1.1","Req_Body":"ok","Req_Headers":{"Content-Length":"2"}}"#,
        ]
    );
}

#[test]
fn kafka_input_consumes_what_kafka_python_produced() {
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("in", 3);
    let dir = tempdir();
    let mut records = traffic(50, 1_700_000_000_000_000_000);
    let garbage = Record {
        meta: b"not a header".to_vec(),
        payload: Vec::new(),
    };
    records.push(garbage);
    produce(dir.path(), &broker, "in", &records);
    let output = run(&[
        "--input-kafka",
        &format!("{}/in", broker.bootstrap()),
        "--input-kafka-offset=-2|100000%",
        "--input-kafka-exit-on-eof",
        "--output-stdout",
    ]);
    assert_success(&output);
    let text = stderr(&output);
    assert!(text.contains("skipping malformed message at in/"), "{text}");
    assert_eq!(
        summary_counter(&text, "input-kafka", "malformed"),
        1,
        "{text}"
    );
    let mut got = decode(&output.stdout);
    records.pop();
    assert_eq!(got.len(), 100);
    let key = |r: &Record| (r.id(), r.kind());
    got.sort_by_key(key);
    records.sort_by_key(key);
    assert_eq!(got, records);
}

/// Short group timeouts, so that a member the broker failed to see leave is forgotten within
/// seconds (tansu 0.6 can miss a LeaveGroup when two members leave at once).
const GROUP_TIMEOUTS: [&str; 6] = [
    "--input-kafka-config",
    "session.timeout.ms=6000",
    "--input-kafka-config",
    "max.poll.interval.ms=10000",
    "--input-kafka-config",
    "heartbeat.interval.ms=1000",
];

/// Starts a grouped shadowtap consumer writing to `out`, logging to `log`.
fn group_consumer(broker: &Tansu, out: &Path, log: &Path) -> Child {
    command()
        .args(["--input-kafka", &format!("{}/shared", broker.bootstrap())])
        .args([
            "--input-kafka-group",
            "replayers",
            "--input-kafka-offset=-2|100000%",
        ])
        .args(GROUP_TIMEOUTS)
        .args(["--output-file", path_str(out), "--output-file-append"])
        .args(["--output-file-flush-interval", "100ms"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start shadowtap")
}

fn assignments(log: &Path) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches("partitions assigned")
        .count()
}

fn wait_until(limit: Duration, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn records_in(path: &Path) -> Vec<Record> {
    std::fs::read(path).map(|b| decode(&b)).unwrap_or_default()
}

#[test]
fn kafka_consumer_group_shares_partitions_without_loss_or_duplicates_and_resumes() {
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("shared", 3);
    let dir = tempdir();
    let (out_a, log_a) = (dir.path().join("a.gor"), dir.path().join("a.log"));
    let (out_b, log_b) = (dir.path().join("b.gor"), dir.path().join("b.log"));
    let a = group_consumer(&broker, &out_a, &log_a);
    wait_until(Duration::from_secs(30), "the first assignment", || {
        assignments(&log_a) >= 1
    });
    let b = group_consumer(&broker, &out_b, &log_b);
    wait_until(Duration::from_secs(30), "the rebalance", || {
        assignments(&log_b) >= 1 && assignments(&log_a) >= 2
    });
    let first = traffic(150, 1_700_000_000_000_000_000);
    produce(dir.path(), &broker, "shared", &first);
    wait_until(Duration::from_secs(30), "300 messages", || {
        records_in(&out_a).len() + records_in(&out_b).len() >= 300
    });
    std::thread::sleep(Duration::from_millis(1500)); // a commit interval, and any duplicate
                                                     // One replayer stops: the other takes over its partitions from the committed offsets.
    terminate(&a);
    let a = wait_output(a, Duration::from_secs(30));
    wait_until(Duration::from_secs(30), "the takeover", || {
        assignments(&log_b) >= 2
    });
    terminate(&b);
    let b = wait_output(b, Duration::from_secs(30));
    assert!(a.status.success() && b.status.success());
    let (got_a, got_b) = (records_in(&out_a), records_in(&out_b));
    assert!(
        !got_a.is_empty() && !got_b.is_empty(),
        "both consumers had partitions"
    );
    let mut all: Vec<Record> = got_a.into_iter().chain(got_b).collect();
    let key = |r: &Record| (r.id(), r.kind());
    all.sort_by_key(key);
    let mut want = first.clone();
    want.sort_by_key(key);
    assert_eq!(all.len(), 300, "no duplicates");
    assert_eq!(all, want, "no losses");

    // A restarted replayer resumes after the committed offsets: only the new messages.
    let second = traffic(40, 1_800_000_000_000_000_000)
        .into_iter()
        .map(|mut r| {
            r.meta = String::from_utf8(r.meta)
                .unwrap()
                .replace(" 0000", " 1000")
                .into_bytes();
            r
        })
        .collect::<Vec<_>>();
    produce(dir.path(), &broker, "shared", &second);
    let target = format!("{}/shared", broker.bootstrap());
    let mut args = vec![
        "--input-kafka",
        &target,
        "--input-kafka-group",
        "replayers",
        "--input-kafka-offset=-2|100000%",
        "--input-kafka-exit-on-eof",
        "--output-stdout",
    ];
    args.extend(GROUP_TIMEOUTS);
    let output = run(&args);
    assert_success(&output);
    let mut resumed = decode(&output.stdout);
    resumed.sort_by_key(key);
    let mut want = second;
    want.sort_by_key(key);
    assert_eq!(resumed, want);
}

/// A Kafka JSON record (the space after `{` lets `Record::id` find a key for it).
fn json_record(id: &str, ts: u64) -> Record {
    Record {
        meta: format!(
            r#"{{ "Req_URL":"/k","Req_Type":"1","Req_ID":"{id}","Req_Ts":"{ts}","Req_Method":"GET"}}"#
        )
        .into_bytes(),
        payload: Vec::new(),
    }
}

#[test]
fn kafka_json_ids_that_break_the_header_are_malformed() {
    let Some(broker) = Tansu::start() else {
        return;
    };
    broker.create_topic("ids", 1);
    let dir = tempdir();
    let records = [
        json_record("good1", 1),
        json_record(r"a\nb", 2),
        json_record(r"tab\there", 3),
        json_record("a 5", 4),
        json_record("good2", 5),
    ];
    produce(dir.path(), &broker, "ids", &records);
    let output = run(&[
        "--input-kafka",
        &format!("{}/ids", broker.bootstrap()),
        "--input-kafka-json-format",
        "--input-kafka-offset=-2|100000%",
        "--input-kafka-exit-on-eof",
        "--output-stdout",
    ]);
    assert_success(&output);
    let text = stderr(&output);
    assert_eq!(
        summary_counter(&text, "input-kafka", "malformed"),
        3,
        "{text}"
    );
    assert!(text.contains("is invalid"), "{text}");
    let got = decode(&output.stdout);
    let ids: Vec<String> = got.iter().map(Record::id).collect();
    assert_eq!(ids, ["good1", "good2"], "{text}");
}
