//! Links every plugin crate into the binary.
//!
//! `inventory` registrations live in the plugin crates; a crate that nothing names is never
//! linked and its plugin silently disappears (dtolnay/inventory#50). Each line below names
//! one plugin crate, behind the cargo feature of the same name. Adding a plugin: a folder,
//! a feature and a dependency in `plugins/Cargo.toml`, a line here, a row in `README.md`.
#![deny(missing_docs)]

#[cfg(feature = "input-dummy")]
extern crate shadowtap_input_dummy;
#[cfg(feature = "input-file")]
extern crate shadowtap_input_file;
#[cfg(feature = "input-http")]
extern crate shadowtap_input_http;
#[cfg(feature = "input-kafka")]
extern crate shadowtap_input_kafka;
#[cfg(feature = "input-pcap")]
extern crate shadowtap_input_pcap;
#[cfg(feature = "input-pfring")]
extern crate shadowtap_input_pfring;
#[cfg(feature = "input-raw")]
extern crate shadowtap_input_raw;
#[cfg(feature = "input-tcp")]
extern crate shadowtap_input_tcp;
#[cfg(feature = "output-diff")]
extern crate shadowtap_output_diff;
#[cfg(feature = "output-es")]
extern crate shadowtap_output_es;
#[cfg(feature = "output-file")]
extern crate shadowtap_output_file;
#[cfg(feature = "output-http")]
extern crate shadowtap_output_http;
#[cfg(feature = "output-kafka")]
extern crate shadowtap_output_kafka;
#[cfg(feature = "output-null")]
extern crate shadowtap_output_null;
#[cfg(feature = "output-stdout")]
extern crate shadowtap_output_stdout;
#[cfg(feature = "output-tcp")]
extern crate shadowtap_output_tcp;

pub use shadowtap_api as api;
