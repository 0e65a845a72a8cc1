//! The tracker's settings.

use crate::protocol::Framing;
use crate::stream::DEFAULT_MAX_HELD_SEGMENTS;
use crate::tls::TlsSettings;

const DEFAULT_EXPIRE_NS: i64 = 2_000_000_000;

/// Tracker settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrackerConfig {
    /// Server ports; empty = infer direction from SYNs and request/status lines.
    pub ports: Vec<u16>,
    /// Emit responses too (requests are always emitted).
    pub track_responses: bool,
    /// Idle time before an unfinished message is finished.
    pub expire_ns: i64,
    /// Emit expired or gapped messages marked incomplete instead of dropping them.
    pub allow_incomplete: bool,
    /// Bytes kept per message (0 = unlimited); the rest is skipped and the message marked
    /// truncated.
    pub max_message_bytes: usize,
    /// Flow table bound; when full, the least recently active flow is evicted.
    pub max_flows: usize,
    /// Bound on the bytes buffered by this tracker (partial messages and out-of-order data).
    pub max_buffered_bytes: usize,
    /// Out-of-order segments held per direction of a connection; one more loses the message.
    pub max_held_segments: usize,
    /// How conversations are cut into messages.
    pub framing: Framing,
    /// Decrypt TLS connections with these secrets (`None`: TLS is not recognised).
    pub tls: Option<TlsSettings>,
}

impl TrackerConfig {
    /// The TLS settings while new connections are checked for TLS.
    #[inline]
    pub fn active_tls(&self) -> Option<&TlsSettings> {
        self.tls.as_ref().filter(|tls| tls.active())
    }
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            ports: Vec::new(),
            track_responses: false,
            expire_ns: DEFAULT_EXPIRE_NS,
            allow_incomplete: false,
            max_message_bytes: 5 << 20,
            max_flows: 100_000,
            max_buffered_bytes: 512 << 20,
            max_held_segments: DEFAULT_MAX_HELD_SEGMENTS,
            framing: Framing::Http,
            tls: None,
        }
    }
}
