//! Unit tests against librdkafka's in-process mock cluster (fault injection a real broker
//! cannot easily give); the real-broker tests are in tests/it/kafka.rs.

use super::*;
use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::Message as _;
use shadowtap_api::testkit;
use shadowtap_api::{Kind, Meta};

fn message(i: usize, kind: Kind) -> Message {
    let id = format!("{:024x}", i / 2 + 1);
    let payload = match kind {
        Kind::Request => format!("GET /item/{i} HTTP/1.1\r\nHost: shop\r\n\r\n"),
        _ => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_string(),
    };
    Message::new(
        Meta::new(kind, &id, 1_700_000_000_000_000_000 + i as i64, 7).unwrap(),
        payload,
    )
}

fn traffic(n: usize) -> Vec<Message> {
    (0..n)
        .map(|i| {
            message(
                i,
                if i % 2 == 0 {
                    Kind::Request
                } else {
                    Kind::Response
                },
            )
        })
        .collect()
}

/// Reads every record of `topic` (all partitions) as (key, value).
fn consume_all(bootstrap: &str, topic: &str, expected: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "verify")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut out = Vec::new();
    // Until `expected` records are in (or 20 s pass), then 500 ms more: nothing else arrives.
    let mut deadline = Instant::now() + Duration::from_secs(20);
    let mut complete = false;
    while Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            out.push((
                m.key().unwrap_or_default().to_vec(),
                m.payload().unwrap_or_default().to_vec(),
            ));
        }
        if !complete && out.len() >= expected {
            complete = true;
            deadline = Instant::now() + Duration::from_millis(500);
        }
    }
    out
}

fn build_one(flags: &[&str]) -> OutputSpec {
    let mut specs = testkit::build_outputs("output-kafka", flags).expect("build");
    assert_eq!(specs.len(), 1);
    specs.pop().unwrap()
}

#[test]
fn conformance() {
    testkit::check_conformance("output-kafka", &["kafka-"]);
}

#[test]
fn flags_are_checked() {
    let err = |flags: &[&str]| testkit::build_error("output-kafka", flags);
    assert!(err(&["--output-kafka", "b:9092"]).contains("BROKERS/TOPIC"));
    assert!(err(&["--output-kafka-host", "b:9092"]).contains("--output-kafka-topic"));
    assert!(err(&["--output-kafka", "b:1/t", "--output-kafka-config", "x"]).contains("key=value"));
    assert!(err(&[
        "--output-kafka",
        "b:1/t",
        "--output-kafka-config",
        "no.such.property=1"
    ])
    .contains("--output-kafka-config"));
    assert!(err(&[
        "--output-kafka",
        "b:1/t",
        "--output-kafka-json-format",
        "--output-kafka-format",
        "record"
    ])
    .contains("conflicts"));
    assert!(err(&[
        "--output-kafka",
        "b:1/t",
        "--kafka-tls-client-cert",
        "/x.pem"
    ])
    .contains("--kafka-tls-client-key"));
    let specs = testkit::build_outputs(
        "output-kafka",
        &[
            "--output-kafka",
            "a:1,b:2/one|10",
            "--output-kafka-host",
            "c:3",
            "--output-kafka-topic",
            "two",
        ],
    )
    .unwrap();
    let labels: Vec<&str> = specs.iter().map(|s| s.label.as_str()).collect();
    assert_eq!(
        labels,
        ["output-kafka[a:1,b:2/one]", "output-kafka[c:3/two]"]
    );
    assert_eq!(specs[0].limit, Some(shadowtap_api::Limit::PerSecond(10)));
}

#[test]
fn raw_messages_are_acknowledged_and_keyed_by_id() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("raw", 3, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let spec = build_one(&["--output-kafka", &format!("{bootstrap}/raw")]);
    let messages = traffic(40);
    let (snapshot, result) = testkit::run_output(spec, messages.clone());
    result.unwrap();
    assert_eq!(snapshot.passed, 40, "{snapshot:?}");
    assert_eq!(snapshot.dropped(), 0);
    let mut got = consume_all(&bootstrap, "raw", 40);
    assert_eq!(got.len(), 40);
    let mut want: Vec<(Vec<u8>, Vec<u8>)> = messages
        .iter()
        .map(|m| (m.meta.id_bytes().to_vec(), m.to_raw()))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn json_and_record_formats() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("fmt", 1, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let target = format!("{bootstrap}/fmt");
    let msg = Message::new(
        Meta::parse(Bytes::from_static(b"1 2 3\n")).unwrap(),
        "GET / HTTP1.1\r\nHeader: 1\r\n\r\n",
    );
    let spec = build_one(&["--output-kafka", &target, "--output-kafka-json-format"]);
    let (snapshot, _) = testkit::run_output(spec, vec![msg.clone()]);
    assert_eq!(snapshot.passed, 1);
    let spec = build_one(&["--output-kafka", &target, "--output-kafka-format", "record"]);
    let (snapshot, _) = testkit::run_output(spec, vec![message(0, Kind::Request)]);
    assert_eq!(snapshot.passed, 1);
    let got = consume_all(&bootstrap, "fmt", 2);
    assert_eq!(got.len(), 2);
    assert_eq!(
        got[0].1,
        br#"{"Req_URL":"","Req_Type":"1","Req_ID":"2","Req_Ts":"3","Req_Method":"GET"}"#
    );
    let record = String::from_utf8(got[1].1.clone()).unwrap();
    assert!(record.contains(r#""uri":"/item/0""#), "{record}");
    assert!(record.contains(r#""kind":"request""#), "{record}");
}

#[test]
fn a_broker_outage_mid_stream_loses_nothing_and_duplicates_nothing() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("outage", 2, 1).unwrap();
    let bootstrap = cluster.bootstrap_servers();
    let spec = build_one(&[
        "--output-kafka",
        &format!("{bootstrap}/outage"),
        "--output-kafka-linger",
        "1ms",
    ]);
    // Produce while the only broker is down, bring it back up, then finish.
    cluster.broker_down(1).unwrap();
    let messages = traffic(200);
    let runner = std::thread::spawn(move || testkit::run_output(spec, messages));
    std::thread::sleep(Duration::from_millis(1500));
    cluster.broker_up(1).unwrap();
    let (snapshot, result) = runner.join().unwrap();
    result.unwrap();
    assert_eq!(snapshot.passed, 200, "{snapshot:?}");
    assert_eq!(snapshot.dropped(), 0, "{snapshot:?}");
    let got = consume_all(&bootstrap, "outage", 200);
    assert_eq!(got.len(), 200, "duplicates or losses");
    let mut unique: Vec<_> = got.iter().map(|(_, v)| v.clone()).collect();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 200);
}

#[test]
fn transient_broker_errors_are_retried() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("retry", 1, 1).unwrap();
    use rdkafka::types::RDKafkaApiKey;
    use rdkafka::types::RDKafkaRespErr;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION,
        ],
    );
    let bootstrap = cluster.bootstrap_servers();
    let spec = build_one(&["--output-kafka", &format!("{bootstrap}/retry")]);
    let (snapshot, result) = testkit::run_output(spec, traffic(20));
    result.unwrap();
    assert_eq!(snapshot.passed, 20, "{snapshot:?}");
    assert_eq!(consume_all(&bootstrap, "retry", 20).len(), 20);
}

#[test]
fn permanent_errors_and_flush_timeouts_are_counted_with_the_error() {
    let cluster = MockCluster::new(1).unwrap();
    cluster.create_topic("denied", 1, 1).unwrap();
    use rdkafka::types::RDKafkaApiKey;
    use rdkafka::types::RDKafkaRespErr;
    cluster.request_errors(
        RDKafkaApiKey::Produce,
        &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED; 50],
    );
    let bootstrap = cluster.bootstrap_servers();
    let spec = build_one(&["--output-kafka", &format!("{bootstrap}/denied")]);
    let (snapshot, _) = testkit::run_output(spec, traffic(5));
    assert_eq!(snapshot.passed, 0, "{snapshot:?}");
    assert_eq!(
        snapshot.drops,
        vec![(Reason::OutputError, 5)],
        "{snapshot:?}"
    );
    assert!(snapshot.errors > 0);
    assert!(
        snapshot
            .extra
            .iter()
            .any(|(name, n)| name.starts_with("error: ") && *n == 5),
        "{snapshot:?}"
    );

    // The broker never comes back: the flush timeout bounds shutdown and counts the rest.
    cluster.create_topic("gone", 1, 1).unwrap();
    cluster.broker_down(1).unwrap();
    let spec = build_one(&[
        "--output-kafka",
        &format!("{bootstrap}/gone"),
        "--output-kafka-flush-timeout",
        "500ms",
    ]);
    let started = Instant::now();
    let (snapshot, _) = testkit::run_output(spec, traffic(7));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(snapshot.passed, 0);
    assert_eq!(
        snapshot.drops,
        vec![(Reason::OutputError, 7)],
        "{snapshot:?}"
    );
}
