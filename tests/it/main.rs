//! The integration test binary: every test drives the real `shadowtap` binary, with real
//! files, real middleware processes and (where a module needs one) real servers on loopback.

mod adversarial;
mod browser;
mod capture;
mod cli;
mod common;
mod diff;
mod es;
mod files;
mod h2;
mod h2_fixtures;
mod h2_records;
mod h2_replay;
mod kafka;
mod listeners;
mod live;
mod middleware;
mod modifiers;
mod multicore;
mod nginx;
mod output_http;
mod pfring;
mod pipeline;
mod recovery;
mod replay_extras;
mod tcp;
mod tls;
mod trust;
mod vxlan;
