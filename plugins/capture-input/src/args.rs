//! Capture settings GoReplay names `--input-raw-*` and applies to every capture input
//! (`input-raw`, `input-pcap`, `input-pfring`): registered once as a shared flag group.

use shadowtap_api::values::{duration_value, size_value};
use shadowtap_api::CoreSettings;
use shadowtap_capture::tls::{TlsSettings, DEFAULT_MAX_PENDING_BYTES};
use shadowtap_capture::{Framing, TrackerConfig};
use std::path::PathBuf;
use std::time::Duration;

shadowtap_api::register_shared_args! {
    heading: "input-raw (every capture input)",
    args: RawCaptureArgs,
}

/// Flags shared by the capture inputs.
#[derive(clap::Args, Debug, Clone)]
pub struct RawCaptureArgs {
    /// Also emit the server's responses (kind 2), paired with their requests
    #[arg(id = "input-raw-track-response", long = "input-raw-track-response")]
    pub input_raw_track_response: bool,
    /// Idle time after which an unfinished message is finished (capture time for files)
    #[arg(id = "input-raw-expire", long = "input-raw-expire", value_parser = duration_value, default_value = "2s", value_name = "DURATION")]
    pub input_raw_expire: Duration,
    /// Emit messages that expired incomplete instead of dropping them
    #[arg(id = "input-raw-allow-incomplete", long = "input-raw-allow-incomplete")]
    pub input_raw_allow_incomplete: bool,
    /// http (reassembled HTTP/1.x), http-headers (no reassembly: the header block of every
    /// segment that starts a message) or binary (messages end when idle)
    #[arg(id = "input-raw-protocol", long = "input-raw-protocol", value_parser = ["http", "http-headers", "binary"], default_value = "http")]
    pub input_raw_protocol: String,
    /// Connections tracked at once per capture thread; the least recently active is evicted
    #[arg(
        id = "input-raw-max-flows",
        long = "input-raw-max-flows",
        default_value_t = 100_000,
        value_name = "N"
    )]
    pub input_raw_max_flows: usize,
    /// Pause capture while the process uses more than this percent of one core
    #[arg(id = "capture-max-cpu", long = "capture-max-cpu", value_name = "PCT")]
    pub capture_max_cpu: Option<f64>,
    /// Pause capture while the process's resident memory is above this size
    #[arg(id = "capture-max-rss", long = "capture-max-rss", value_parser = size_value, value_name = "SIZE")]
    pub capture_max_rss: Option<u64>,
    /// Capture only during sampling windows: INTERVAL/DURATION, e.g. 60s/10s
    #[arg(id = "capture-sample", long = "capture-sample", value_parser = crate::guard::parse_sample, value_name = "INTERVAL/DURATION")]
    pub capture_sample: Option<(Duration, Duration)>,
    /// Reassembly memory per capture thread (out-of-order and unfinished data)
    #[arg(id = "input-raw-max-buffer", long = "input-raw-max-buffer", value_parser = size_value, default_value = "512mb", value_name = "SIZE")]
    pub input_raw_max_buffer: u64,
    /// Out-of-order segments held per connection direction; beyond it the message in progress
    /// is dropped (counted `segment limit`) and the flow resynchronises
    #[arg(
        id = "input-raw-max-held-segments",
        long = "input-raw-max-held-segments",
        default_value_t = shadowtap_capture::DEFAULT_MAX_HELD_SEGMENTS,
        value_name = "N"
    )]
    pub input_raw_max_held_segments: usize,
    /// Decrypt TLS with the secrets of this NSS key log (SSLKEYLOGFILE); tailed, so keys
    /// written later are used (repeatable; pcapng Decryption Secrets Blocks need no flag)
    #[arg(
        id = "input-raw-tls-keylog",
        long = "input-raw-tls-keylog",
        value_name = "FILE"
    )]
    pub input_raw_tls_keylog: Vec<PathBuf>,
    /// How long a TLS connection whose key is not in the key log yet is held (then counted
    /// `tls: no key`)
    #[arg(id = "input-raw-tls-key-wait", long = "input-raw-tls-key-wait", value_parser = duration_value, default_value = "10s", value_name = "DURATION")]
    pub input_raw_tls_key_wait: Duration,
    /// TLS records held per connection while its key is missing (then `tls: buffer full`)
    #[arg(id = "input-raw-tls-max-pending", long = "input-raw-tls-max-pending", value_parser = size_value, default_value_t = DEFAULT_MAX_PENDING_BYTES as u64, value_name = "SIZE")]
    pub input_raw_tls_max_pending: u64,
}

impl RawCaptureArgs {
    /// The load guard these flags ask for.
    pub fn guard(&self) -> crate::guard::GuardConfig {
        crate::guard::GuardConfig {
            max_cpu_percent: self.capture_max_cpu,
            max_rss_bytes: self.capture_max_rss,
            sample: self.capture_sample,
        }
    }

    /// How conversations are cut into messages (`--input-raw-protocol`).
    pub fn framing(&self) -> Framing {
        Framing::from_flag(&self.input_raw_protocol)
    }

    /// The tracker configuration for one capture with these settings.
    pub fn tracker_config(
        &self,
        ports: Vec<u16>,
        track_responses: bool,
        settings: &CoreSettings,
    ) -> TrackerConfig {
        TrackerConfig {
            ports,
            track_responses,
            expire_ns: i64::try_from(self.input_raw_expire.as_nanos())
                .unwrap_or(i64::MAX)
                .max(1),
            allow_incomplete: self.input_raw_allow_incomplete,
            max_message_bytes: settings.copy_buffer_size,
            max_flows: self.input_raw_max_flows.max(1),
            max_buffered_bytes: usize::try_from(self.input_raw_max_buffer).unwrap_or(usize::MAX),
            max_held_segments: self.input_raw_max_held_segments.max(1),
            framing: self.framing(),
            tls: (!self.input_raw_tls_keylog.is_empty()).then(|| {
                self.tls_settings(crate::keylog::shared_store(&self.input_raw_tls_keylog))
            }),
        }
    }

    /// TLS decryption with the secrets of `keys`, waiting and holding as these flags say.
    pub fn tls_settings(
        &self,
        keys: std::sync::Arc<shadowtap_capture::tls::KeyStore>,
    ) -> TlsSettings {
        TlsSettings {
            keys,
            key_wait_ns: i64::try_from(self.input_raw_tls_key_wait.as_nanos()).unwrap_or(i64::MAX),
            max_pending_bytes: usize::try_from(self.input_raw_tls_max_pending)
                .unwrap_or(usize::MAX),
            once_keys_known: false,
        }
    }
}
