//! `input-pcap`: reads capture files (`.pcap`, nanosecond pcap, `.pcapng`, any of them
//! gzip'd) and turns their packets into complete HTTP requests and responses with the
//! capture core (`shadowtap-capture`: TCP reassembly by sequence number, HTTP/1.x framing,
//! request/response pairing).
//!
//! Flags: `--input-pcap FILE[:PORT[,PORT]]` (repeatable; ports say which side is the server,
//! without them direction is inferred from request and status lines), `--input-pcap-bpf-filter
//! EXPR`, `--input-pcap-speed SPEED` (default: as fast as possible; `1x` original timing),
//! `--input-pcap-track-response`, `--input-pcap-workers N` (how many workers, each with its
//! own flow table, share a file: default one per available core but one (the engine and the
//! outputs need one), and 1 for a file under 8 MB and always 1 when `--input-pcap-speed`
//! paces the replay; one reader thread shards the frames by connection and the workers'
//! messages are merged back into frame order, so the output and the ledger are those of one worker, byte for byte, while no worker reaches the
//! flow-table or buffer limit, which each has in full), and the capture flags shared with
//! `input-raw`:
//! `--input-raw-track-response`, `--input-raw-expire`, `--input-raw-allow-incomplete`,
//! `--input-raw-protocol`, `--input-raw-max-flows`, `--input-raw-max-buffer`.
//!
//! Example: `shadowtap --input-pcap capture.pcap:80 --input-raw-track-response --output-stdout`.
#![deny(missing_docs)]

use shadowtap_api::pacing::{self, SpeedError};
use shadowtap_api::values::split_limit;
use shadowtap_api::{instance_label, register_input, CoreSettings, InputSpec, PluginError};
use shadowtap_capture_input::file_input::{compile_bpf, FileInput};
use shadowtap_capture_input::file_reader;
use shadowtap_capture_input::RawCaptureArgs;
use std::path::PathBuf;

/// Flags of `input-pcap`.
#[derive(clap::Args, Debug)]
pub struct InputPcapArgs {
    /// Read HTTP traffic from a capture file (.pcap, .pcapng, .gz); :PORT[,PORT] marks the server side
    #[arg(id = "input-pcap", long = "input-pcap", value_name = "FILE[:PORTS]")]
    pub input_pcap: Vec<String>,
    /// Only packets matching this BPF expression (libpcap syntax, e.g. "tcp port 80")
    #[arg(
        id = "input-pcap-bpf-filter",
        long = "input-pcap-bpf-filter",
        value_name = "EXPR"
    )]
    pub input_pcap_bpf_filter: Option<String>,
    /// Replay speed: max (default, as fast as possible), 1x (original timing), 2x, 50%
    #[arg(id = "input-pcap-speed", long = "input-pcap-speed", value_name = "SPEED", value_parser = parse_speed, default_value = "max")]
    pub input_pcap_speed: Speed,
    /// Also emit responses (same as --input-raw-track-response)
    #[arg(id = "input-pcap-track-response", long = "input-pcap-track-response")]
    pub input_pcap_track_response: bool,
    /// Workers sharing a file, each with its own flow table (default: cores - 1; 1 under 8 MB or with --input-pcap-speed); same output as 1
    #[arg(id = "input-pcap-workers", long = "input-pcap-workers", value_name = "N", value_parser = parse_workers)]
    pub input_pcap_workers: Option<usize>,
}

/// The most workers one file can be given.
const MAX_WORKERS: usize = 256;

fn parse_workers(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_WORKERS).contains(&n) => Ok(n),
        _ => Err(format!(
            "invalid worker count {text:?} (a number from 1 to {MAX_WORKERS})"
        )),
    }
}

/// A replay speed factor; `None` is as fast as possible.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Speed(pub Option<f64>);

fn parse_speed(text: &str) -> Result<Speed, SpeedError> {
    let trimmed = text.trim();
    if trimmed.eq_ignore_ascii_case("max") || trimmed == "0" {
        return Ok(Speed(None));
    }
    pacing::parse_speed(text)
        .map(|s| Speed(Some(s)))
        .map_err(|e| SpeedError {
            examples: "max, 1x, 2x, 50%",
            ..e
        })
}

/// `FILE`, `FILE:80` or `FILE:80,8080`.
fn split_ports(value: &str) -> Result<(PathBuf, Vec<u16>), String> {
    let Some((file, ports)) = value.rsplit_once(':') else {
        return Ok((PathBuf::from(value), Vec::new()));
    };
    if ports.is_empty() || !ports.chars().all(|c| c.is_ascii_digit() || c == ',') {
        return Ok((PathBuf::from(value), Vec::new()));
    }
    let ports = ports
        .split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("invalid port {p:?} in {value:?}"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok((PathBuf::from(file), ports))
}

fn build(args: InputPcapArgs, settings: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    let usage = |message: String| PluginError::usage("--input-pcap", message);
    if let Some(expression) = &args.input_pcap_bpf_filter {
        compile_bpf(expression, 1).map_err(|e| {
            PluginError::usage("--input-pcap-bpf-filter", format!("{expression:?}: {e}"))
        })?;
    }
    let raw: RawCaptureArgs = settings.shared_args()?;
    let track_responses = args.input_pcap_track_response || raw.input_raw_track_response;
    args.input_pcap
        .iter()
        .map(|value| {
            let (value, limit) = split_limit(value).map_err(usage)?;
            let (path, ports) = split_ports(&value).map_err(usage)?;
            file_reader::check(&path).map_err(usage)?;
            let tracker = raw.tracker_config(ports, track_responses, settings);
            Ok(InputSpec {
                label: instance_label("input-pcap", &value),
                plugin: Box::new(FileInput {
                    path,
                    tracker,
                    bpf: args.input_pcap_bpf_filter.clone(),
                    speed: args.input_pcap_speed.0,
                    workers: args.input_pcap_workers,
                }),
                backpressure: shadowtap_api::Backpressure::Wait,
                limit,
            })
        })
        .collect()
}

register_input! {
    name: "input-pcap",
    about: "Reads HTTP requests and responses from pcap/pcapng files (reassembled by TCP sequence)",
    args: InputPcapArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::{testkit, Kind};
    use shadowtap_capture::testutil::{write_pcap, Conversation};

    #[test]
    fn conformance() {
        testkit::check_conformance("input-pcap", &[]);
    }

    #[test]
    fn ports_split() {
        assert_eq!(
            split_ports("a.pcap").unwrap(),
            (PathBuf::from("a.pcap"), vec![])
        );
        assert_eq!(
            split_ports("a.pcap:80,8080").unwrap(),
            (PathBuf::from("a.pcap"), vec![80, 8080])
        );
        assert_eq!(
            split_ports("dir:x/a.pcap").unwrap(),
            (PathBuf::from("dir:x/a.pcap"), vec![])
        );
        assert!(split_ports("a.pcap:99999").is_err());
    }

    #[test]
    fn worker_counts() {
        assert_eq!(parse_workers("4"), Ok(4));
        assert_eq!(parse_workers("1"), Ok(1));
        assert!(parse_workers("0").is_err());
        assert!(parse_workers("-1").is_err());
        assert!(parse_workers("100000").is_err());
    }

    #[test]
    fn speeds() {
        assert_eq!(parse_speed("max"), Ok(Speed(None)));
        assert_eq!(parse_speed("1x"), Ok(Speed(Some(1.0))));
        assert_eq!(parse_speed("50%"), Ok(Speed(Some(0.5))));
        assert!(parse_speed("fast").is_err());
    }

    fn conversation_pcap(dir: &std::path::Path) -> PathBuf {
        let mut talk = Conversation::new("10.0.0.1:40000", "10.0.0.2:80");
        let mut frames: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut push = |segments: Vec<shadowtap_capture::testutil::Segment>| {
            for s in segments {
                let ts = 1_000_000_000 + frames.len() as i64 * 1000;
                frames.push((ts, s.ethernet()));
            }
        };
        push(talk.handshake());
        push(vec![talk.client(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n")]);
        push(vec![
            talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        ]);
        push(vec![
            talk.client(b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\n"),
            talk.client(b"abc"),
        ]);
        push(vec![talk.server(
            b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n",
        )]);
        let path = dir.join("talk.pcap");
        std::fs::write(&path, write_pcap(1, &frames)).unwrap();
        path
    }

    #[test]
    fn requests_and_responses_from_a_pcap() {
        let dir = tempfile::tempdir().unwrap();
        let path = conversation_pcap(dir.path());
        let value = format!("{}:80", path.display());
        let spec = testkit::build_inputs(
            "input-pcap",
            &["--input-pcap", &value, "--input-raw-track-response"],
        )
        .unwrap()
        .remove(0);
        let (messages, snapshot, result) = testkit::run_input(spec);
        result.unwrap();
        let kinds: Vec<Kind> = messages.iter().map(|m| m.kind()).collect();
        assert_eq!(
            kinds,
            [Kind::Request, Kind::Response, Kind::Request, Kind::Response]
        );
        assert_eq!(messages[0].id(), messages[1].id());
        assert_ne!(messages[0].id(), messages[2].id());
        assert_eq!(
            &messages[2].payload[..],
            b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        );
        assert_eq!(messages[0].endpoints.unwrap().dst.port(), 80);
        assert_eq!(snapshot.passed, 4);
    }

    #[test]
    fn requests_only_without_track_response_and_bpf_filters() {
        let dir = tempfile::tempdir().unwrap();
        let path = conversation_pcap(dir.path());
        let spec = testkit::build_inputs("input-pcap", &["--input-pcap", path.to_str().unwrap()])
            .unwrap()
            .remove(0);
        let (messages, _, _) = testkit::run_input(spec);
        assert_eq!(messages.len(), 2);
        let spec = testkit::build_inputs(
            "input-pcap",
            &[
                "--input-pcap",
                path.to_str().unwrap(),
                "--input-pcap-bpf-filter",
                "tcp port 8080",
            ],
        )
        .unwrap()
        .remove(0);
        let (messages, _, _) = testkit::run_input(spec);
        assert!(messages.is_empty());
        assert!(testkit::build_inputs(
            "input-pcap",
            &[
                "--input-pcap",
                path.to_str().unwrap(),
                "--input-pcap-bpf-filter",
                "tcp port"
            ]
        )
        .is_err());
    }
}
