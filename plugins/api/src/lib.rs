//! The shadowtap plugin API.
//!
//! Everything a plugin needs and nothing more: the [`Message`] and its GoReplay header
//! ([`Meta`]), the `.gor` and middleware wire codecs ([`wire`]), flag value grammars
//! ([`values`]), replay [`pacing`], the [`Input`] / [`Output`] traits with their contexts, the [`ledger`] of
//! counters, and the registry macros [`register_input!`] / [`register_output!`].
//!
//! A plugin is a crate under `plugins/` with a `#[derive(clap::Args)]` struct whose flags all
//! start with the plugin's name, and one registration:
//!
//! ```ignore
//! shadowtap_api::register_output! {
//!     name: "output-null",
//!     about: "Discards every message (for benchmarks and tests)",
//!     args: OutputNullArgs,
//!     build: build,
//! }
//! ```
#![deny(missing_docs)]

pub mod args;
pub mod ledger;
pub mod message;
pub mod meta;
pub mod pacing;
pub mod plugin;
pub mod registry;
pub mod testkit;
pub mod values;
pub mod wire;

pub use ledger::{Counters, KeyedValue, Ledger, Reason, Role, Throttle};
pub use message::{Endpoints, GrpcFacts, H2Facts, Message, TlsFacts};
pub use meta::{valid_id, Kind, Meta, MetaError, MAX_ID_LEN};
pub use pacing::{Pacer, RatePacer};
#[doc(hidden)]
pub use plugin::test_panic_point;
pub use plugin::{
    catch_panic, instance_label, Backpressure, Batch, CoreSettings, Gate, Inbox, Input,
    InputContext, InputSpec, Next, Output, OutputContext, OutputSpec, PluginError, Shutdown,
    ShutdownTrigger, Stopped, BATCH_MAX,
};
pub use registry::{Factory, PluginDescriptor};
pub use values::Limit;

#[doc(hidden)]
pub use {clap, inventory};

/// Nanoseconds since the Unix epoch, now.
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// 24 random lowercase hex characters, GoReplay's id for generated messages.
pub fn random_id() -> String {
    use std::collections::hash_map::RandomState;
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(24);
    while out.len() < 24 {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u64(SEQUENCE.fetch_add(1, Ordering::Relaxed));
        hasher.write_i64(now_ns());
        out.push_str(&format!("{:016x}", hasher.finish()));
    }
    out.truncate(24);
    out
}

/// FNV-1a, 32 bits: GoReplay's hash for consistent sampling (`--http-header-limiter`,
/// `--http-param-limiter`) and sticky routing (`--output-tcp-sticky`).
pub fn fnv32a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5u32, |h, &b| {
        (h ^ b as u32).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn fnv32a_reference_values() {
        assert_eq!(super::fnv32a(b""), 0x811c_9dc5);
        assert_eq!(super::fnv32a(b"a"), 0xe40c_292c);
        assert_eq!(super::fnv32a(b"1") % 100, 44);
        assert_eq!(super::fnv32a(b"3") % 100, 82);
    }
}
