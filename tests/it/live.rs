//! Live capture (`--input-raw`) of real traffic across a veth pair between two network
//! namespaces made by the test: nginx in one, curl and wrk in the other (MTU 1500, offloads
//! off, so bodies span many segments). shadowtap captures from the host process inside the
//! server's namespace (`netns:NAME/IFACE:PORT`) with each engine; every request nginx logged
//! must appear exactly once, and every response with its request's id.

use crate::common::*;
use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

static LABS: AtomicU32 = AtomicU32::new(0);

/// Two namespaces joined by a veth pair, nginx listening on the server side.
struct Lab {
    server_ns: String,
    client_ns: String,
    server_if: String,
    server_ip: String,
    dir: tempfile::TempDir,
    nginx: Option<Child>,
}

pub(crate) fn sh(args: &[&str]) {
    let status = Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "command failed: {args:?}"
    );
}

impl Lab {
    fn new() -> Lab {
        let n = LABS.fetch_add(1, Ordering::Relaxed);
        let tag = format!("{}{}", std::process::id() % 10000, n);
        let lab = Lab {
            server_ns: format!("sts{tag}"),
            client_ns: format!("stc{tag}"),
            server_if: format!("vs{tag}"),
            server_ip: format!("10.79.{}.1", n + 1),
            dir: tempdir(),
            nginx: None,
        };
        lab.wire(&tag, n + 1);
        lab
    }

    fn wire(&self, tag: &str, subnet: u32) {
        let client_if = format!("vc{tag}");
        sh(&["ip", "netns", "add", &self.server_ns]);
        sh(&["ip", "netns", "add", &self.client_ns]);
        sh(&[
            "ip",
            "link",
            "add",
            &self.server_if,
            "type",
            "veth",
            "peer",
            "name",
            &client_if,
        ]);
        sh(&[
            "ip",
            "link",
            "set",
            &self.server_if,
            "netns",
            &self.server_ns,
        ]);
        sh(&["ip", "link", "set", &client_if, "netns", &self.client_ns]);
        for (ns, iface, ip) in [
            (&self.server_ns, &self.server_if, &self.server_ip),
            (&self.client_ns, &client_if, &format!("10.79.{subnet}.2")),
        ] {
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/24"),
                "dev",
                iface,
            ]);
            sh(&["ip", "-n", ns, "link", "set", iface, "mtu", "1500", "up"]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            let _ = Command::new("ip")
                .args([
                    "netns", "exec", ns, "ethtool", "-K", iface, "tso", "off", "gso", "off", "gro",
                    "off", "tx", "off", "rx", "off",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }

    fn start_nginx(&mut self) {
        let dir = self.dir.path();
        std::fs::create_dir_all(dir.join("dav")).unwrap();
        let http = format!(
            "log_format t '$request_method $request_uri $status $request_length';\n  access_log {d}/access.log t;\n\
             server {{ listen {ip}:80; client_max_body_size 10m;\n\
               location /dav/ {{ root {d}; dav_methods PUT; create_full_put_path on; }}\n\
               location / {{ return 200 \"hello from nginx\\n\"; }} }}",
            d = dir.display(),
            ip = self.server_ip
        );
        let url = format!("http://{}/ready", self.server_ip);
        self.nginx = Some(nginx_in_netns(
            dir,
            &http,
            &self.server_ns,
            &self.client_ns,
            &url,
        ));
        std::fs::write(dir.join("access.log"), b"").unwrap();
    }

    /// Runs a command in the client namespace; true on success.
    fn client(&self, args: &[&str]) -> bool {
        Command::new("ip")
            .args(["netns", "exec", &self.client_ns])
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// The traffic: several curl requests (GET, keep-alive, HEAD, 404-less paths, a 200 KB PUT
    /// spanning ~140 segments) and one second of wrk.
    fn traffic(&self) {
        let base = format!("http://{}", self.server_ip);
        let upload = self.dir.path().join("upload.bin");
        std::fs::write(&upload, vec![b'u'; 200 * 1024]).unwrap();
        assert!(self.client(&["curl", "-s", "-o", "/dev/null", &format!("{base}/one?x=1")]));
        assert!(self.client(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            &format!("{base}/ka/1"),
            &format!("{base}/ka/2"),
            &format!("{base}/ka/3")
        ]));
        assert!(self.client(&[
            "curl",
            "-s",
            "-I",
            "-o",
            "/dev/null",
            &format!("{base}/head")
        ]));
        assert!(self.client(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-T",
            upload.to_str().unwrap(),
            &format!("{base}/dav/up.bin")
        ]));
        assert!(self.client(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-d",
            "a=1&b=2",
            &format!("{base}/form")
        ]));
        let pace = self.dir.path().join("pace.lua");
        std::fs::write(&pace, "function delay() return 2 end\n").unwrap();
        assert!(self.client(&[
            "wrk",
            "-t",
            "1",
            "-c",
            "4",
            "-d",
            "1s",
            "-s",
            pace.to_str().unwrap(),
            &format!("{base}/wrk")
        ]));
    }

    fn access_log(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("access.log"))
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if let Some(mut nginx) = self.nginx.take() {
            let _ = nginx.kill();
            let _ = nginx.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.server_ns])
            .status();
        let _ = Command::new("ip")
            .args(["netns", "del", &self.client_ns])
            .status();
    }
}

/// Captures the lab's traffic with `flags` and returns the records and stderr.
fn capture(lab: &Lab, flags: &[&str]) -> (Vec<Record>, String) {
    let value = format!("netns:{}/{}:80", lab.server_ns, lab.server_if);
    let out = lab.dir.path().join("captured.gor");
    let out_value = out.to_str().unwrap().to_string();
    let mut args = vec![
        "--input-raw",
        value.as_str(),
        "--input-raw-track-response",
        "--output-file",
        &out_value,
        "--output-file-append",
    ];
    args.extend_from_slice(flags);
    let child = command()
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pcap = lab.dir.path().join("tcpdump.pcap");
    let tcpdump = Command::new("ip")
        .args([
            "netns",
            "exec",
            &lab.server_ns,
            "tcpdump",
            "-i",
            &lab.server_if,
            "-s",
            "0",
            "-U",
            "-w",
        ])
        .arg(&pcap)
        .arg("tcp port 80")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tcpdump (.ci/setup installs it)");
    std::thread::sleep(Duration::from_millis(800));
    lab.traffic();
    std::thread::sleep(Duration::from_millis(2500));
    signal(tcpdump.id(), "INT");
    let _ = wait_output(tcpdump, Duration::from_secs(10));
    signal(child.id(), "INT");
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
    (read_gor(&out), stderr(&output))
}

fn request_line(record: &Record) -> String {
    let text = record.payload_text();
    let line = text.lines().next().unwrap_or_default();
    let mut words = line.split(' ');
    format!(
        "{} {}",
        words.next().unwrap_or_default(),
        words.next().unwrap_or_default()
    )
}

/// Packets tcpdump saw on the same interface during the same capture.
fn tcpdump_packets(lab: &Lab) -> u64 {
    let listing = Command::new("tcpdump")
        .args(["-n", "-r"])
        .arg(lab.dir.path().join("tcpdump.pcap"))
        .output()
        .unwrap();
    String::from_utf8_lossy(&listing.stdout).lines().count() as u64
}

/// Every logged request exactly once, every response paired with its request.
fn assert_complete(lab: &Lab, records: &[Record], stderr: &str) {
    let logged: Vec<String> = lab
        .access_log()
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    assert!(logged.len() > 20, "too little traffic: {logged:?}");
    let requests: Vec<&Record> = records.iter().filter(|r| r.kind() == b'1').collect();
    let mut expected: HashMap<String, usize> = HashMap::new();
    for line in &logged {
        *expected.entry(line.clone()).or_default() += 1;
    }
    let mut seen: HashMap<String, usize> = HashMap::new();
    for request in &requests {
        *seen.entry(request_line(request)).or_default() += 1;
    }
    assert_eq!(
        seen, expected,
        "captured requests differ from nginx's log; stderr: {stderr}"
    );
    let put = requests
        .iter()
        .find(|r| r.payload_text().starts_with("PUT /dav/up.bin"))
        .expect("the PUT");
    assert!(
        put.payload.ends_with(&vec![b'u'; 200 * 1024]),
        "PUT body incomplete ({} bytes)",
        put.payload.len()
    );
    let finals = records
        .iter()
        .filter(|r| r.kind() == b'2' && !r.payload.starts_with(b"HTTP/1.1 1"));
    let responses: HashMap<String, usize> = finals.fold(HashMap::new(), |mut m, r| {
        *m.entry(r.id()).or_default() += 1;
        m
    });
    for request in &requests {
        assert_eq!(
            responses.get(&request.id()),
            Some(&1),
            "request {} has no single response",
            request_line(request)
        );
    }
}

/// Starts nginx in `server_ns` with `http` as the body of its `http {}` block (temp paths and
/// the rest under `dir`), and waits until curl in `client_ns` gets `ready_url`.
pub(crate) fn nginx_in_netns(
    dir: &std::path::Path,
    http: &str,
    server_ns: &str,
    client_ns: &str,
    ready_url: &str,
) -> std::process::Child {
    let conf = format!(
        "daemon off; master_process off; pid {d}/nginx.pid; error_log {d}/error.log;\n\
         events {{}}\n\
         http {{\n  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
           {http}\n}}\n",
        d = dir.display(),
    );
    std::fs::write(dir.join("nginx.conf"), conf).unwrap();
    let mut child = Command::new("ip")
        .args(["netns", "exec", server_ns, "nginx", "-c"])
        .arg(dir.join("nginx.conf"))
        .args(["-p", dir.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (Debian nginx-light) must be installed: .ci/setup installs it");
    for _ in 0..100 {
        let ready = Command::new("ip")
            .args([
                "netns",
                "exec",
                client_ns,
                "curl",
                "-s",
                "-o",
                "/dev/null",
                ready_url,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("nginx did not start in namespace {server_ns}");
}

pub(crate) fn needs_root() -> bool {
    let root = unsafe_geteuid() == 0;
    if !root {
        eprintln!("live capture tests need root (CI runs as root)");
    }
    root
}

fn unsafe_geteuid() -> u32 {
    String::from_utf8(Command::new("id").arg("-u").output().unwrap().stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn af_packet_one_worker_captures_everything() {
    assert!(needs_root());
    let mut lab = Lab::new();
    lab.start_nginx();
    let (records, stderr) = capture(&lab, &["--input-raw-workers", "1"]);
    assert_complete(&lab, &records, &stderr);
    let summary = stderr
        .lines()
        .rfind(|l| l.starts_with("shadowtap: input"))
        .unwrap();
    let packets: u64 = summary
        .split(" packets ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        packets,
        tcpdump_packets(&lab),
        "shadowtap and tcpdump saw different packet counts: {summary}"
    );
}

#[test]
fn af_packet_two_workers_share_by_flow() {
    assert!(needs_root());
    let mut lab = Lab::new();
    lab.start_nginx();
    let (records, stderr) = capture(&lab, &["--input-raw-workers", "2"]);
    assert_complete(&lab, &records, &stderr);
    assert!(stderr.contains("#0]") && stderr.contains("#1]"), "{stderr}");
}

#[test]
fn libpcap_engine_captures_everything() {
    assert!(needs_root());
    let mut lab = Lab::new();
    lab.start_nginx();
    let (records, stderr) = capture(&lab, &["--input-raw-engine", "libpcap"]);
    assert_complete(&lab, &records, &stderr);
}

#[test]
fn header_only_mode_sees_every_request_head() {
    assert!(needs_root());
    let mut lab = Lab::new();
    lab.start_nginx();
    let (records, stderr) = capture(
        &lab,
        &[
            "--input-raw-protocol",
            "http-headers",
            "--input-raw-workers",
            "2",
        ],
    );
    let requests: Vec<&Record> = records.iter().filter(|r| r.kind() == b'1').collect();
    let mut lines: Vec<String> = requests.iter().map(|r| request_line(r)).collect();
    let mut logged: Vec<String> = lab
        .access_log()
        .iter()
        .map(|l| l.split(' ').take(2).collect::<Vec<_>>().join(" "))
        .collect();
    lines.sort();
    logged.sort();
    assert_eq!(lines, logged, "{stderr}");
    for request in &requests {
        assert!(
            request.payload.ends_with(b"\r\n\r\n"),
            "not a header block: {:?}",
            request.payload_text()
        );
    }
    let responses = records
        .iter()
        .filter(|r| r.kind() == b'2' && !r.payload.starts_with(b"HTTP/1.1 1"))
        .count();
    assert_eq!(responses, requests.len(), "{stderr}");
}

#[test]
fn missing_namespace_and_interface_are_clear_errors() {
    let output = run(&[
        "--input-raw",
        "netns:no-such-ns-st/eth0:80",
        "--output-null",
    ]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-such-ns-st"),
        "{}",
        stderr(&output)
    );
    let output = run(&["--input-raw", "no-such-if9:80", "--output-null"]);
    assert_eq!(output.status.code(), Some(2), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("no-such-if9"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn a_missing_permission_is_one_clear_line() {
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            binary(),
            "--input-raw",
            "lo:18555",
            "--output-null",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let text = stderr(&output);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.contains("needs root or CAP_NET_RAW: setcap cap_net_raw,cap_net_admin=eip"),
        "{text}"
    );
}

#[test]
fn privileges_are_dropped_after_the_sockets_are_open() {
    assert!(needs_root());
    let mut lab = Lab::new();
    lab.start_nginx();
    let value = format!("netns:{}/{}:80", lab.server_ns, lab.server_if);
    let child = command()
        .args(["--input-raw", &value, "--user", "nobody", "--output-null"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(800));
    assert!(lab.client(&[
        "curl",
        "-s",
        "-o",
        "/dev/null",
        &format!("http://{}/as-nobody", lab.server_ip)
    ]));
    std::thread::sleep(Duration::from_millis(1500));
    signal(child.id(), "INT");
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
    let text = stderr(&output);
    assert!(text.contains("running as nobody"), "{text}");
    assert!(text.contains("output-null in 1 out 1"), "{text}");
}

#[test]
fn load_guard_pauses_capture_and_counts_it() {
    assert!(needs_root());
    let mut lab = Lab::new();
    lab.start_nginx();
    let value = format!("netns:{}/{}:80", lab.server_ns, lab.server_if);
    let child = command()
        .args([
            "--input-raw",
            &value,
            "--capture-max-rss",
            "1kb",
            "--output-null",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    for i in 0..5 {
        assert!(lab.client(&[
            "curl",
            "-s",
            "-o",
            "/dev/null",
            &format!("http://{}/paused/{i}", lab.server_ip)
        ]));
    }
    std::thread::sleep(Duration::from_millis(500));
    signal(child.id(), "INT");
    let output = wait_output(child, Duration::from_secs(20));
    assert_success(&output);
    let text = stderr(&output);
    assert!(text.contains("output-null in 0 out 0"), "{text}");
    assert!(
        text.contains("(paused ") && text.contains("paused: memory"),
        "{text}"
    );
}
