//! `shadowtap-kafka-common`: what `input-kafka` and `output-kafka` share (a support crate, not a
//! plugin).
//!
//! * [`parse_target`]: the `BROKERS/TOPIC` shorthand (`10.0.0.1:9092,10.0.0.2:9092/traffic`),
//!   with an optional `|N` / `|N%` suffix.
//! * [`KafkaTlsArgs`]: GoReplay's shared flags `--kafka-tls-ca-cert`, `--kafka-tls-client-cert`
//!   and `--kafka-tls-client-key`, registered once as a shared flag group
//!   (`register_shared_args!`) and read by both Kafka plugins with
//!   `CoreSettings::shared_args`.
//! * [`Security`] and [`client_config`]: SASL (PLAIN, SCRAM-SHA-256/512) and TLS as librdkafka
//!   properties, plus `key=value` pass-through properties. [`KafkaSaslArgs`]: when a plugin's
//!   `--*-kafka-password` is unset, the SASL password comes from `SHADOWTAP_KAFKA_SASL_PASSWORD`
//!   or `--kafka-sasl-password-file FILE`. SASL without TLS prints one warning (PLAIN sends
//!   the password in the clear); a password never appears in `Debug` output or messages.
//! * [`goreplay_json`]: GoReplay's `KafkaMessage` JSON, encoded byte-for-byte as GoReplay's Go
//!   code does and decoded as GoReplay's `Dump()` does.
//!
//! Example: `shadowtap --input-raw :80 --output-kafka 10.0.0.1:9092/traffic --kafka-tls-ca-cert ca.pem`.
#![deny(missing_docs)]

pub use shadowtap_record::goreplay_json;

use rdkafka::config::RDKafkaLogLevel;
use rdkafka::ClientConfig;
use shadowtap_api::values::{split_limit, Limit};
use shadowtap_api::PluginError;

/// Where messages go to or come from: brokers and one topic.
#[derive(Clone, Debug, PartialEq)]
pub struct Target {
    /// Comma-separated `host:port` list (librdkafka's `bootstrap.servers`).
    pub brokers: String,
    /// The topic.
    pub topic: String,
    /// An `|N` / `|N%` suffix, if given.
    pub limit: Option<Limit>,
}

impl Target {
    /// The label of plugin `stem`'s instance for this target: `stem[brokers/topic]`.
    pub fn label(&self, stem: &str) -> String {
        shadowtap_api::instance_label(stem, &format!("{}/{}", self.brokers, self.topic))
    }
}

/// Parses `BROKERS/TOPIC` (brokers comma-separated), with an optional `|N` or `|N%` suffix.
pub fn parse_target(value: &str) -> Result<Target, String> {
    let (address, limit) = split_limit(value)?;
    let address = address.trim();
    let address = address.strip_prefix("kafka://").unwrap_or(address);
    let (brokers, topic) = address
        .rsplit_once('/')
        .ok_or_else(|| format!("{value:?} is not BROKERS/TOPIC (e.g. 10.0.0.1:9092/traffic)"))?;
    let brokers = check_brokers(brokers)?;
    check_topic(topic)?;
    Ok(Target {
        brokers,
        topic: topic.to_string(),
        limit,
    })
}

/// Validates a comma-separated broker list and returns it without spaces.
pub fn check_brokers(brokers: &str) -> Result<String, String> {
    let list: Vec<&str> = brokers.split(',').map(str::trim).collect();
    if list.iter().any(|b| b.is_empty() || b.contains('/')) {
        return Err(format!(
            "broker list {brokers:?} must be host:port[,host:port…]"
        ));
    }
    Ok(list.join(","))
}

/// Every target of one Kafka plugin: each `--<stem> BROKERS/TOPIC` value, plus GoReplay's
/// `--<stem>-host` and `--<stem>-topic` pair (which must come together).
pub fn collect_targets(
    stem: &str,
    values: &[String],
    host: Option<&str>,
    topic: Option<&str>,
) -> Result<Vec<Target>, PluginError> {
    let (flag, host_flag, topic_flag) = (
        format!("--{stem}"),
        format!("--{stem}-host"),
        format!("--{stem}-topic"),
    );
    let mut targets = values
        .iter()
        .map(|value| parse_target(value).map_err(usage(&flag)))
        .collect::<Result<Vec<_>, _>>()?;
    let host = host.filter(|s| !s.is_empty());
    let topic = topic.filter(|s| !s.is_empty());
    match (host, topic) {
        (Some(host), Some(topic)) => {
            check_topic(topic).map_err(usage(&topic_flag))?;
            targets.push(Target {
                brokers: check_brokers(host).map_err(usage(&host_flag))?,
                topic: topic.to_string(),
                limit: None,
            });
        }
        (Some(_), None) => {
            return Err(PluginError::usage(
                &host_flag,
                format!("needs {topic_flag}"),
            ))
        }
        (None, Some(_)) => {
            return Err(PluginError::usage(
                &topic_flag,
                format!("needs {host_flag}"),
            ))
        }
        (None, None) => {}
    }
    Ok(targets)
}

/// Turns a message about flag `flag` into a usage error (for `map_err`).
pub fn usage(flag: &str) -> impl Fn(String) -> PluginError + '_ {
    move |message| PluginError::usage(flag, message)
}

/// Validates a Kafka topic name (1–249 characters of `[a-zA-Z0-9._-]`).
pub fn check_topic(topic: &str) -> Result<(), String> {
    let valid = !topic.is_empty()
        && topic.len() <= 249
        && topic != "."
        && topic != ".."
        && topic
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(format!(
            "invalid topic name {topic:?} (1-249 characters of a-z A-Z 0-9 . _ -)"
        ))
    }
}

/// The shared TLS flags (GoReplay's `--kafka-tls-*`); an empty value is unset, as in GoReplay.
#[derive(clap::Args, Clone, Debug, Default, PartialEq, Eq)]
pub struct KafkaTlsArgs {
    /// CA certificate (PEM file) to verify Kafka brokers; enables TLS (input-kafka and output-kafka)
    #[arg(
        id = "kafka-tls-ca-cert",
        long = "kafka-tls-ca-cert",
        value_name = "PEM"
    )]
    pub ca_cert: Option<String>,
    /// Client certificate (PEM file) for Kafka TLS; needs --kafka-tls-client-key
    #[arg(
        id = "kafka-tls-client-cert",
        long = "kafka-tls-client-cert",
        value_name = "PEM"
    )]
    pub client_cert: Option<String>,
    /// Client private key (PEM file) for Kafka TLS; needs --kafka-tls-client-cert
    #[arg(
        id = "kafka-tls-client-key",
        long = "kafka-tls-client-key",
        value_name = "PEM"
    )]
    pub client_key: Option<String>,
}

impl KafkaTlsArgs {
    /// True when TLS is configured (a CA or a client certificate).
    pub fn enabled(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some()
    }

    /// The same flags with empty values unset.
    fn without_empty(self) -> KafkaTlsArgs {
        let set = |value: Option<String>| value.filter(|v| !v.is_empty());
        KafkaTlsArgs {
            ca_cert: set(self.ca_cert),
            client_cert: set(self.client_cert),
            client_key: set(self.client_key),
        }
    }

    /// Checks that certificate and key come together and that the files exist.
    pub fn validate(&self) -> Result<(), PluginError> {
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => {
                return Err(PluginError::usage(
                    "--kafka-tls-client-cert",
                    "needs --kafka-tls-client-key",
                ))
            }
            (None, Some(_)) => {
                return Err(PluginError::usage(
                    "--kafka-tls-client-key",
                    "needs --kafka-tls-client-cert",
                ))
            }
            _ => {}
        }
        for (flag, path) in [
            ("--kafka-tls-ca-cert", &self.ca_cert),
            ("--kafka-tls-client-cert", &self.client_cert),
            ("--kafka-tls-client-key", &self.client_key),
        ] {
            if let Some(path) = path {
                if !std::path::Path::new(path).is_file() {
                    return Err(PluginError::usage(flag, format!("{path}: no such file")));
                }
            }
        }
        Ok(())
    }
}

shadowtap_api::register_shared_args! {
    heading: "kafka-tls (shared by input-kafka and output-kafka)",
    args: KafkaTlsArgs,
}

/// Where the SASL password may come from besides a plugin's `--*-kafka-password` flag.
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct KafkaSaslArgs {
    /// Read the SASL password of both Kafka plugins from FILE (when their --*-password is unset)
    #[arg(
        id = "kafka-sasl-password-file",
        long = "kafka-sasl-password-file",
        value_name = "FILE"
    )]
    pub password_file: Option<std::path::PathBuf>,
    /// The SASL password of both Kafka plugins (when their --*-password is unset)
    #[arg(
        id = "kafka-sasl-password",
        long = "kafka-sasl-password",
        env = "SHADOWTAP_KAFKA_SASL_PASSWORD",
        hide_env_values = true,
        hide = true,
        value_name = "PASSWORD"
    )]
    pub password: Option<String>,
}

impl KafkaSaslArgs {
    /// The password from `SHADOWTAP_KAFKA_SASL_PASSWORD` or the file, if any.
    fn load(&self) -> Result<Option<String>, PluginError> {
        let flag = "--kafka-sasl-password";
        let secret = shadowtap_listener::Secret::load(
            flag,
            self.password.as_deref().filter(|p| !p.is_empty()),
            self.password_file.as_deref(),
        )
        .map_err(|e| PluginError::usage(flag, e.to_string()))?;
        secret
            .map(|s| String::from_utf8(s.expose().to_vec()))
            .transpose()
            .map_err(|_| PluginError::usage(flag, "not UTF-8"))
    }
}

shadowtap_api::register_shared_args! {
    heading: "kafka-sasl (shared by input-kafka and output-kafka)",
    args: KafkaSaslArgs,
}

/// SASL credentials (`Debug` hides the password).
#[derive(Clone, PartialEq, Eq)]
pub struct Sasl {
    /// `PLAIN`, `SCRAM-SHA-256` or `SCRAM-SHA-512`.
    pub mechanism: String,
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Sasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

impl Sasl {
    /// SASL from a plugin's `--*-use-sasl`, `--*-mechanism`, `--*-username`, `--*-password`
    /// (`prefix` is `input-kafka` or `output-kafka`). The mechanism defaults to PLAIN.
    pub fn from_flags(
        prefix: &str,
        use_sasl: bool,
        mechanism: Option<&str>,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Option<Sasl>, PluginError> {
        if !use_sasl {
            return Ok(None);
        }
        let mechanism = mechanism
            .filter(|m| !m.is_empty())
            .unwrap_or("PLAIN")
            .to_ascii_uppercase();
        if !["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"].contains(&mechanism.as_str()) {
            return Err(PluginError::usage(
                &format!("--{prefix}-mechanism"),
                format!("unsupported SASL mechanism {mechanism:?} (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)"),
            ));
        }
        Ok(Some(Sasl {
            mechanism,
            username: username.unwrap_or_default().to_string(),
            password: password.unwrap_or_default().to_string(),
        }))
    }
}

/// SASL and TLS settings of one client.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Security {
    /// TLS files.
    pub tls: KafkaTlsArgs,
    /// SASL, if enabled.
    pub sasl: Option<Sasl>,
}

impl Security {
    /// The shared `--kafka-tls-*` flags and plugin `stem`'s SASL flags, checked.
    pub fn from_flags(
        stem: &str,
        settings: &shadowtap_api::CoreSettings,
        use_sasl: bool,
        mechanism: Option<&str>,
        username: Option<&str>,
        password: Option<&str>,
    ) -> Result<Security, PluginError> {
        let tls = settings.shared_args::<KafkaTlsArgs>()?.without_empty();
        tls.validate()?;
        let shared_password = match password {
            Some(_) => None,
            None if use_sasl => settings.shared_args::<KafkaSaslArgs>()?.load()?,
            None => None,
        };
        let password = password.or(shared_password.as_deref());
        let sasl = Sasl::from_flags(stem, use_sasl, mechanism, username, password)?;
        if let Some(sasl) = sasl.as_ref().filter(|_| !tls.enabled()) {
            warn_without_tls(&sasl.mechanism);
        }
        Ok(Security { tls, sasl })
    }
}

/// Once per run: SASL without TLS sends the password (PLAIN) or at least every message
/// (SCRAM) unencrypted.
fn warn_without_tls(mechanism: &str) {
    static WARNED: std::sync::Once = std::sync::Once::new();
    let what = if mechanism == "PLAIN" {
        "the password travels in the clear"
    } else {
        "messages travel in the clear (the password does not)"
    };
    WARNED.call_once(|| {
        tracing::warn!(
            "Kafka SASL/{mechanism} without TLS: {what}; set --kafka-tls-ca-cert to use TLS"
        )
    });
}

/// Parses `key=value` librdkafka properties.
pub fn parse_properties(pairs: &[String]) -> Result<Vec<(String, String)>, String> {
    pairs
        .iter()
        .map(|pair| {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            let key = key.trim();
            if key.is_empty() {
                return Err(format!("{pair:?} has an empty key"));
            }
            Ok((key.to_string(), value.to_string()))
        })
        .collect()
}

/// A librdkafka configuration for `brokers`: the defaults both plugins share (client id
/// `shadowtap`, warnings logged), `security`, then `properties` (which override anything set
/// before, including the caller's own defaults — so callers set those first and call this last).
pub fn client_config(
    config: &mut ClientConfig,
    brokers: &str,
    security: &Security,
    properties: &[(String, String)],
) {
    config
        .set("client.id", "shadowtap")
        .set("bootstrap.servers", brokers)
        .set_log_level(RDKafkaLogLevel::Warning);
    let tls = security.tls.enabled();
    let protocol = match (&security.sasl, tls) {
        (Some(_), true) => Some("sasl_ssl"),
        (Some(_), false) => Some("sasl_plaintext"),
        (None, true) => Some("ssl"),
        (None, false) => None,
    };
    if let Some(protocol) = protocol {
        config.set("security.protocol", protocol);
    }
    if let Some(sasl) = &security.sasl {
        config.set("sasl.mechanism", &sasl.mechanism);
        config.set("sasl.username", &sasl.username);
        config.set("sasl.password", &sasl.password);
    }
    if let Some(ca) = &security.tls.ca_cert {
        config.set("ssl.ca.location", ca);
    }
    if let Some(cert) = &security.tls.client_cert {
        config.set("ssl.certificate.location", cert);
    }
    if let Some(key) = &security.tls.client_key {
        config.set("ssl.key.location", key);
    }
    for (key, value) in properties {
        config.set(key, value);
    }
}

/// Logs an error librdkafka reports outside any message (rate-limited by `warnings`);
/// end-of-partition notices are not errors and are left to the poll loop.
pub fn log_client_error(
    label: &str,
    warnings: &shadowtap_api::Throttle,
    error: &rdkafka::error::KafkaError,
    reason: &str,
) {
    use rdkafka::types::RDKafkaErrorCode;
    if error.rdkafka_error_code() == Some(RDKafkaErrorCode::PartitionEOF) {
        return;
    }
    if let Some(held_back) = warnings.allow() {
        tracing::warn!("{label}: {error}: {reason} ({held_back} similar messages held back)");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{Args, Command, FromArgMatches};

    #[test]
    fn targets_parse() {
        let t = parse_target("10.0.0.1:9092,10.0.0.2:9092/traffic").unwrap();
        assert_eq!(t.brokers, "10.0.0.1:9092,10.0.0.2:9092");
        assert_eq!(t.topic, "traffic");
        assert_eq!(t.limit, None);
        let t = parse_target("kafka://b:9092/t.1_x-y|50%").unwrap();
        assert_eq!(t.brokers, "b:9092");
        assert_eq!(t.topic, "t.1_x-y");
        assert_eq!(t.limit, Some(Limit::Percent(50.0)));
        assert!(parse_target("b:9092").is_err());
        assert!(parse_target("b:9092/").is_err());
        assert!(parse_target("/topic").is_err());
        assert!(parse_target("a,,b/topic").is_err());
        assert!(parse_target("b:9092/bad topic").is_err());
        assert!(parse_target("b:9092/a/b").is_err());
    }

    #[test]
    fn tls_flags_are_read_and_empty_values_unset() {
        let cmd = KafkaTlsArgs::augment_args(Command::new("t"));
        let m = cmd
            .try_get_matches_from([
                "t",
                "--kafka-tls-ca-cert",
                "ca.pem",
                "--kafka-tls-client-key",
                "",
            ])
            .unwrap();
        let tls = KafkaTlsArgs::from_arg_matches(&m).unwrap().without_empty();
        assert_eq!(tls.ca_cert.as_deref(), Some("ca.pem"));
        assert_eq!(tls.client_key, None);
        assert!(tls.enabled());
    }

    #[test]
    fn tls_needs_cert_and_key_together() {
        let tls = KafkaTlsArgs {
            client_cert: Some("c.pem".into()),
            ..Default::default()
        };
        assert!(
            matches!(tls.validate(), Err(PluginError::Usage { flag, .. }) if flag == "--kafka-tls-client-cert")
        );
    }

    #[test]
    fn security_becomes_librdkafka_properties() {
        let sasl = Sasl::from_flags(
            "output-kafka",
            true,
            Some("scram-sha-512"),
            Some("u"),
            Some("p"),
        )
        .unwrap();
        let security = Security {
            tls: KafkaTlsArgs {
                ca_cert: Some("/ca.pem".into()),
                ..Default::default()
            },
            sasl,
        };
        let mut config = ClientConfig::new();
        client_config(
            &mut config,
            "b:1",
            &security,
            &parse_properties(&["linger.ms=7".into()]).unwrap(),
        );
        assert_eq!(config.get("security.protocol"), Some("sasl_ssl"));
        assert_eq!(config.get("sasl.mechanism"), Some("SCRAM-SHA-512"));
        assert_eq!(config.get("ssl.ca.location"), Some("/ca.pem"));
        assert_eq!(config.get("linger.ms"), Some("7"));
        assert!(Sasl::from_flags("x", true, Some("GSSAPI"), None, None).is_err());
        assert!(matches!(
            Sasl::from_flags("x", false, None, None, None),
            Ok(None)
        ));
        assert!(parse_properties(&["novalue".into()]).is_err());
    }
}
