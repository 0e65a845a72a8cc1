//! Unit tests against librdkafka's in-process mock cluster; the real-broker tests are in
//! tests/it/kafka.rs.

use super::*;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use shadowtap_api::testkit;

fn produce(bootstrap: &str, topic: &str, values: &[Vec<u8>]) {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .unwrap();
    for (i, value) in values.iter().enumerate() {
        let key = format!("k{i}");
        producer
            .send(BaseRecord::to(topic).key(&key).payload(value))
            .unwrap();
    }
    producer.flush(Duration::from_secs(10)).unwrap();
}

fn raw(i: usize, ts: i64) -> Vec<u8> {
    format!("1 {i:024x} {ts} 0\nGET /{i} HTTP/1.1\r\nHost: h\r\n\r\n").into_bytes()
}

fn run(flags: &[&str]) -> (Vec<Message>, shadowtap_api::ledger::Snapshot) {
    let mut specs = testkit::build_inputs("input-kafka", flags).expect("build");
    assert_eq!(specs.len(), 1);
    let spec = specs.pop().unwrap();
    assert_eq!(spec.backpressure, shadowtap_api::Backpressure::Wait);
    let (messages, snapshot, result) = testkit::run_input(spec);
    result.unwrap();
    (messages, snapshot)
}

#[test]
fn conformance() {
    testkit::check_conformance("input-kafka", &["kafka-"]);
}

#[test]
fn offsets_parse() {
    assert_eq!(parse_offset("-1"), Ok((StartOffset::Newest, None)));
    assert_eq!(
        parse_offset("-2|200%"),
        Ok((StartOffset::Oldest, Some(Limit::Percent(200.0))))
    );
    assert_eq!(parse_offset("42"), Ok((StartOffset::At(42), None)));
    assert!(parse_offset("-3").is_err());
    assert!(parse_offset("x").is_err());
}

#[test]
fn flags_are_checked() {
    let err = |flags: &[&str]| testkit::build_error("input-kafka", flags);
    assert!(err(&["--input-kafka-topic", "t"]).contains("--input-kafka-host"));
    assert!(err(&["--input-kafka", "b:1/t", "--input-kafka-offset", "-5"]).contains("offset"));
    assert!(err(&[
        "--input-kafka",
        "b:1/t",
        "--input-kafka-group",
        "g",
        "--input-kafka-offset",
        "7"
    ])
    .contains("--input-kafka-group"));
    assert!(err(&[
        "--input-kafka",
        "b:1/t",
        "--input-kafka-config",
        "bogus.key=1"
    ])
    .contains("--input-kafka-config"));
    let specs = testkit::build_inputs(
        "input-kafka",
        &[
            "--input-kafka-host",
            "b:1",
            "--input-kafka-topic",
            "t",
            "--input-kafka-offset=-2|10",
        ],
    )
    .unwrap();
    assert_eq!(specs[0].label, "input-kafka[b:1/t]");
    assert_eq!(specs[0].limit, Some(Limit::PerSecond(10)));
}

#[test]
fn reads_raw_messages_counts_malformed_ones_and_paces() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("in", 2, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let base = 1_700_000_000_000_000_000i64;
    let mut values: Vec<Vec<u8>> = (0..10)
        .map(|i| raw(i, base + i as i64 * 40_000_000))
        .collect();
    values.push(b"no header line".to_vec());
    values.push(Vec::new());
    produce(&bootstrap, "in", &values);
    let started = Instant::now();
    let (messages, snapshot) = run(&[
        "--input-kafka",
        &format!("{bootstrap}/in"),
        "--input-kafka-offset",
        "-2|200%",
        "--input-kafka-exit-on-eof",
    ]);
    // 9 gaps of 40 ms at 2x speed: at least 180 ms overall.
    assert!(started.elapsed() >= Duration::from_millis(170));
    assert_eq!(messages.len(), 10);
    assert_eq!(snapshot.drops, vec![(Reason::Malformed, 2)]);
    let mut got: Vec<Vec<u8>> = messages.iter().map(Message::to_raw).collect();
    got.sort();
    values.truncate(10);
    values.sort();
    assert_eq!(got, values);
}

#[test]
fn reads_goreplay_json() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("json", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    produce(
        &bootstrap,
        "json",
        &[br#"{"Req_URL":"/a","Req_Type":"1","Req_ID":"x1","Req_Ts":"5","Req_Method":"GET","Req_Headers":{"Host":"h"}}"#.to_vec()],
    );
    let (messages, _) = run(&[
        "--input-kafka",
        &format!("{bootstrap}/json"),
        "--input-kafka-json-format",
        "--input-kafka-offset=-2|100000%",
        "--input-kafka-exit-on-eof",
    ]);
    assert_eq!(messages.len(), 1);
    assert_eq!(
        messages[0].to_raw(),
        b"1 x1 5\nGET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    );
}

#[test]
fn a_group_resumes_from_its_committed_offsets() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("grp", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let target = format!("{bootstrap}/grp");
    let flags = [
        "--input-kafka",
        &target,
        "--input-kafka-group",
        "replayers",
        "--input-kafka-offset=-2|100000%",
        "--input-kafka-exit-on-eof",
        // The mock coordinator waits a session timeout for departed members.
        "--input-kafka-config",
        "session.timeout.ms=6000",
    ];
    produce(
        &bootstrap,
        "grp",
        &(0..12).map(|i| raw(i, i as i64)).collect::<Vec<_>>(),
    );
    let (first, _) = run(&flags);
    assert_eq!(first.len(), 12);
    produce(
        &bootstrap,
        "grp",
        &(12..17).map(|i| raw(i, i as i64)).collect::<Vec<_>>(),
    );
    let (second, _) = run(&flags);
    let mut ids: Vec<String> = second.iter().map(|m| m.id().to_string()).collect();
    ids.sort();
    let want: Vec<String> = (12..17).map(|i| format!("{i:024x}")).collect();
    assert_eq!(ids, want, "resumed exactly after the committed offsets");
}
