//! `input-kafka`: consumes messages from a Kafka topic (librdkafka, bundled 2.12.1), alone or
//! in a consumer group whose committed offsets let several shadowtap replayers share a topic
//! and a restart resume where it stopped.
//!
//! Flags: `--input-kafka BROKERS/TOPIC` (repeatable), GoReplay's `--input-kafka-host BROKERS` +
//! `--input-kafka-topic TOPIC`, `--input-kafka-json-format` (values are GoReplay's KafkaMessage
//! JSON; otherwise raw header line + payload), `--input-kafka-offset OFFSET` (`-1` newest, the
//! default; `-2` oldest; `N` on every partition; a `|200%` suffix replays at twice the original
//! pace, e.g. `-2|200%`; pacing is skipped for `-1` as in GoReplay), `--input-kafka-group GROUP`
//! (consumer group; the offset then only applies where the group has no committed offset),
//! `--input-kafka-commit-interval DURATION` (default 1s), `--input-kafka-exit-on-eof` (end the
//! input once every assigned partition is read to its end), SASL `--input-kafka-use-sasl`,
//! `--input-kafka-mechanism`, `--input-kafka-username`, `--input-kafka-password`, TLS
//! `--kafka-tls-*` (shared with output-kafka), `--input-kafka-config key=value` (any librdkafka
//! consumer property, applied last).
//!
//! Delivery: at least once. An offset is stored only after the message was handed to the
//! pipeline (`emit` returned, so it sits in the engine's bounded queue, which is drained at
//! shutdown), and stored offsets are committed every commit interval, before partitions are
//! revoked in a rebalance, and at shutdown. The input is replayable: when the pipeline is full it
//! waits instead of dropping. Values that are not messages are counted as `malformed` and
//! skipped with a warning naming topic, partition and offset.
//!
//! Example: `shadowtap --input-kafka 10.0.0.1:9092/traffic --input-kafka-group replayers
//! --output-http http://staging:8080`.
#![deny(missing_docs)]

use bytes::Bytes;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::{ClientConfig, ClientContext, Message as _, Offset, TopicPartitionList};
use shadowtap_api::values::{duration_value, split_limit};
use shadowtap_api::{
    register_input, CoreSettings, Input, InputContext, InputSpec, Limit, Message, Pacer,
    PluginError, Reason, Throttle,
};
use shadowtap_kafka_common::{
    client_config, collect_targets, goreplay_json, log_client_error, parse_properties, usage,
    Security, Target,
};
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

/// Flags of `input-kafka`.
#[derive(clap::Args, Debug)]
pub struct InputKafkaArgs {
    /// Consume messages from Kafka: BROKERS/TOPIC, brokers comma-separated (repeatable)
    #[arg(id = "input-kafka", long = "input-kafka", value_name = "BROKERS/TOPIC")]
    pub input_kafka: Vec<String>,
    /// Kafka brokers, comma-separated (GoReplay's form; needs --input-kafka-topic)
    #[arg(
        id = "input-kafka-host",
        long = "input-kafka-host",
        value_name = "BROKERS"
    )]
    pub input_kafka_host: Option<String>,
    /// Kafka topic, all partitions (GoReplay's form; needs --input-kafka-host)
    #[arg(
        id = "input-kafka-topic",
        long = "input-kafka-topic",
        value_name = "TOPIC"
    )]
    pub input_kafka_topic: Option<String>,
    /// Values are GoReplay's KafkaMessage JSON (otherwise header line + payload)
    #[arg(id = "input-kafka-json-format", long = "input-kafka-json-format")]
    pub input_kafka_json_format: bool,
    /// Start offset: -1 newest, -2 oldest, N; suffix |200% replays at 2x the original pace
    #[arg(
        id = "input-kafka-offset",
        long = "input-kafka-offset",
        default_value = "-1",
        allow_hyphen_values = true,
        value_name = "OFFSET"
    )]
    pub input_kafka_offset: String,
    /// Consumer group: replayers in one group share the partitions; offsets are committed
    #[arg(
        id = "input-kafka-group",
        long = "input-kafka-group",
        value_name = "GROUP"
    )]
    pub input_kafka_group: Option<String>,
    /// How often the offsets of messages handed on are committed (with a group)
    #[arg(id = "input-kafka-commit-interval", long = "input-kafka-commit-interval", value_parser = duration_value, default_value = "1s", value_name = "DURATION")]
    pub input_kafka_commit_interval: Duration,
    /// Stop this input once every assigned partition has been read to its end
    #[arg(id = "input-kafka-exit-on-eof", long = "input-kafka-exit-on-eof")]
    pub input_kafka_exit_on_eof: bool,
    /// Authenticate with SASL (mechanism from --input-kafka-mechanism, default PLAIN)
    #[arg(id = "input-kafka-use-sasl", long = "input-kafka-use-sasl")]
    pub input_kafka_use_sasl: bool,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(
        id = "input-kafka-mechanism",
        long = "input-kafka-mechanism",
        value_name = "MECHANISM"
    )]
    pub input_kafka_mechanism: Option<String>,
    /// SASL user name
    #[arg(
        id = "input-kafka-username",
        long = "input-kafka-username",
        value_name = "USER"
    )]
    pub input_kafka_username: Option<String>,
    /// SASL password
    #[arg(
        id = "input-kafka-password",
        long = "input-kafka-password",
        value_name = "PASSWORD"
    )]
    pub input_kafka_password: Option<String>,
    /// Any librdkafka consumer property as key=value, applied last (repeatable)
    #[arg(
        id = "input-kafka-config",
        long = "input-kafka-config",
        value_name = "KEY=VALUE"
    )]
    pub input_kafka_config: Vec<String>,
}

register_input! {
    name: "input-kafka",
    about: "Consumes messages from Kafka, alone or in a consumer group with committed offsets, paced like the original",
    args: InputKafkaArgs,
    build: build,
}

/// Where to start reading.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum StartOffset {
    Newest,
    Oldest,
    At(i64),
}

/// Parses `-1`, `-2` or `N`, with an optional `|N` / `|N%` suffix.
fn parse_offset(value: &str) -> Result<(StartOffset, Option<Limit>), String> {
    let (offset, limit) = split_limit(value)?;
    let offset = match offset.trim() {
        "-1" | "" => StartOffset::Newest,
        "-2" => StartOffset::Oldest,
        n => match n.parse::<i64>() {
            Ok(n) if n >= 0 => StartOffset::At(n),
            _ => {
                return Err(format!(
                    "invalid offset {n:?} (use -1 newest, -2 oldest, or N ≥ 0)"
                ))
            }
        },
    };
    Ok((offset, limit))
}

/// Counts rebalances and commits stored offsets before partitions are taken away.
struct Context {
    label: String,
    group: bool,
    rebalances: AtomicU64,
    warnings: Throttle,
}

impl ClientContext for Context {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.label, &self.warnings, &error, reason);
    }
}

impl ConsumerContext for Context {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(partitions) = rebalance {
            if self.group {
                commit(consumer, CommitMode::Sync, &self.label);
            }
            tracing::info!(
                "{}: partitions revoked: {}",
                self.label,
                describe(partitions)
            );
        }
    }

    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        self.rebalances.fetch_add(1, Relaxed);
        if let Rebalance::Assign(partitions) = rebalance {
            tracing::info!(
                "{}: partitions assigned: {}",
                self.label,
                describe(partitions)
            );
        }
    }
}

fn describe(partitions: &TopicPartitionList) -> String {
    let list: Vec<String> = partitions
        .elements()
        .iter()
        .map(|p| format!("{}/{}", p.topic(), p.partition()))
        .collect();
    if list.is_empty() {
        "none".into()
    } else {
        list.join(",")
    }
}

/// Commits stored offsets; "nothing stored" is not an error.
fn commit(consumer: &BaseConsumer<Context>, mode: CommitMode, label: &str) {
    match consumer.commit_consumer_state(mode) {
        Ok(()) => {}
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(e) => tracing::warn!("{label}: committing offsets failed: {e}"),
    }
}

struct KafkaInput {
    /// Created while building, so that a bad property is a usage error at startup.
    consumer: BaseConsumer<Context>,
    topic: String,
    label: String,
    json: bool,
    start: StartOffset,
    /// Reading as a consumer group member (offsets committed), not assigned every partition.
    group: bool,
    speed: Option<f64>,
    commit_interval: Duration,
    exit_on_eof: bool,
}

impl Input for KafkaInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let consumer = &self.consumer;
        let Some(partitions) = self.subscribe(consumer, &cx)? else {
            return Ok(()); // stopped before the topic could be reached
        };
        let mut pacer = self.speed.map(Pacer::new);
        let warnings = Throttle::default();
        let mut at_eof: HashSet<i32> = HashSet::new();
        let mut seen_rebalances = 0;
        let mut last_commit = Instant::now();
        let mut assigned = partitions;
        while !cx.is_stopping() {
            if self.group && last_commit.elapsed() >= self.commit_interval {
                commit(consumer, CommitMode::Async, &self.label);
                last_commit = Instant::now();
            }
            let rebalances = consumer.context().rebalances.load(Relaxed);
            if rebalances != seen_rebalances {
                seen_rebalances = rebalances;
                at_eof.clear();
                assigned = consumer.assignment().map(|a| a.count()).unwrap_or(assigned);
            }
            let Some(polled) = consumer.poll(Duration::from_millis(100)) else {
                continue;
            };
            let record = match polled {
                Ok(record) => record,
                Err(KafkaError::PartitionEOF(partition)) => {
                    at_eof.insert(partition);
                    if self.exit_on_eof && assigned > 0 && at_eof.len() >= assigned {
                        tracing::info!("{}: every partition read to its end", self.label);
                        break;
                    }
                    continue;
                }
                Err(KafkaError::MessageConsumptionFatal(code)) => {
                    return Err(PluginError::Runtime(format!(
                        "{}: fatal consumer error: {code}",
                        self.label
                    )));
                }
                Err(e) => {
                    if let Some(held_back) = warnings.allow() {
                        tracing::warn!(
                            "{}: {e} ({held_back} similar messages held back)",
                            self.label
                        );
                    }
                    continue;
                }
            };
            at_eof.remove(&record.partition());
            let decoded = match record.payload() {
                None | Some([]) => Err("empty value".to_string()),
                Some(value) if self.json => goreplay_json::decode(value).map_err(|e| e.to_string()),
                Some(value) => {
                    Message::from_bytes(Bytes::copy_from_slice(value)).map_err(|e| e.to_string())
                }
            };
            match decoded {
                Ok(msg) => {
                    if let Some(pacer) = pacer.as_mut() {
                        if !pacer.wait(msg.meta.timestamp(), cx.shutdown()) {
                            break; // not handed on, so not committed: read again next time
                        }
                    }
                    if cx.emit(msg).is_err() {
                        break;
                    }
                }
                Err(error) => {
                    cx.counters().add_refused(Reason::Malformed, 1);
                    if let Some(held_back) = warnings.allow() {
                        tracing::warn!(
                            "{}: skipping malformed message at {}/{} offset {}: {error} ({held_back} similar messages held back)",
                            self.label,
                            record.topic(),
                            record.partition(),
                            record.offset()
                        );
                    }
                }
            }
            if self.group {
                if let Err(e) = consumer.store_offset_from_message(&record) {
                    tracing::debug!("{}: storing offset failed: {e}", self.label);
                }
            }
        }
        if self.group {
            commit(consumer, CommitMode::Sync, &self.label);
        }
        Ok(())
    }
}

impl KafkaInput {
    /// Joins the group or assigns every partition; returns the number of partitions read (0
    /// with a group until the first assignment), or `None` if shutdown came first.
    fn subscribe(
        &self,
        consumer: &BaseConsumer<Context>,
        cx: &InputContext,
    ) -> Result<Option<usize>, PluginError> {
        let topic = &self.topic;
        if self.group {
            consumer
                .subscribe(&[topic])
                .map_err(|e| PluginError::Runtime(format!("{}: {e}", self.label)))?;
            return Ok(Some(0));
        }
        let mut warned = false;
        loop {
            if cx.is_stopping() {
                return Ok(None);
            }
            let partitions = match consumer.fetch_metadata(Some(topic), Duration::from_secs(5)) {
                Ok(metadata) => metadata
                    .topics()
                    .iter()
                    .filter(|t| t.name() == topic && t.error().is_none())
                    .flat_map(|t| t.partitions().iter().map(|p| p.id()))
                    .collect::<Vec<i32>>(),
                Err(e) => {
                    if !warned {
                        tracing::warn!("{}: waiting for the topic: {e}", self.label);
                        warned = true;
                    }
                    Vec::new()
                }
            };
            if !partitions.is_empty() {
                let offset = match self.start {
                    StartOffset::Newest => Offset::End,
                    StartOffset::Oldest => Offset::Beginning,
                    StartOffset::At(n) => Offset::Offset(n),
                };
                let mut list = TopicPartitionList::new();
                for &p in &partitions {
                    list.add_partition_offset(topic, p, offset)
                        .map_err(|e| PluginError::Runtime(format!("{}: {e}", self.label)))?;
                }
                consumer
                    .assign(&list)
                    .map_err(|e| PluginError::Runtime(format!("{}: {e}", self.label)))?;
                tracing::info!("{}: reading partitions {:?}", self.label, partitions);
                return Ok(Some(partitions.len()));
            }
            if !cx.shutdown().sleep(Duration::from_millis(500)) {
                return Ok(None);
            }
        }
    }
}

fn targets(args: &InputKafkaArgs) -> Result<Vec<Target>, PluginError> {
    collect_targets(
        "input-kafka",
        &args.input_kafka,
        args.input_kafka_host.as_deref(),
        args.input_kafka_topic.as_deref(),
    )
}

fn consumer_config(
    args: &InputKafkaArgs,
    target: &Target,
    start: StartOffset,
    security: &Security,
    properties: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    let group = args
        .input_kafka_group
        .clone()
        .unwrap_or_else(|| format!("shadowtap-{}", shadowtap_api::random_id()));
    config
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set(
            "auto.offset.reset",
            if start == StartOffset::Newest {
                "latest"
            } else {
                "earliest"
            },
        )
        .set(
            "enable.partition.eof",
            if args.input_kafka_exit_on_eof {
                "true"
            } else {
                "false"
            },
        );
    client_config(&mut config, &target.brokers, security, properties);
    config
}

fn build(args: InputKafkaArgs, settings: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    let targets = targets(&args)?;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let (start, offset_limit) =
        parse_offset(&args.input_kafka_offset).map_err(usage("--input-kafka-offset"))?;
    if args.input_kafka_group.is_some() && matches!(start, StartOffset::At(_)) {
        return Err(PluginError::usage(
            "--input-kafka-offset",
            "an explicit offset cannot be combined with --input-kafka-group (the group's committed offsets decide; use -1 or -2 for partitions without one)",
        ));
    }
    if args.input_kafka_group.as_deref() == Some("") {
        return Err(PluginError::usage(
            "--input-kafka-group",
            "empty group name",
        ));
    }
    let security = Security::from_flags(
        "input-kafka",
        settings,
        args.input_kafka_use_sasl,
        args.input_kafka_mechanism.as_deref(),
        args.input_kafka_username.as_deref(),
        args.input_kafka_password.as_deref(),
    )?;
    let properties =
        parse_properties(&args.input_kafka_config).map_err(usage("--input-kafka-config"))?;
    targets
        .into_iter()
        .map(|target| {
            // A percentage on the offset or the target is a speed factor; N is a rate limit.
            let mut limit = None;
            let mut speed = None;
            for l in [offset_limit, target.limit].into_iter().flatten() {
                match l {
                    Limit::Percent(p) if p <= 0.0 => {
                        return Err(PluginError::usage(
                            "--input-kafka-offset",
                            format!("speed {p}% must be above 0"),
                        ))
                    }
                    Limit::Percent(p) => speed = Some(p / 100.0),
                    other => limit = Some(other),
                }
            }
            // GoReplay replays with the original timing unless reading from the newest offset.
            let speed = match start {
                StartOffset::Newest => None,
                _ => Some(speed.unwrap_or(1.0)),
            };
            let config = consumer_config(&args, &target, start, &security, &properties);
            let label = target.label("input-kafka");
            let group = args.input_kafka_group.is_some();
            let context = Context {
                label: label.clone(),
                group,
                rebalances: AtomicU64::new(0),
                warnings: Throttle::default(),
            };
            let consumer = config
                .create_with_context(context)
                .map_err(|e| PluginError::usage("--input-kafka-config", e.to_string()))?;
            let input = KafkaInput {
                consumer,
                topic: target.topic,
                label: label.clone(),
                json: args.input_kafka_json_format,
                start,
                group,
                speed,
                commit_interval: args.input_kafka_commit_interval,
                exit_on_eof: args.input_kafka_exit_on_eof,
            };
            Ok(InputSpec {
                label,
                plugin: Box::new(input),
                backpressure: shadowtap_api::Backpressure::Wait,
                limit,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests;
