//! Tunnelled traffic through the binary.
//!
//! The overlay lab: namespaces A (nginx) and B (a client) joined by a veth underlay, a real
//! Linux `vxlan` device (VNI 42, UDP 4789, no learning) in each carrying the overlay
//! 192.168.77.0/24, and a third namespace M that both ends also send every VXLAN frame to
//! (`bridge fdb append 00:00:00:00:00:00 dev vx0 dst M`: head-end replication, the way a
//! traffic-mirroring session delivers copies), routed through A. shadowtap runs
//! `--input-raw-engine vxlan` in M; tcpdump in M records the underlay for `--input-pcap`.
//! The client sends known bytes and records the exact responses, so every captured message
//! is checked byte for byte, with its pairing.
//!
//! PPPoE, Cisco HDLC and GENEVE (as AWS Gateway Load Balancer sends it): frames built with the
//! capture crate's testutil, written as pcaps and read with `--input-pcap`. And the vxlan
//! engine on loopback, fed datagrams built the same way.

use crate::common::*;
use crate::live::{needs_root, nginx_in_netns, sh};
use shadowtap_capture::testutil::{self, Conversation};
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static LABS: AtomicU32 = AtomicU32::new(0);

const SERVER_IP: &str = "192.168.77.1";

/// A request and the response to it, as bytes on the wire.
type Exchange = (Vec<u8>, Vec<u8>);
/// Timestamped frames of a capture.
type Frames = Vec<(i64, Vec<u8>)>;
/// Wraps an IP packet in a link layer or tunnel.
type Wrap = fn(&[u8]) -> Vec<u8>;
const MIRROR_IP: &str = "10.201.0.2";

struct Overlay {
    server_ns: String,
    client_ns: String,
    mirror_ns: String,
    mirror_if: String,
    dir: tempfile::TempDir,
    nginx: Option<Child>,
}

impl Overlay {
    fn new() -> Overlay {
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id() % 10000, n);
        let lab = Overlay {
            server_ns: format!("stxa{tag}"),
            client_ns: format!("stxb{tag}"),
            mirror_ns: format!("stxm{tag}"),
            mirror_if: format!("xm{tag}"),
            dir: tempdir(),
            nginx: None,
        };
        lab.wire(&tag);
        lab
    }

    fn wire(&self, tag: &str) {
        let (a, b, m) = (&self.server_ns, &self.client_ns, &self.mirror_ns);
        for ns in [a, b, m] {
            sh(&["ip", "netns", "add", ns]);
        }
        let (ab, ba, am) = (format!("xa{tag}"), format!("xb{tag}"), format!("xam{tag}"));
        let pairs = [(&ab, a, &ba, b), (&am, a, &self.mirror_if, m)];
        for (one, one_ns, other, other_ns) in pairs {
            sh(&[
                "ip", "link", "add", one, "type", "veth", "peer", "name", other,
            ]);
            sh(&["ip", "link", "set", one, "netns", one_ns]);
            sh(&["ip", "link", "set", other, "netns", other_ns]);
        }
        for (ns, iface, address) in [
            (a, &ab, "10.200.0.1/24"),
            (b, &ba, "10.200.0.2/24"),
            (a, &am, "10.201.0.1/24"),
            (m, &self.mirror_if, "10.201.0.2/24"),
        ] {
            sh(&["ip", "-n", ns, "addr", "add", address, "dev", iface]);
            sh(&["ip", "-n", ns, "link", "set", iface, "mtu", "1500", "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip",
            "-n",
            b,
            "route",
            "add",
            "10.201.0.0/24",
            "via",
            "10.200.0.1",
        ]);
        sh(&[
            "ip",
            "-n",
            m,
            "route",
            "add",
            "10.200.0.0/24",
            "via",
            "10.201.0.1",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            a,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1",
        ]);
        for (ns, dev, local, peer, overlay) in [
            (a, &ab, "10.200.0.1", "10.200.0.2", "192.168.77.1/24"),
            (b, &ba, "10.200.0.2", "10.200.0.1", "192.168.77.2/24"),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "link",
                "add",
                "vx0",
                "type",
                "vxlan",
                "id",
                "42",
                "local",
                local,
                "dstport",
                "4789",
                "nolearning",
                "dev",
                dev,
            ]);
            for dst in [peer, MIRROR_IP] {
                sh(&[
                    "bridge",
                    "-n",
                    ns,
                    "fdb",
                    "append",
                    "00:00:00:00:00:00",
                    "dev",
                    "vx0",
                    "dst",
                    dst,
                ]);
            }
            sh(&["ip", "-n", ns, "addr", "add", overlay, "dev", "vx0"]);
            sh(&["ip", "-n", ns, "link", "set", "vx0", "up"]);
            for iface in ["vx0", dev.as_str()] {
                let _ = Command::new("ip")
                    .args([
                        "netns", "exec", ns, "ethtool", "-K", iface, "tso", "off", "gso", "off",
                        "gro", "off",
                    ])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status();
            }
        }
    }

    fn start_nginx(&mut self) {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("www/dav")).unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i * 13 % 251) as u8).collect();
        std::fs::write(dir.join("www/big.bin"), big).unwrap();
        let http = format!(
            "access_log off;\n\
             server {{ listen {SERVER_IP}:80; client_max_body_size 10m; root {d}/www;\n\
               location /dav/ {{ dav_methods PUT; create_full_put_path on; }}\n\
               location /big.bin {{ }}\n\
               location / {{ return 200 \"hello over vxlan\\n\"; }} }}",
            d = dir.display(),
        );
        let url = format!("http://{SERVER_IP}/ready");
        let nginx = nginx_in_netns(dir, &http, &self.server_ns, &self.client_ns, &url);
        self.nginx = Some(nginx);
    }

    /// Runs the client in B: two keep-alive connections of known requests (a 150 KB PUT
    /// among them), each response read whole. Returns (request, response) byte pairs.
    fn exchanges(&self) -> Vec<Exchange> {
        let script = self.dir.path().join("client.py");
        std::fs::write(&script, CLIENT).unwrap();
        let out = self.dir.path().join("exchanges.json");
        let status = Command::new("ip")
            .args(["netns", "exec", &self.client_ns, "python3"])
            .arg(&script)
            .arg(SERVER_IP)
            .arg(&out)
            .status()
            .expect("python3");
        assert!(status.success(), "the overlay client failed");
        let pairs: Vec<(String, String)> =
            serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        pairs
            .into_iter()
            .map(|(q, r)| (unhex(&q), unhex(&r)))
            .collect()
    }

    /// Captures while the client runs: shadowtap with `flags` in M and tcpdump of the
    /// underlay there. Returns the exchanges, the records and shadowtap's stderr.
    fn capture(&self, flags: &[&str]) -> (Vec<Exchange>, Vec<Record>, String) {
        let value = format!("netns:{}/:80", self.mirror_ns);
        let out = self.dir.path().join("vxlan.gor");
        let mut args = vec![
            "--input-raw",
            &value,
            "--input-raw-engine",
            "vxlan",
            "--input-raw-track-response",
            "--output-file",
            path_str(&out),
            "--output-file-append",
        ];
        args.extend_from_slice(flags);
        let child = command()
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let tcpdump = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.mirror_ns,
                "tcpdump",
                "-i",
                &self.mirror_if,
            ])
            .args(["-s", "0", "-U", "-w"])
            .arg(self.underlay_pcap())
            .arg("udp port 4789")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("tcpdump (.ci/setup installs it)");
        std::thread::sleep(Duration::from_millis(800));
        let exchanges = self.exchanges();
        std::thread::sleep(Duration::from_millis(1500));
        signal(tcpdump.id(), "INT");
        let _ = wait_output(tcpdump, Duration::from_secs(10));
        signal(child.id(), "INT");
        let output = wait_output(child, Duration::from_secs(20));
        assert_success(&output);
        let records = if out.exists() {
            read_gor(&out)
        } else {
            Vec::new()
        };
        (exchanges, records, stderr(&output))
    }

    fn underlay_pcap(&self) -> std::path::PathBuf {
        self.dir.path().join("underlay.pcap")
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        if let Some(mut nginx) = self.nginx.take() {
            let _ = nginx.kill();
            let _ = nginx.wait();
        }
        for ns in [&self.server_ns, &self.client_ns, &self.mirror_ns] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

const CLIENT: &str = r#"
import json, socket, sys
host, out = sys.argv[1], sys.argv[2]
def response(s, buf, head):
    while b"\r\n\r\n" not in buf:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("connection closed mid-response")
        buf += chunk
    end = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in buf[:end].split(b"\r\n")[1:]:
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    if head:
        length = 0
    while len(buf) < end + length:
        chunk = s.recv(65536)
        if not chunk:
            raise SystemExit("connection closed mid-body")
        buf += chunk
    return buf[:end + length], buf[end + length:]
body = bytes((i * 7) % 251 for i in range(150000))
connections = [
    [b"GET /one?x=1 HTTP/1.1\r\nHost: overlay\r\n\r\n",
     b"GET /big.bin HTTP/1.1\r\nHost: overlay\r\nX-N: 2\r\n\r\n",
     b"HEAD /big.bin HTTP/1.1\r\nHost: overlay\r\n\r\n",
     b"GET /two HTTP/1.1\r\nHost: overlay\r\n\r\n"],
    [b"PUT /dav/up.bin HTTP/1.1\r\nHost: overlay\r\nContent-Length: %d\r\n\r\n" % len(body) + body,
     b"GET /dav/up.bin HTTP/1.1\r\nHost: overlay\r\nConnection: close\r\n\r\n"],
]
exchanges = []
for requests in connections:
    s = socket.create_connection((host, 80))
    buf = b""
    for request in requests:
        s.sendall(request)
        reply, buf = response(s, buf, request.startswith(b"HEAD"))
        exchanges.append([request.hex(), reply.hex()])
    s.close()
json.dump(exchanges, open(out, "w"))
"#;

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// Every exchange appears once, byte-exact: the request, and the response with its id; and
/// nothing else was captured.
fn assert_exchanges(exchanges: &[Exchange], records: &[Record], stderr: &str) {
    assert_eq!(exchanges.len(), 6, "the client's exchanges");

    let responses: HashMap<String, &Record> = records
        .iter()
        .filter(|r| r.kind() == b'2')
        .map(|r| (r.id(), r))
        .collect();
    for (request, response) in exchanges {
        let found: Vec<&Record> = records
            .iter()
            .filter(|r| r.kind() == b'1' && r.payload == *request)
            .collect();
        let line = String::from_utf8_lossy(&request[..request.len().min(40)]).into_owned();
        assert_eq!(
            found.len(),
            1,
            "request {line:?} captured once; stderr: {stderr}"
        );
        let paired = responses
            .get(&found[0].id())
            .unwrap_or_else(|| panic!("no response paired with {line:?}; stderr: {stderr}"));
        assert!(
            paired.payload == *response,
            "response to {line:?} differs: {} captured bytes, {} received; stderr: {stderr}",
            paired.payload.len(),
            response.len()
        );
    }
    assert_eq!(records.len(), 2 * exchanges.len(), "{stderr}");
}

#[test]
fn vxlan_engine_captures_the_overlay_byte_exact_and_so_does_its_pcap() {
    assert!(needs_root());
    let mut lab = Overlay::new();
    lab.start_nginx();
    let (exchanges, records, text) = lab.capture(&["--input-raw-vxlan-vni", "42"]);
    assert_exchanges(&exchanges, &records, &text);
    assert_eq!(summary_counter(&text, "vxlan", "kernel drop"), 0, "{text}");

    let pcap = lab.underlay_pcap();
    let out = lab.dir.path().join("pcap.gor");
    let value = format!("{}:80", path_str(&pcap));
    let output = run(&[
        "--input-pcap",
        &value,
        "--input-raw-track-response",
        "--output-file",
        path_str(&out),
        "--output-file-append",
    ]);
    assert_success(&output);
    let from_pcap = read_gor(&out);
    assert_exchanges(&exchanges, &from_pcap, &stderr(&output));
    let ids = |rs: &[Record]| -> Vec<(u8, Vec<u8>)> {
        let mut v: Vec<_> = rs.iter().map(|r| (r.kind(), r.payload.clone())).collect();
        v.sort();
        v
    };
    assert_eq!(ids(&records), ids(&from_pcap));
}

#[test]
fn vxlan_vni_deny_list_sees_nothing() {
    assert!(needs_root());
    let mut lab = Overlay::new();
    lab.start_nginx();
    let (exchanges, records, text) = lab.capture(&["--input-raw-vxlan-vni=-42"]);
    assert_eq!(exchanges.len(), 6);
    assert!(records.is_empty(), "{} records; {text}", records.len());
    assert_eq!(summary_counter(&text, "vxlan", "out"), 0, "{text}");
    assert!(
        summary_counter(&text, "vxlan", "vni filtered") > 50,
        "every datagram filtered: {text}"
    );
}

#[test]
fn vxlan_flag_errors_name_the_flag() {
    let output = run(&[
        "--input-raw",
        ":80",
        "--input-raw-engine",
        "vxlan",
        "--input-raw-vxlan-vni",
        "forty-two",
        "--output-null",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("--input-raw-vxlan-vni"),
        "{}",
        stderr(&output)
    );
}

/// One keep-alive conversation of two exchanges, as `wrap` frames it.
fn conversation(wrap: Wrap) -> (Frames, Vec<Vec<u8>>) {
    let mut conv = Conversation::new("10.9.0.1:41000", "10.9.0.2:80");
    let mut segments = conv.handshake();
    let messages = [
        b"GET /ppp/1 HTTP/1.1\r\nHost: tunnel\r\n\r\n".to_vec(),
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello".to_vec(),
        b"POST /ppp/2 HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ];
    for (i, m) in messages.iter().enumerate() {
        segments.push(if i % 2 == 0 {
            conv.client(m)
        } else {
            conv.server(m)
        });
    }
    segments.push(conv.client_fin());
    segments.push(conv.server_fin());
    let frames = segments
        .iter()
        .enumerate()
        .map(|(i, s)| (1_700_000_000_000_000_000 + i as i64 * 1000, wrap(&s.ip())))
        .collect();
    (frames, messages.to_vec())
}

#[test]
fn pppoe_hdlc_and_geneve_pcaps_through_the_binary() {
    let dir = tempdir();
    let kinds: [(&str, u32, Wrap); 6] = [
        ("pppoe", 1, |ip| testutil::pppoe(ip, &[])),
        ("pppoe-vlan", 1, |ip| testutil::pppoe(ip, &[0x8100])),
        ("ppp-ether", 51, testutil::pppoe_session),
        ("c-hdlc", 104, testutil::cisco_hdlc),
        ("geneve-gwlb", 1, |ip| {
            testutil::geneve(0, 0x0800, &testutil::gwlb_options(), ip)
        }),
        ("vxlan-in-geneve", 1, |ip| {
            let inner = testutil::vxlan(42, &testutil::ethernet(ip, &[]));
            testutil::geneve(9, 0x6558, &[], &inner)
        }),
    ];
    for (name, linktype, wrap) in kinds {
        let (frames, messages) = conversation(wrap);
        let pcap = dir.path().join(format!("{name}.pcap"));
        std::fs::write(&pcap, testutil::write_pcap(linktype, &frames)).unwrap();
        let out = dir.path().join(format!("{name}.gor"));
        let value = format!("{}:80", path_str(&pcap));
        let output = run(&[
            "--input-pcap",
            &value,
            "--input-raw-track-response",
            "--output-file",
            path_str(&out),
            "--output-file-append",
        ]);
        assert_success(&output);
        assert!(
            out.exists(),
            "{name}: nothing captured: {}",
            stderr(&output)
        );
        let records = read_gor(&out);
        let payloads: Vec<Vec<u8>> = records.iter().map(|r| r.payload.clone()).collect();
        assert_eq!(payloads, messages, "{name}: {}", stderr(&output));
        assert_eq!(records[0].id(), records[1].id(), "{name}");
        assert_eq!(records[2].id(), records[3].id(), "{name}");
        assert_eq!(
            [records[0].kind(), records[1].kind()],
            [b'1', b'2'],
            "{name}"
        );
    }
}

/// The vxlan engine on loopback (no root needed): a 60 KB request in one jumbo inner frame
/// arrives whole (GoReplay's engine reads 1526 bytes of a datagram), a datagram without the
/// VXLAN I flag is a counted format error, other VNIs are filtered, other ports are outside,
/// and the engine stops promptly on a signal.
#[test]
fn vxlan_engine_takes_whole_datagrams_and_stops_promptly() {
    let port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempdir();
    let out = dir.path().join("loopback.gor");
    let port_text = port.to_string();
    let child = command()
        .args([
            "--input-raw",
            "127.0.0.1:80",
            "--input-raw-engine",
            "vxlan",
            "--input-raw-vxlan-port",
            &port_text,
            "--input-raw-vxlan-vni",
            "42",
            "--input-raw-track-response",
            "--output-file",
            path_str(&out),
            "--output-file-append",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    let mut request = b"POST /jumbo HTTP/1.1\r\nContent-Length: 60000\r\n\r\n".to_vec();
    request.extend((0..60_000u32).map(|i| b'a' + (i % 26) as u8));
    let response = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec();
    let mut conv = Conversation::new("10.5.0.1:43000", "10.5.0.2:80");
    let mut segments = conv.handshake();
    segments.push(conv.client(&request));
    segments.push(conv.server(&response));
    let mut other = Conversation::new("10.5.0.1:43001", "10.5.0.2:9999");
    segments.push(other.client(b"GET /elsewhere HTTP/1.1\r\n\r\n"));
    let sender = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let to = format!("127.0.0.1:{port}");
    for s in &segments {
        let datagram = testutil::vxlan_payload(42, &s.ethernet());
        assert_eq!(sender.send_to(&datagram, &to).unwrap(), datagram.len());
    }
    let filtered = testutil::vxlan_payload(7, &segments[3].ethernet());
    sender.send_to(&filtered, &to).unwrap();
    let mut no_i_flag = testutil::vxlan_payload(42, &segments[3].ethernet());
    no_i_flag[0] = 0;
    sender.send_to(&no_i_flag, &to).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let stopped = std::time::Instant::now();
    signal(child.id(), "INT");
    let output = wait_output(child, Duration::from_secs(20));
    let took = stopped.elapsed();
    assert_success(&output);
    let text = stderr(&output);
    assert!(
        took < Duration::from_secs(2),
        "stopped after {took:?}: {text}"
    );
    let records = read_gor(&out);
    assert_eq!(records.len(), 2, "{text}");
    assert!(
        records[0].payload == request,
        "{} bytes",
        records[0].payload.len()
    );
    assert_eq!(records[1].payload, response);
    assert_eq!(records[0].id(), records[1].id());
    assert_eq!(summary_counter(&text, "vxlan", "vni filtered"), 1, "{text}");
    assert_eq!(summary_counter(&text, "vxlan", "format error"), 1, "{text}");
    assert_eq!(
        summary_counter(&text, "vxlan", "outside ports"),
        1,
        "{text}"
    );
}
