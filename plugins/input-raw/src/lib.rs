//! `input-raw`: live capture of HTTP traffic from network interfaces (GoReplay's
//! `--input-raw`), reassembled by TCP sequence number and framed by the capture core.
//!
//! Engines (`--input-raw-engine`): `af_packet` (default): `--input-raw-workers N` sockets per
//! interface, each with a TPACKET_V3 memory-mapped ring (`--input-raw-buffer-size`), joined in
//! one PACKET_FANOUT group hashed by flow, one thread and one flow table per socket (shared
//! nothing); `libpcap`: one handle per interface; `pcap_file`: `--input-raw capture.pcap:80`
//! reads a file through input-pcap; `vxlan`: mirrored traffic arriving as VXLAN over UDP (AWS
//! VPC Traffic Mirroring, Azure vTAP): one UDP socket on `--input-raw-vxlan-port` (default
//! 4789, 0 means 4789) bound to the HOST of `--input-raw HOST:PORTS` (default 0.0.0.0; an
//! interface name binds to that device), whose PORTS are the HTTP ports inside the tunnel;
//! `--input-raw-vxlan-vni` (repeatable) keeps only positive VNIs given and drops negative ones.
//! It takes whole datagrams (up to 64 KiB), the kernel's receive times and drop counts
//! (SO_RXQ_OVFL), and stops within 100 ms of shutdown.
//!
//! Values: `[HOST]:PORT[,PORT]` (empty host, `any`, `0.0.0.0`: every interface that is up),
//! `IFACE:PORT`, `ADDRESS:PORT`, `netns:NAME/IFACE:PORT` (captures inside network namespace
//! NAME: the thread enters it only to open the socket). Other flags: `--input-raw-bpf-filter`
//! (replaces GoReplay's automatic filter built from ports and interface addresses),
//! `--input-raw-promisc`, `--input-raw-snaplen`, `--input-raw-override-snaplen`,
//! `--input-raw-ignore-interface`, `--input-raw-vlan`, `--input-raw-vlan-vid`,
//! `--input-raw-realip-header`, `--input-raw-buffer-timeout`, and the shared `--input-raw-*`
//! and `--capture-*` flags (track-response, expire, allow-incomplete, protocol
//! http|http-headers|binary, load guard).
//!
//! Example: `shadowtap --input-raw eth0:80 --input-raw-track-response --output-file traffic.gor`,
//! or for a mirror session `shadowtap --input-raw :80 --input-raw-engine vxlan
//! --input-raw-vxlan-vni 42 --output-stdout`.
//! Capturing needs root or `setcap cap_net_raw,cap_net_admin=eip` on the binary; a missing
//! permission fails at start with that advice. Live capture never waits: when the pipeline is
//! full, messages are dropped and counted, as are kernel drops.
#![deny(missing_docs)]

mod address;
mod afpacket;
mod bpf;
mod live;
mod vxlan;

use address::{Interface, Target};
use afpacket::{Ring, RingSize, SocketConfig};
use live::{LiveInput, Source};
use shadowtap_api::values::{duration_value, size_value, split_limit};
use shadowtap_api::{instance_label, register_input, CoreSettings, InputSpec, PluginError};
use shadowtap_capture::TrackerConfig;
use shadowtap_capture_input::guard::LoadGuard;
use shadowtap_capture_input::netns;
use shadowtap_capture_input::RawCaptureArgs;
use std::time::Duration;

/// Flags of `input-raw`.
#[derive(clap::Args, Debug)]
pub struct InputRawArgs {
    /// Capture HTTP on [HOST]:PORT[,PORT], IFACE:PORT or netns:NAME/IFACE:PORT (or a .pcap file)
    #[arg(id = "input-raw", long = "input-raw", value_name = "[HOST]:PORTS")]
    pub input_raw: Vec<String>,
    /// Capture engine: af_packet (TPACKET_V3 ring + fanout), libpcap, pcap_file, vxlan (mirrored
    /// traffic over UDP: AWS VPC Traffic Mirroring, Azure vTAP)
    #[arg(id = "input-raw-engine", long = "input-raw-engine", value_parser = ["af_packet", "raw_socket", "libpcap", "pcap_file", "vxlan"], default_value = "af_packet")]
    pub input_raw_engine: String,
    /// vxlan engine: the UDP port receiving VXLAN (0 means 4789)
    #[arg(id = "input-raw-vxlan-port", long = "input-raw-vxlan-port", default_value_t = vxlan::DEFAULT_PORT, value_name = "PORT")]
    pub input_raw_vxlan_port: u16,
    /// vxlan engine: VNIs to keep (positive) or to drop (negative); repeatable
    #[arg(id = "input-raw-vxlan-vni", long = "input-raw-vxlan-vni", value_parser = vxlan::vni_value, allow_negative_numbers = true, value_name = "VNI")]
    pub input_raw_vxlan_vni: Vec<i64>,
    /// af_packet: capture sockets (and threads, and flow tables) per interface [default: cores]
    #[arg(id = "input-raw-workers", long = "input-raw-workers", value_name = "N")]
    pub input_raw_workers: Option<usize>,
    /// Kernel buffer per socket: the af_packet ring size, or libpcap's buffer
    #[arg(id = "input-raw-buffer-size", long = "input-raw-buffer-size", value_parser = size_value, default_value = "32mb", value_name = "SIZE")]
    pub input_raw_buffer_size: u64,
    /// libpcap read timeout
    #[arg(id = "input-raw-buffer-timeout", long = "input-raw-buffer-timeout", value_parser = duration_value, default_value = "100ms", value_name = "DURATION")]
    pub input_raw_buffer_timeout: Duration,
    /// BPF filter replacing the automatic one built from ports and interface addresses
    #[arg(
        id = "input-raw-bpf-filter",
        long = "input-raw-bpf-filter",
        value_name = "EXPR"
    )]
    pub input_raw_bpf_filter: Option<String>,
    /// Promiscuous mode (the automatic filter then matches any host)
    #[arg(id = "input-raw-promisc", long = "input-raw-promisc")]
    pub input_raw_promisc: bool,
    /// libpcap snapshot length (default: 65535)
    #[arg(
        id = "input-raw-snaplen",
        long = "input-raw-snaplen",
        value_name = "BYTES"
    )]
    pub input_raw_snaplen: Option<u32>,
    /// libpcap snapshot length of 64 KiB + 200 (GoReplay's flag; the default is already whole packets)
    #[arg(id = "input-raw-override-snaplen", long = "input-raw-override-snaplen")]
    pub input_raw_override_snaplen: bool,
    /// Interfaces to skip when capturing on all of them (repeatable)
    #[arg(
        id = "input-raw-ignore-interface",
        long = "input-raw-ignore-interface",
        value_name = "IFACE"
    )]
    pub input_raw_ignore_interface: Vec<String>,
    /// 802.1Q traffic: prefix the automatic filter with "vlan and"
    #[arg(id = "input-raw-vlan", long = "input-raw-vlan")]
    pub input_raw_vlan: bool,
    /// Only these VLAN ids (repeatable)
    #[arg(
        id = "input-raw-vlan-vid",
        long = "input-raw-vlan-vid",
        value_name = "ID"
    )]
    pub input_raw_vlan_vid: Vec<u16>,
    /// Set this request header to the client's address (e.g. X-Real-IP)
    #[arg(
        id = "input-raw-realip-header",
        long = "input-raw-realip-header",
        value_name = "NAME"
    )]
    pub input_raw_realip_header: Option<String>,
}

/// Everything one capture needs, resolved from the flags.
struct Plan<'a> {
    args: &'a InputRawArgs,
    raw: &'a RawCaptureArgs,
    settings: &'a CoreSettings,
    guard: Option<LoadGuard>,
}

fn build(args: InputRawArgs, settings: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    if args.input_raw.is_empty() {
        return Ok(Vec::new());
    }
    let raw: RawCaptureArgs = settings.shared_args()?;
    let guard_config = raw.guard();
    let plan = Plan {
        args: &args,
        raw: &raw,
        settings,
        guard: guard_config
            .is_active()
            .then(|| LoadGuard::start(guard_config)),
    };
    let mut specs = Vec::new();
    for (index, value) in args.input_raw.iter().enumerate() {
        let (value, limit) =
            split_limit(value).map_err(|e| PluginError::usage("--input-raw", e))?;
        let mut built = plan.capture(index, &value)?;
        for spec in &mut built {
            spec.limit = limit;
        }
        specs.extend(built);
    }
    Ok(specs)
}

impl Plan<'_> {
    /// The tracker settings for one capture whose server ports are `ports`.
    fn tracker_config(&self, ports: Vec<u16>) -> TrackerConfig {
        let track_responses = self.raw.input_raw_track_response;
        self.raw
            .tracker_config(ports, track_responses, self.settings)
    }

    fn capture(&self, index: usize, value: &str) -> Result<Vec<InputSpec>, PluginError> {
        if self.args.input_raw_engine == "pcap_file" || address::as_capture_file(value).is_some() {
            return self.capture_file(value);
        }
        let usage = |e: String| PluginError::usage("--input-raw", e);
        let target = address::parse(value).map_err(usage)?;
        if self.args.input_raw_engine == "vxlan" {
            return self.capture_vxlan(value, &target);
        }
        let interfaces = netns::within(target.netns.as_deref(), || {
            address::select(&target.host, &self.args.input_raw_ignore_interface)
        })
        .and_then(|selected| selected)
        .map_err(|e| PluginError::usage("--input-raw", format!("{value:?}: {e}")))?;
        let mut specs = Vec::new();
        for (number, interface) in interfaces.iter().enumerate() {
            let group = fanout_group(index, number);
            specs.extend(self.capture_interface(value, &target, interface, group)?);
        }
        Ok(specs)
    }

    /// GoReplay's spelling for a file: `--input-raw capture.pcap:80 --input-raw-engine pcap_file`.
    fn capture_file(&self, value: &str) -> Result<Vec<InputSpec>, PluginError> {
        let (file, ports) = match value.rsplit_once(':') {
            Some((file, ports)) if ports.chars().all(|c| c.is_ascii_digit() || c == ',') => {
                (file, ports)
            }
            _ => (value, ""),
        };
        let ports: Vec<u16> = ports.split(',').filter_map(|p| p.parse().ok()).collect();
        let config = self.tracker_config(ports);
        let input = shadowtap_capture_input::file_input::file_input(
            file.into(),
            config,
            self.args.input_raw_bpf_filter.clone(),
        )
        .map_err(|e| PluginError::usage("--input-raw", e))?;
        Ok(vec![InputSpec {
            label: instance_label("input-raw", value),
            plugin: input,
            backpressure: shadowtap_api::Backpressure::Wait,
            limit: None,
        }])
    }

    /// `--input-raw-engine vxlan`: one UDP socket on the VXLAN port, bound to HOST (in the
    /// namespace, when given); PORTS are the HTTP ports inside the tunnel.
    fn capture_vxlan(&self, value: &str, target: &Target) -> Result<Vec<InputSpec>, PluginError> {
        let (address, device) = vxlan::bind_target(&target.host, self.args.input_raw_vxlan_port);
        let socket = netns::within(target.netns.as_deref(), || {
            vxlan::VxlanSocket::open(address, device.as_deref(), self.args.input_raw_buffer_size)
        })
        .and_then(|opened| opened)
        .map_err(|e| PluginError::Runtime(format!("--input-raw {value:?}: {e}")))?;
        if self.args.input_raw_bpf_filter.is_some() {
            tracing::warn!("--input-raw-bpf-filter does not apply to the vxlan engine (the --input-raw ports filter inside the tunnel)");
        }
        if let Ok(bound) = socket.local_addr() {
            tracing::debug!(%bound, device = ?device, "vxlan socket");
        }
        let label = format!("{value} vxlan {address}");
        Ok(vec![InputSpec {
            label: instance_label("input-raw", &label),
            plugin: Box::new(vxlan::VxlanInput {
                socket,
                filter: vxlan::VniFilter::new(&self.args.input_raw_vxlan_vni),
                tracker: self.tracker_config(target.ports.clone()),
                realip_header: self.args.input_raw_realip_header.clone(),
                guard: self.guard.clone(),
            }),
            backpressure: shadowtap_api::Backpressure::Drop,
            limit: None,
        }])
    }

    fn capture_interface(
        &self,
        value: &str,
        target: &Target,
        interface: &Interface,
        group: u16,
    ) -> Result<Vec<InputSpec>, PluginError> {
        let expression = self.filter_expression(target, interface);
        bpf::compile(&expression, 1)
            .map_err(|e| PluginError::usage("--input-raw-bpf-filter", e))?;
        tracing::debug!(interface = %interface.name, filter = %expression, "capture filter");
        let workers = match self.args.input_raw_engine.as_str() {
            "libpcap" => 1,
            _ => self
                .args
                .input_raw_workers
                .unwrap_or_else(default_workers)
                .max(1),
        };
        (0..workers)
            .map(|worker| {
                let source = netns::within(target.netns.as_deref(), || {
                    self.open_source(interface, &expression, group)
                })
                .and_then(|opened| opened)
                .map_err(|e| {
                    PluginError::Runtime(format!(
                        "--input-raw {value:?} on {}: {e}",
                        interface.name
                    ))
                })?;
                let label = format!("{} {}#{worker}", value, interface.name);
                Ok(InputSpec {
                    label: instance_label("input-raw", &label),
                    plugin: Box::new(LiveInput {
                        source,
                        tracker: self.tracker_config(target.ports.clone()),
                        realip_header: self.args.input_raw_realip_header.clone(),
                        guard: self.guard.clone(),
                        kernel_drops_seen: 0,
                    }),
                    backpressure: shadowtap_api::Backpressure::Drop,
                    limit: None,
                })
            })
            .collect()
    }

    fn filter_expression(&self, target: &Target, interface: &Interface) -> String {
        if let Some(expression) = &self.args.input_raw_bpf_filter {
            return expression.clone();
        }
        let wildcard = matches!(target.host.as_str(), "" | "any" | "0.0.0.0" | "::")
            || target.host == interface.name;
        let hosts = if wildcard {
            interface.addresses.clone()
        } else {
            target
                .host
                .parse()
                .map(|a| vec![a])
                .unwrap_or_else(|_| interface.addresses.clone())
        };
        bpf::automatic(&bpf::FilterSpec {
            ports: &target.ports,
            hosts: &hosts,
            track_responses: self.raw.input_raw_track_response,
            promisc: self.args.input_raw_promisc,
            vlan: self.args.input_raw_vlan,
            vlan_ids: &self.args.input_raw_vlan_vid,
        })
    }

    fn open_source(
        &self,
        interface: &Interface,
        expression: &str,
        group: u16,
    ) -> Result<Source, String> {
        if self.args.input_raw_engine == "libpcap" {
            return self.open_libpcap(interface, expression).map(Source::Pcap);
        }
        let program = bpf::compile(expression, 1)?;
        let ring = Ring::open(&SocketConfig {
            interface: &interface.name,
            ring: RingSize::of_total(self.args.input_raw_buffer_size as usize),
            filter: Some(&program),
            fanout_group: group,
            promisc: self.args.input_raw_promisc,
        })?;
        Ok(Source::Ring {
            ring,
            skip_outgoing: interface.loopback,
        })
    }

    fn open_libpcap(
        &self,
        interface: &Interface,
        expression: &str,
    ) -> Result<pcap::Capture<pcap::Active>, String> {
        let snaplen = match (
            self.args.input_raw_snaplen,
            self.args.input_raw_override_snaplen,
        ) {
            (_, true) => 65536 + 200,
            (Some(snaplen), false) => snaplen as i32,
            (None, false) => 65535,
        };
        let mut capture = pcap::Capture::from_device(interface.name.as_str())
            .and_then(|c| {
                c.promisc(self.args.input_raw_promisc)
                    .snaplen(snaplen)
                    .timeout(self.args.input_raw_buffer_timeout.as_millis().max(1) as i32)
                    .buffer_size(self.args.input_raw_buffer_size.min(i32::MAX as u64) as i32)
                    .immediate_mode(true)
                    .open()
            })
            .map_err(|e| libpcap_error(&interface.name, e))?;
        capture
            .filter(expression, true)
            .map_err(|e| format!("BPF filter {expression:?}: {e}"))?;
        capture
            .setnonblock()
            .map_err(|e| format!("libpcap cannot go non-blocking on {}: {e}", interface.name))
    }
}

fn libpcap_error(interface: &str, error: pcap::Error) -> String {
    let text = error.to_string();
    if text.contains("permission") || text.contains("Operation not permitted") {
        format!("libpcap cannot open {interface}: {text} (needs root or CAP_NET_RAW: setcap cap_net_raw,cap_net_admin=eip $(command -v shadowtap))")
    } else {
        format!("libpcap cannot open {interface}: {text}")
    }
}

/// A fanout group id unique to this process, input value and interface.
fn fanout_group(value_index: usize, interface_number: usize) -> u16 {
    let base = std::process::id() as u16;
    base.wrapping_add((value_index * 64 + interface_number) as u16)
}

fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

register_input! {
    name: "input-raw",
    about: "Captures HTTP live from interfaces (AF_PACKET ring + fanout, libpcap, or a pcap file)",
    args: InputRawArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use shadowtap_api::testkit;

    #[test]
    fn conformance() {
        testkit::check_conformance("input-raw", &[]);
    }

    #[test]
    fn bad_values_are_usage_errors() {
        let err = testkit::build_error("input-raw", &["--input-raw", "eth0"]);
        assert!(err.contains("expected [HOST]:PORT"), "{err}");
        let err = testkit::build_error("input-raw", &["--input-raw", "no-such-if0:80"]);
        assert!(err.contains("no-such-if0"), "{err}");
    }

    #[test]
    fn vxlan_flags_are_checked() {
        let vxlan = ["--input-raw", ":80", "--input-raw-engine", "vxlan"];
        for bad in ["x", "1.5", "16777216"] {
            let args = [&vxlan[..], &["--input-raw-vxlan-vni", bad]].concat();
            let err = testkit::build_error("input-raw", &args);
            assert!(err.contains("--input-raw-vxlan-vni"), "{err}");
        }
        let args = [&vxlan[..], &["--input-raw-vxlan-port", "70000"]].concat();
        let err = testkit::build_error("input-raw", &args);
        assert!(err.contains("--input-raw-vxlan-port"), "{err}");
    }
}
