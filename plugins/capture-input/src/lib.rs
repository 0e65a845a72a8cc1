//! `shadowtap-capture-input`: what the capture inputs (`input-raw`, `input-pcap`,
//! `input-pfring`) share around the pure capture core (`shadowtap-capture`).
//!
//! * [`Worker`] — frames in, engine messages out: decodes, feeds the tracker, expires on the
//!   frames' clock and counts every packet or message it cannot pass on in the ledger.
//! * [`RawCaptureArgs`] — the `--input-raw-*` flags every capture input applies.
//! * [`guard`] — `--capture-max-cpu`, `--capture-max-rss`, `--capture-sample`.
//! * [`keylog`] — TLS key log files (`--input-raw-tls-keylog`), read and tailed into the key
//!   store the capture core decrypts with.
//! * [`netns`] — opening capture sockets inside a named network namespace.
//! * [`file_input`] / [`file_reader`] — reading `.pcap`/`.pcapng`/gzip'd capture files, the
//!   input behind `--input-pcap` and `--input-raw FILE --input-raw-engine pcap_file`; a
//!   large file is read by one worker per core but one ([`parallel`]: frames [`shard`]ed by
//!   connection, messages put back into one worker's order by [`merge`]).
//!
//! Example: `shadowtap --input-pcap capture.pcap:80 --input-raw-track-response --output-stdout`.
#![deny(missing_docs)]

pub mod args;
pub mod file_input;
pub mod file_reader;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod keylog;
pub mod merge;
pub mod netns;
pub mod parallel;
pub mod shard;
pub mod worker;

pub use args::RawCaptureArgs;
pub use worker::{Delivery, ExpirySchedule, Outbox, Worker};
