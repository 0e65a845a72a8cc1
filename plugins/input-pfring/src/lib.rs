//! `input-pfring`: live capture with ntop's PF_RING. `--input-pfring-rings N` rings per
//! interface, joined in one PF_RING cluster that balances packets per flow, each ring with its
//! own consumer thread and its own flow table (the capture core `shadowtap-capture`: TCP
//! reassembly, HTTP/1.x framing, request/response pairing) — shared nothing.
//!
//! Flags: `--input-pfring IFACE[:PORT[,PORT]]` (repeatable; also `netns:NAME/IFACE:PORT` to open
//! the rings inside the network namespace `/var/run/netns/NAME`; PF_RING device syntax such as
//! `eth0@1` or `zc:eth0` passes through), `--input-pfring-rings N` (default 1),
//! `--input-pfring-cluster-id N` (default: derived from the process id; the Nth
//! `--input-pfring` uses id + N), `--input-pfring-cluster-type per-flow|per-flow-2-tuple|
//! per-flow-4-tuple|per-flow-5-tuple|per-flow-tcp-5-tuple|round-robin` (default per-flow;
//! round-robin splits connections, so it is accepted only with `--input-raw-protocol
//! http-headers`), `--input-pfring-bpf-filter EXPR` (default with ports: `tcp port P or …`),
//! `--input-pfring-promisc`, `--input-pfring-snaplen N`, `--input-pfring-watermark N`,
//! `--input-pfring-poll-duration DURATION`, `--input-pfring-lib PATH` (default `libpfring.so`,
//! then `/usr/local/lib/libpfring.so`), and the shared capture flags (`--input-raw-track-response`,
//! `--input-raw-protocol`, `--input-raw-expire`, …). Rings are opened read-only
//! (`recv_only_mode`), both directions, always timestamped.
//!
//! Example: `shadowtap --input-pfring eth1:80 --input-pfring-rings 4 --input-raw-track-response
//! --output-file requests.gor`.
//!
//! Each ring is its own input instance, labelled `input-pfring[eth1:80#0]` … `#3` in logs and
//! the ledger, so the summary shows messages, packets and drops per ring. Kernel drops
//! (`pfring_stats`) are read every second and at the end and go to the ledger as `kernel drop`;
//! a full pipeline drops and counts (`queue full`) rather than stalling the ring. A ring that
//! fails (`pfring_recv` < 0) ends that input with a log line.
//!
//! `libpfring.so` is loaded at run time (`libloading`), through our own declarations of the
//! dozen `pfring_*` functions used, against PF_RING 8's `pfring.h` (the `pfring-sys` crate's 2018
//! bindings do not compile any more). Without PF_RING, or without its kernel module, the run
//! stops at start-up with how to install it and the `--input-raw` alternative.
//!
//! Testing gap: PF_RING's kernel module cannot be loaded on the machines that build this
//! project, so the plugin is tested end to end against a test double, `tests-support/
//! fake_pfring.c`: a `libpfring.so` with the same C API that serves a real pcap, distributes
//! it over cluster members per flow or round-robin, and reports configurable drops. The real
//! library has not been exercised.
#![deny(missing_docs)]

mod ffi;

use ffi::{cluster, Lib, LoadError, Recv, Ring};
use shadowtap_api::values::{duration_value, split_limit};
use shadowtap_api::{
    instance_label, register_input, CoreSettings, Input, InputContext, InputSpec, Limit,
    PluginError, Reason,
};
use shadowtap_capture::{linktype, Framing, TrackerConfig};
use shadowtap_capture_input::{RawCaptureArgs, Worker};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where `libpfring.so` is looked for without `--input-pfring-lib`.
const DEFAULT_LIBRARIES: [&str; 2] = ["libpfring.so", "/usr/local/lib/libpfring.so"];
/// PF_RING's largest capture length (`MAX_CAPLEN` in pfring.h).
const DEFAULT_SNAPLEN: u32 = 65600;
/// How often `pfring_stats` is read.
const STATS_EVERY: Duration = Duration::from_secs(1);
/// How long a consumer sleeps when its ring is empty.
const IDLE_SLEEP: Duration = Duration::from_micros(500);
/// Rings per interface at most.
const MAX_RINGS: usize = 64;

/// Flags of `input-pfring`.
#[derive(clap::Args, Debug)]
pub struct InputPfringArgs {
    /// Capture HTTP traffic on an interface with PF_RING (netns:NAME/IFACE inside a network namespace); :PORT[,PORT] marks the server side
    #[arg(
        id = "input-pfring",
        long = "input-pfring",
        value_name = "IFACE[:PORTS]"
    )]
    pub input_pfring: Vec<String>,
    /// Rings per interface, each with its own consumer thread and flow table, joined in one PF_RING cluster
    #[arg(
        id = "input-pfring-rings",
        long = "input-pfring-rings",
        default_value_t = 1,
        value_name = "N"
    )]
    pub input_pfring_rings: usize,
    /// PF_RING cluster id of the first --input-pfring (the next ones use id+1, id+2, …); default: derived from the process id
    #[arg(
        id = "input-pfring-cluster-id",
        long = "input-pfring-cluster-id",
        value_name = "N"
    )]
    pub input_pfring_cluster_id: Option<u32>,
    /// How the cluster balances packets over rings; round-robin splits connections and needs --input-raw-protocol http-headers
    #[arg(id = "input-pfring-cluster-type", long = "input-pfring-cluster-type", value_parser = ["per-flow", "per-flow-2-tuple", "per-flow-4-tuple", "per-flow-5-tuple", "per-flow-tcp-5-tuple", "round-robin"], default_value = "per-flow")]
    pub input_pfring_cluster_type: String,
    /// Kernel BPF filter (libpcap syntax); default with ports: "tcp port P or tcp port Q"
    #[arg(
        id = "input-pfring-bpf-filter",
        long = "input-pfring-bpf-filter",
        value_name = "EXPR"
    )]
    pub input_pfring_bpf_filter: Option<String>,
    /// Put the interface in promiscuous mode
    #[arg(id = "input-pfring-promisc", long = "input-pfring-promisc")]
    pub input_pfring_promisc: bool,
    /// Bytes captured per packet
    #[arg(id = "input-pfring-snaplen", long = "input-pfring-snaplen", default_value_t = DEFAULT_SNAPLEN, value_name = "BYTES")]
    pub input_pfring_snaplen: u32,
    /// Packets queued before a waiting poll() returns (PF_RING's default: 128)
    #[arg(
        id = "input-pfring-watermark",
        long = "input-pfring-watermark",
        value_name = "N"
    )]
    pub input_pfring_watermark: Option<u16>,
    /// Timeout of PF_RING's passive wait (PF_RING's default: 500ms)
    #[arg(id = "input-pfring-poll-duration", long = "input-pfring-poll-duration", value_parser = duration_value, value_name = "DURATION")]
    pub input_pfring_poll_duration: Option<Duration>,
    /// libpfring.so to load (default: libpfring.so from the library path, then /usr/local/lib/libpfring.so)
    #[arg(
        id = "input-pfring-lib",
        long = "input-pfring-lib",
        value_name = "PATH"
    )]
    pub input_pfring_lib: Option<String>,
}

/// One `--input-pfring` value.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    netns: Option<String>,
    device: String,
    ports: Vec<u16>,
}

/// `IFACE`, `IFACE:80,8080`, `netns:NAME/IFACE:80`.
fn parse_target(value: &str) -> Result<Target, String> {
    let (netns, rest) = match value.strip_prefix("netns:") {
        Some(rest) => {
            let (name, rest) = rest
                .split_once('/')
                .ok_or_else(|| format!("{value:?}: expected netns:NAME/IFACE[:PORTS]"))?;
            if name.is_empty() {
                return Err(format!("{value:?}: empty namespace name"));
            }
            (Some(name.to_string()), rest)
        }
        None => (None, value),
    };
    let (device, ports) = match rest.rsplit_once(':') {
        Some((device, ports))
            if !ports.is_empty() && ports.chars().all(|c| c.is_ascii_digit() || c == ',') =>
        {
            let ports = ports
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<u16>()
                        .ok()
                        .filter(|&p| p > 0)
                        .ok_or_else(|| format!("invalid port {p:?} in {value:?}"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            (device, ports)
        }
        _ => (rest, Vec::new()),
    };
    if device.is_empty() {
        return Err(format!("{value:?}: no interface"));
    }
    Ok(Target {
        netns,
        device: device.to_string(),
        ports,
    })
}

fn cluster_type(name: &str) -> i32 {
    match name {
        "round-robin" => cluster::ROUND_ROBIN,
        "per-flow-2-tuple" => cluster::PER_FLOW_2_TUPLE,
        "per-flow-4-tuple" => cluster::PER_FLOW_4_TUPLE,
        "per-flow-5-tuple" => cluster::PER_FLOW_5_TUPLE,
        "per-flow-tcp-5-tuple" => cluster::PER_FLOW_TCP_5_TUPLE,
        _ => cluster::PER_FLOW,
    }
}

/// `tcp port P or tcp port Q`, or nothing without ports.
fn port_filter(ports: &[u16]) -> Option<String> {
    (!ports.is_empty()).then(|| {
        ports
            .iter()
            .map(|p| format!("tcp port {p}"))
            .collect::<Vec<_>>()
            .join(" or ")
    })
}

const INSTALL_HINT: &str = "PF_RING is not in Debian or Ubuntu: install ntop's packages (add \
the apt repository from https://packages.ntop.org, then `apt-get install pfring pfring-dkms` and \
load the kernel module with `modprobe pf_ring`; --input-pfring-lib PATH if libpfring.so is \
elsewhere). Without PF_RING, `--input-raw IFACE:PORT` captures the same way on AF_PACKET \
(sockets joined in a fanout group per flow, --input-raw-workers N)";

fn load_library(args: &InputPfringArgs) -> Result<Arc<Lib>, PluginError> {
    let candidates: Vec<String> = match &args.input_pfring_lib {
        Some(path) => vec![path.clone()],
        None => DEFAULT_LIBRARIES.iter().map(|s| s.to_string()).collect(),
    };
    let lib = Lib::load(&candidates).map_err(|e| match e {
        LoadError::NotFound(tried) => {
            let tried: Vec<String> = tried
                .iter()
                .map(|(path, error)| format!("{path}: {error}"))
                .collect();
            PluginError::usage(
                "--input-pfring",
                format!(
                    "PF_RING is not installed: cannot load libpfring.so ({}). {INSTALL_HINT}",
                    tried.join("; ")
                ),
            )
        }
        LoadError::MissingSymbol {
            path,
            symbol,
            error,
        } => PluginError::usage(
            "--input-pfring-lib",
            format!("{path} is not a usable libpfring (PF_RING 8 or later): no {symbol}: {error}"),
        ),
    })?;
    Ok(lib)
}

/// Explains a failed `pfring_open`.
fn open_error(device: &str, error: &std::io::Error) -> PluginError {
    let flag = "--input-pfring";
    match error.raw_os_error() {
        Some(libc::EPERM) | Some(libc::EACCES) => PluginError::Runtime(format!(
            "{flag}: pfring_open({device}): {error}: capture needs root or CAP_NET_RAW and \
             CAP_NET_ADMIN (setcap cap_net_raw,cap_net_admin=eip on the binary)"
        )),
        Some(libc::ENODEV) | Some(libc::ENXIO) => PluginError::usage(
            flag,
            format!("pfring_open({device}): {error}: no such interface here"),
        ),
        Some(libc::EAFNOSUPPORT) | None | Some(0) => PluginError::usage(
            flag,
            format!(
                "pfring_open({device}) failed ({error}): the PF_RING kernel module is not \
                 loaded (libpfring.so is there, /proc/net/pf_ring is not). {INSTALL_HINT}"
            ),
        ),
        _ if !std::path::Path::new("/proc/net/pf_ring").exists() => PluginError::usage(
            flag,
            format!(
                "pfring_open({device}) failed ({error}); the PF_RING kernel module does not \
                 seem to be loaded (no /proc/net/pf_ring). {INSTALL_HINT}"
            ),
        ),
        _ => PluginError::usage(flag, format!("pfring_open({device}): {error}")),
    }
}

/// How one ring is set up.
struct RingSetup<'a> {
    device: &'a str,
    snaplen: u32,
    flags: u32,
    cluster: Option<(u32, i32)>,
    bpf: Option<(&'a str, bool)>,
    watermark: Option<u16>,
    poll_ms: Option<u32>,
}

fn open_ring(lib: &Arc<Lib>, setup: &RingSetup<'_>) -> Result<Ring, PluginError> {
    let mut ring = Ring::open(lib, setup.device, setup.snaplen, setup.flags)
        .map_err(|e| open_error(setup.device, &e))?;
    let fail = |e: String| PluginError::Runtime(format!("--input-pfring {}: {e}", setup.device));
    ring.set_application_name("shadowtap").map_err(fail)?;
    ring.set_direction(ffi::RX_AND_TX_DIRECTION).map_err(fail)?;
    ring.set_socket_mode(ffi::RECV_ONLY_MODE).map_err(fail)?;
    if let Some((id, kind)) = setup.cluster {
        ring.set_cluster(id, kind).map_err(|e| {
            fail(format!(
                "{e}: cannot join cluster {id} (in use by another program with another cluster \
                 type? choose --input-pfring-cluster-id)"
            ))
        })?;
    }
    if let Some((filter, explicit)) = setup.bpf {
        if let Err(e) = ring.set_bpf_filter(filter) {
            if explicit {
                return Err(PluginError::usage(
                    "--input-pfring-bpf-filter",
                    format!("{filter:?}: {e}"),
                ));
            }
            tracing::warn!(
                "--input-pfring {}: cannot set the filter {filter:?} ({e}); capturing unfiltered",
                setup.device
            );
        }
    }
    if let Some(watermark) = setup.watermark {
        ring.set_poll_watermark(watermark).map_err(fail)?;
    }
    if let Some(ms) = setup.poll_ms {
        ring.set_poll_duration(ms).map_err(fail)?;
    }
    Ok(ring)
}

fn build(args: InputPfringArgs, settings: &CoreSettings) -> Result<Vec<InputSpec>, PluginError> {
    if args.input_pfring.is_empty() {
        return Ok(Vec::new());
    }
    let raw: RawCaptureArgs = settings.shared_args()?;
    let rings = args.input_pfring_rings;
    if rings == 0 || rings > MAX_RINGS {
        return Err(PluginError::usage(
            "--input-pfring-rings",
            format!("{rings}: expected 1 to {MAX_RINGS}"),
        ));
    }
    let kind = cluster_type(&args.input_pfring_cluster_type);
    if kind == cluster::ROUND_ROBIN && raw.framing() != Framing::HttpHeaders {
        return Err(PluginError::usage(
            "--input-pfring-cluster-type",
            "round-robin gives each ring a share of every connection's packets, which cannot \
             be reassembled; use it only with --input-raw-protocol http-headers, or a per-flow \
             cluster type",
        ));
    }
    if args.input_pfring_snaplen < 64 {
        return Err(PluginError::usage(
            "--input-pfring-snaplen",
            format!("{}: too small for HTTP", args.input_pfring_snaplen),
        ));
    }
    let targets = args
        .input_pfring
        .iter()
        .map(|value| {
            let (value, limit) =
                split_limit(value).map_err(|e| PluginError::usage("--input-pfring", e))?;
            let target =
                parse_target(&value).map_err(|e| PluginError::usage("--input-pfring", e))?;
            Ok((value, limit, target))
        })
        .collect::<Result<Vec<_>, PluginError>>()?;
    let lib = load_library(&args)?;
    let mut flags = ffi::PF_RING_TIMESTAMP;
    if args.input_pfring_promisc {
        flags |= ffi::PF_RING_PROMISC;
    }
    let base_cluster = args
        .input_pfring_cluster_id
        .unwrap_or_else(|| 1 + std::process::id() % 60_000);
    let poll_ms = args
        .input_pfring_poll_duration
        .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX));
    let mut specs = Vec::new();
    for (index, (value, limit, target)) in targets.into_iter().enumerate() {
        let cluster_id = base_cluster.wrapping_add(index as u32);
        let joins_cluster = rings > 1 || args.input_pfring_cluster_id.is_some();
        let auto_filter = port_filter(&target.ports);
        let bpf = match (&args.input_pfring_bpf_filter, &auto_filter) {
            (Some(explicit), _) => Some((explicit.as_str(), true)),
            (None, Some(auto)) => Some((auto.as_str(), false)),
            (None, None) => None,
        };
        let setup = RingSetup {
            device: &target.device,
            snaplen: args.input_pfring_snaplen,
            flags,
            cluster: joins_cluster.then_some((cluster_id, kind)),
            bpf,
            watermark: args.input_pfring_watermark,
            poll_ms,
        };
        let opened: Vec<Ring> =
            shadowtap_capture_input::netns::within(target.netns.as_deref(), || {
                (0..rings)
                    .map(|_| open_ring(&lib, &setup))
                    .collect::<Result<Vec<Ring>, PluginError>>()
            })
            .map_err(|e| PluginError::usage("--input-pfring", e))??;
        let version = lib.version().unwrap_or_else(|| "(version unknown)".into());
        let cluster_text = if joins_cluster {
            format!(
                " in PF_RING cluster {cluster_id} ({})",
                args.input_pfring_cluster_type
            )
        } else {
            String::new()
        };
        let tracker =
            raw.tracker_config(target.ports.clone(), raw.input_raw_track_response, settings);
        let limit = match limit {
            Some(Limit::PerSecond(n)) if rings > 1 => {
                Some(Limit::PerSecond(n.div_ceil(rings as u64).max(1)))
            }
            other => other,
        };
        for (number, ring) in opened.into_iter().enumerate() {
            let label = if rings > 1 {
                instance_label("input-pfring", &format!("{value}#{number}"))
            } else {
                instance_label("input-pfring", &value)
            };
            specs.push(InputSpec {
                label: label.clone(),
                plugin: Box::new(PfringInput {
                    ring,
                    about: format!(
                        "{label}: ring #{number} of {rings} on {}{cluster_text}; PF_RING {version} from {}",
                        target.device,
                        lib.path
                    ),
                    label,
                    tracker: tracker.clone(),
                }),
                backpressure: shadowtap_api::Backpressure::Drop,
                limit,
            });
        }
    }
    Ok(specs)
}

/// One ring and its consumer.
struct PfringInput {
    ring: Ring,
    label: String,
    /// The start-up log line (logging starts after the plugins are built).
    about: String,
    tracker: TrackerConfig,
}

/// `pfring_stats` turned into ledger entries.
struct RingStats {
    last: ffi::PfringStat,
    received: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    next: Instant,
}

impl RingStats {
    fn new(cx: &InputContext) -> Self {
        RingStats {
            last: ffi::PfringStat::default(),
            received: cx.counters().extra("ring packets"),
            dropped: cx.counters().extra("ring drops"),
            next: Instant::now() + STATS_EVERY,
        }
    }

    /// Reads the ring's counters when due (or `now` is forced).
    fn poll(&mut self, ring: &mut Ring, cx: &InputContext, force: bool) {
        let now = Instant::now();
        if !force && now < self.next {
            return;
        }
        self.next = now + STATS_EVERY;
        let Some(stats) = ring.stats() else { return };
        let new_drops = stats.drop.saturating_sub(self.last.drop);
        if new_drops > 0 {
            cx.counters().add_refused(Reason::KernelDrop, new_drops);
        }
        self.received.store(stats.recv, Relaxed);
        self.dropped.store(stats.drop, Relaxed);
        self.last = stats;
    }
}

fn wall_clock_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

impl Input for PfringInput {
    fn run(self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let PfringInput {
            mut ring,
            label,
            about,
            tracker,
        } = *self;
        tracing::info!("{about}");
        if let Err(e) = ring.enable() {
            cx.counters().add_error();
            return Err(PluginError::Runtime(format!("{label}: {e}")));
        }
        let mut worker = Worker::live(tracker, cx.counters().clone(), None);
        let mut stats = RingStats::new(&cx);
        let mut since_check = 0u32;
        while !cx.is_stopping() && !worker.is_stopped() {
            match ring.recv() {
                Recv::Packet {
                    data,
                    wire_len,
                    ts_ns,
                } => {
                    let ts_ns = if ts_ns > 0 { ts_ns } else { wall_clock_ns() };
                    let _ = worker.frame(linktype::ETHERNET, data, wire_len, ts_ns, &mut cx);
                    since_check += 1;
                    if since_check >= 1024 {
                        since_check = 0;
                        stats.poll(&mut ring, &cx, false);
                        worker.flush(&mut cx);
                    }
                }
                Recv::Empty => {
                    worker.tick(wall_clock_ns(), &mut cx);
                    worker.flush(&mut cx);
                    stats.poll(&mut ring, &cx, false);
                    cx.shutdown().sleep(IDLE_SLEEP);
                }
                Recv::Error(rc) => {
                    tracing::warn!(
                        "{label}: pfring_recv failed (return code {rc}); this ring's capture ends"
                    );
                    break;
                }
            }
        }
        stats.poll(&mut ring, &cx, true);
        drop(ring);
        worker.finish(&mut cx);
        Ok(())
    }
}

register_input! {
    name: "input-pfring",
    about: "Captures live HTTP traffic with PF_RING: several rings per interface in a per-flow cluster, one thread each",
    args: InputPfringArgs,
    build: build,
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_api::testkit;

    #[test]
    fn conformance() {
        testkit::check_conformance("input-pfring", &[]);
    }

    #[test]
    fn targets() {
        assert_eq!(
            parse_target("eth0").unwrap(),
            Target {
                netns: None,
                device: "eth0".into(),
                ports: vec![]
            }
        );
        assert_eq!(
            parse_target("eth0:80,8080").unwrap(),
            Target {
                netns: None,
                device: "eth0".into(),
                ports: vec![80, 8080]
            }
        );
        assert_eq!(
            parse_target("netns:blue/veth0:80").unwrap(),
            Target {
                netns: Some("blue".into()),
                device: "veth0".into(),
                ports: vec![80]
            }
        );
        assert_eq!(parse_target("zc:eth1@2").unwrap().device, "zc:eth1@2");
        assert_eq!(parse_target("zc:eth1:443").unwrap().device, "zc:eth1");
        assert!(parse_target("eth0:99999").is_err());
        assert!(parse_target("netns:/eth0").is_err());
        assert!(parse_target("netns:blue").is_err());
        assert!(parse_target(":80").is_err());
    }

    #[test]
    fn filters_and_cluster_types() {
        assert_eq!(port_filter(&[]), None);
        assert_eq!(
            port_filter(&[80, 8080]).as_deref(),
            Some("tcp port 80 or tcp port 8080")
        );
        assert_eq!(cluster_type("per-flow"), cluster::PER_FLOW);
        assert_eq!(cluster_type("round-robin"), cluster::ROUND_ROBIN);
        assert_eq!(cluster_type("per-flow-5-tuple"), cluster::PER_FLOW_5_TUPLE);
    }

    fn build_err(flags: &[&str]) -> String {
        match testkit::build_inputs("input-pfring", flags) {
            Ok(_) => panic!("{flags:?} built"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn usage_errors_before_loading_the_library() {
        let err = build_err(&[
            "--input-pfring",
            "eth0",
            "--input-pfring-cluster-type",
            "round-robin",
        ]);
        assert!(err.contains("http-headers"), "{err}");
        let err = build_err(&["--input-pfring", "eth0", "--input-pfring-rings", "0"]);
        assert!(err.contains("--input-pfring-rings"), "{err}");
    }

    #[test]
    fn missing_library_says_how_to_install_pf_ring() {
        let err = build_err(&[
            "--input-pfring",
            "eth0:80",
            "--input-pfring-lib",
            "/nonexistent/libpfring.so",
        ]);
        for needle in [
            "PF_RING is not installed",
            "/nonexistent/libpfring.so",
            "packages.ntop.org",
            "apt-get install pfring pfring-dkms",
            "modprobe pf_ring",
            "--input-raw IFACE:PORT",
        ] {
            assert!(err.contains(needle), "{needle:?} missing from: {err}");
        }
    }
}
