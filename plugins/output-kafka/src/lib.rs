//! `output-kafka`: produces every message to a Kafka topic with librdkafka (bundled 2.12.1),
//! losslessly: acks=all, an idempotent producer with retries, and every message either
//! acknowledged by the broker (counted `out`) or counted as an `output error` drop with the
//! broker's error named (`error: <code> N` in the summary).
//!
//! Flags: `--output-kafka BROKERS/TOPIC` (repeatable; brokers comma-separated), GoReplay's
//! `--output-kafka-host BROKERS` + `--output-kafka-topic TOPIC`, `--output-kafka-json-format`
//! (GoReplay's KafkaMessage JSON, byte-compatible), `--output-kafka-format raw|json|record`
//! (raw = header line + payload as GoReplay; record = the structured JSON record),
//! `--output-kafka-compression none|gzip|snappy|lz4|zstd`, `--output-kafka-batch-size SIZE`,
//! `--output-kafka-linger DURATION`, `--output-kafka-buffer-size SIZE` (memory for undelivered
//! messages; when full the output waits, which back-pressures the pipeline),
//! `--output-kafka-flush-timeout DURATION` (default 30s: how long shutdown waits for outstanding
//! deliveries; the rest are counted), SASL `--output-kafka-use-sasl`, `--output-kafka-mechanism
//! PLAIN|SCRAM-SHA-256|SCRAM-SHA-512`, `--output-kafka-username`, `--output-kafka-password`, TLS
//! `--kafka-tls-ca-cert`, `--kafka-tls-client-cert`, `--kafka-tls-client-key` (shared with
//! input-kafka), and `--output-kafka-config key=value` (repeatable) for any librdkafka producer
//! property (applied last, so it overrides the above).
//!
//! The message key is the message id, so a request and its responses land in the same
//! partition, in order (partitioner `murmur2_random`, the Java client's, so other producers of
//! the same ids agree).
//!
//! Example: `shadowtap --input-raw :80 --output-kafka 10.0.0.1:9092,10.0.0.2:9092/traffic`.
#![deny(missing_docs)]

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};
use rdkafka::{ClientConfig, ClientContext};
use shadowtap_api::values::{duration_value, size_value};
use shadowtap_api::{
    register_output, CoreSettings, Counters, Inbox, Message, Next, Output, OutputContext,
    OutputSpec, PluginError, Reason, Throttle, BATCH_MAX,
};
use shadowtap_kafka_common::{
    client_config, collect_targets, goreplay_json, log_client_error, parse_properties, usage,
    Security, Target,
};
use shadowtap_record::Recorder;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// How a message is written into a Kafka record value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// GoReplay's raw value: the header line followed by the payload.
    Raw,
    /// GoReplay's KafkaMessage JSON.
    Json,
    /// The structured JSON record (`shadowtap-record`).
    Record,
}

/// Flags of `output-kafka`.
#[derive(clap::Args, Debug)]
pub struct OutputKafkaArgs {
    /// Produce every message to Kafka: BROKERS/TOPIC, brokers comma-separated (repeatable)
    #[arg(
        id = "output-kafka",
        long = "output-kafka",
        value_name = "BROKERS/TOPIC"
    )]
    pub output_kafka: Vec<String>,
    /// Kafka brokers, comma-separated (GoReplay's form; needs --output-kafka-topic)
    #[arg(
        id = "output-kafka-host",
        long = "output-kafka-host",
        value_name = "BROKERS"
    )]
    pub output_kafka_host: Option<String>,
    /// Kafka topic (GoReplay's form; needs --output-kafka-host)
    #[arg(
        id = "output-kafka-topic",
        long = "output-kafka-topic",
        value_name = "TOPIC"
    )]
    pub output_kafka_topic: Option<String>,
    /// Write GoReplay's KafkaMessage JSON (same as --output-kafka-format json)
    #[arg(id = "output-kafka-json-format", long = "output-kafka-json-format")]
    pub output_kafka_json_format: bool,
    /// Record value format: raw (header line + payload), json (GoReplay), record (structured JSON)
    #[arg(
        id = "output-kafka-format",
        long = "output-kafka-format",
        value_enum,
        value_name = "FORMAT"
    )]
    pub output_kafka_format: Option<Format>,
    /// Compression codec: none, gzip, snappy, lz4 or zstd
    #[arg(
        id = "output-kafka-compression",
        long = "output-kafka-compression",
        default_value = "none",
        value_parser = ["none", "gzip", "snappy", "lz4", "zstd"],
        value_name = "CODEC"
    )]
    pub output_kafka_compression: String,
    /// Largest batch per partition, e.g. 1mb (librdkafka batch.size; default 1000000 bytes)
    #[arg(id = "output-kafka-batch-size", long = "output-kafka-batch-size", value_parser = size_value, value_name = "SIZE")]
    pub output_kafka_batch_size: Option<u64>,
    /// How long a batch may wait to fill, e.g. 5ms (librdkafka linger.ms)
    #[arg(id = "output-kafka-linger", long = "output-kafka-linger", value_parser = duration_value, value_name = "DURATION")]
    pub output_kafka_linger: Option<Duration>,
    /// Memory for messages not yet acknowledged; when full the output waits (back-pressure)
    #[arg(id = "output-kafka-buffer-size", long = "output-kafka-buffer-size", value_parser = size_value, default_value = "64mb", value_name = "SIZE")]
    pub output_kafka_buffer_size: u64,
    /// At shutdown, how long to wait for outstanding deliveries; the rest are counted as lost
    #[arg(id = "output-kafka-flush-timeout", long = "output-kafka-flush-timeout", value_parser = duration_value, default_value = "30s", value_name = "DURATION")]
    pub output_kafka_flush_timeout: Duration,
    /// Authenticate with SASL (mechanism from --output-kafka-mechanism, default PLAIN)
    #[arg(id = "output-kafka-use-sasl", long = "output-kafka-use-sasl")]
    pub output_kafka_use_sasl: bool,
    /// SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    #[arg(
        id = "output-kafka-mechanism",
        long = "output-kafka-mechanism",
        value_name = "MECHANISM"
    )]
    pub output_kafka_mechanism: Option<String>,
    /// SASL user name
    #[arg(
        id = "output-kafka-username",
        long = "output-kafka-username",
        value_name = "USER"
    )]
    pub output_kafka_username: Option<String>,
    /// SASL password
    #[arg(
        id = "output-kafka-password",
        long = "output-kafka-password",
        value_name = "PASSWORD"
    )]
    pub output_kafka_password: Option<String>,
    /// Any librdkafka producer property as key=value, applied last (repeatable)
    #[arg(
        id = "output-kafka-config",
        long = "output-kafka-config",
        value_name = "KEY=VALUE"
    )]
    pub output_kafka_config: Vec<String>,
}

register_output! {
    name: "output-kafka",
    about: "Produces messages to Kafka (raw, GoReplay JSON or structured records), acks=all, every message acknowledged or counted",
    args: OutputKafkaArgs,
    build: build,
}

/// Counts delivery reports; runs on the thread that polls the producer.
struct Delivery {
    counters: OnceLock<Arc<Counters>>,
    acked: AtomicU64,
    failed: AtomicU64,
    label: String,
    warnings: Throttle,
}

impl Delivery {
    fn fail(&self, what: &str, code: Option<RDKafkaErrorCode>, n: u64) {
        self.failed.fetch_add(n, Relaxed);
        if let Some(counters) = self.counters.get() {
            counters.add_drop(Reason::OutputError, n);
            let name = code.map_or_else(|| "unknown".to_string(), |c| format!("{c:?}"));
            counters
                .extra(&format!("error: {name}"))
                .fetch_add(n, Relaxed);
            counters.add_error();
        }
        if let Some(held_back) = self.warnings.allow() {
            tracing::error!(
                "{}: {what} ({held_back} similar messages held back)",
                self.label
            );
        }
    }
}

impl ClientContext for Delivery {
    fn error(&self, error: KafkaError, reason: &str) {
        log_client_error(&self.label, &self.warnings, &error, reason);
    }
}

impl ProducerContext for Delivery {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => {
                self.acked.fetch_add(1, Relaxed);
                if let Some(counters) = self.counters.get() {
                    counters.add_out(1);
                }
            }
            Err((error, _)) => self.fail(
                &format!("delivery failed: {error}"),
                error.rdkafka_error_code(),
                1,
            ),
        }
    }
}

struct KafkaOutput {
    producer: BaseProducer<Delivery>,
    topic: String,
    format: Format,
    recorder: Recorder,
    flush_timeout: Duration,
    sent: u64,
}

impl Output for KafkaOutput {
    fn run(mut self: Box<Self>, inbox: Inbox, cx: OutputContext) -> Result<(), PluginError> {
        let _ = self.producer.context().counters.set(cx.counters().clone());
        let mut value = Vec::new();
        loop {
            match inbox.recv_timeout(Duration::from_millis(100)) {
                Next::Message(msg) => {
                    self.produce(&msg, &mut value, cx.counters());
                    // Drain what is already queued before serving delivery reports.
                    for _ in 0..BATCH_MAX {
                        let Some(msg) = inbox.try_recv() else { break };
                        self.produce(&msg, &mut value, cx.counters());
                    }
                }
                Next::Timeout => {}
                Next::Closed => break,
            }
            self.producer.poll(Duration::ZERO);
        }
        self.finish();
        Ok(())
    }
}

impl KafkaOutput {
    fn produce(&mut self, msg: &Message, value: &mut Vec<u8>, counters: &Counters) {
        value.clear();
        match self.format {
            Format::Raw => {
                value.extend_from_slice(&msg.meta.line());
                value.extend_from_slice(&msg.payload);
            }
            Format::Json => goreplay_json::encode(msg, value),
            Format::Record => {
                value.extend_from_slice(self.recorder.record(msg, counters).to_json().as_bytes())
            }
        }
        let mut record = BaseRecord::to(&self.topic)
            .key(msg.meta.id_bytes())
            .payload(&value[..]);
        loop {
            match self.producer.send(record) {
                Ok(()) => {
                    self.sent += 1;
                    return;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    // The buffer is full: serve delivery reports until there is room again.
                    record = back;
                    self.producer.poll(Duration::from_millis(5));
                }
                Err((error, _)) => {
                    let delivery = self.producer.context();
                    delivery.fail(
                        &format!("cannot produce: {error}"),
                        error.rdkafka_error_code(),
                        1,
                    );
                    return;
                }
            }
        }
    }

    /// Waits for outstanding deliveries (bounded by the flush timeout); counts the rest.
    fn finish(&mut self) {
        let delivery = self.producer.context().clone();
        let started = Instant::now();
        // rdkafka's flush serves reports in 100 ms steps; serve them as they come instead,
        // after one zero-timeout flush that sends lingering batches at once.
        let deadline = started + self.flush_timeout;
        let _ = self.producer.flush(Duration::ZERO);
        while self.producer.in_flight_count() > 0 && Instant::now() < deadline {
            self.producer.poll(Duration::from_millis(1));
        }
        if self.producer.in_flight_count() > 0 {
            let pending = self.producer.in_flight_count();
            tracing::error!(
                "{}: {pending} message(s) still undelivered after --output-kafka-flush-timeout {:?}; counting them as lost",
                delivery.label,
                self.flush_timeout
            );
            // Purged messages get delivery reports with a purge error, which counts them.
            self.producer
                .purge(PurgeConfig::default().queue().inflight());
            let _ = self.producer.flush(Duration::from_secs(5));
        }
        let reported = delivery.acked.load(Relaxed) + delivery.failed.load(Relaxed);
        let unreported = self.sent.saturating_sub(reported);
        if unreported > 0 {
            delivery.fail("no delivery report at shutdown", None, unreported);
        }
        tracing::debug!(
            "{}: flushed in {:?}: {} acknowledged, {} failed",
            delivery.label,
            started.elapsed(),
            delivery.acked.load(Relaxed),
            delivery.failed.load(Relaxed)
        );
    }
}

fn targets(args: &OutputKafkaArgs) -> Result<Vec<Target>, PluginError> {
    collect_targets(
        "output-kafka",
        &args.output_kafka,
        args.output_kafka_host.as_deref(),
        args.output_kafka_topic.as_deref(),
    )
}

fn format_of(args: &OutputKafkaArgs) -> Result<Format, PluginError> {
    match (args.output_kafka_format, args.output_kafka_json_format) {
        (Some(format), true) if format != Format::Json => Err(PluginError::usage(
            "--output-kafka-json-format",
            "conflicts with --output-kafka-format",
        )),
        (Some(format), _) => Ok(format),
        (None, true) => Ok(Format::Json),
        (None, false) => Ok(Format::Raw),
    }
}

/// The producer configuration for one target (defaults, then security, then pass-through).
fn producer_config(
    args: &OutputKafkaArgs,
    target: &Target,
    security: &Security,
    properties: &[(String, String)],
) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("partitioner", "murmur2_random")
        .set("compression.codec", &args.output_kafka_compression)
        .set(
            "queue.buffering.max.kbytes",
            (args.output_kafka_buffer_size / 1024)
                .clamp(1, 2_147_483_647)
                .to_string(),
        );
    if let Some(size) = args.output_kafka_batch_size {
        config.set("batch.size", size.clamp(1, 2_147_483_647).to_string());
    }
    if let Some(linger) = args.output_kafka_linger {
        config.set("linger.ms", format!("{}", linger.as_secs_f64() * 1000.0));
    }
    client_config(&mut config, &target.brokers, security, properties);
    config
}

fn build(args: OutputKafkaArgs, settings: &CoreSettings) -> Result<Vec<OutputSpec>, PluginError> {
    let targets = targets(&args)?;
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let format = format_of(&args)?;
    let security = Security::from_flags(
        "output-kafka",
        settings,
        args.output_kafka_use_sasl,
        args.output_kafka_mechanism.as_deref(),
        args.output_kafka_username.as_deref(),
        args.output_kafka_password.as_deref(),
    )?;
    let properties =
        parse_properties(&args.output_kafka_config).map_err(usage("--output-kafka-config"))?;
    targets
        .into_iter()
        .map(|target| {
            let label = target.label("output-kafka");
            let delivery = Delivery {
                counters: OnceLock::new(),
                acked: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                label: label.clone(),
                warnings: Throttle::default(),
            };
            let producer: BaseProducer<Delivery> =
                producer_config(&args, &target, &security, &properties)
                    .create_with_context(delivery)
                    .map_err(|e| PluginError::usage("--output-kafka-config", e.to_string()))?;
            let recorder = match format {
                Format::Record => Recorder::from_settings(settings)?,
                _ => Recorder::default(),
            };
            let output = KafkaOutput {
                producer,
                topic: target.topic.clone(),
                format,
                recorder,
                flush_timeout: args.output_kafka_flush_timeout,
                sent: 0,
            };
            let mut spec = OutputSpec::new(label, Box::new(output));
            spec.limit = target.limit;
            Ok(spec)
        })
        .collect()
}

#[cfg(test)]
mod tests;
