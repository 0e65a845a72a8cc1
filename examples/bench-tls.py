#!/usr/bin/env python3
"""bench-tls.py — how fast shadowtap decrypts HTTPS from a key log, next to tshark (issue 13).

    examples/bench-tls.py        # as root (tcpdump on lo); needs nginx (with ssl), tcpdump,
                                 # openssl, tshark, taskset, cargo, python3 (ssl keylog_filename)

1. Builds target/release/shadowtap (`cargo build --release --bin shadowtap`).
2. Unless they already exist, records into ${BENCH_DIR:-/tmp/shadowtap-bench-tls}:
   * `small.pcap` + `small.keys`: >= $BENCH_REQUESTS (default 50 000) keep-alive HTTPS requests
     from a Python `ssl` client (key log through `SSLContext.keylog_filename`) over
     $BENCH_CONNECTIONS (default 40) connections, 4 threads, to nginx on 127.0.0.1:$BENCH_PORT
     (ECDSA P-256 certificate, one worker, config in a tempdir): half the connections TLS 1.3
     (OpenSSL's default suite: TLS_AES_256_GCM_SHA384), half TLS 1.2 (ECDHE-ECDSA-AES128-GCM-SHA256
     and -AES256-GCM-SHA384 alternating), ALPN http/1.1; a mix of `GET /` (tiny), `GET /1k`,
     `GET /16k` and `POST /form` (600-byte body).
   * `large.pcap` + `large.keys`: $BENCH_LARGE (default 100) `GET /1m` (1 MiB bodies) over 4
     connections (TLS 1.3 and 1.2 AES-GCM): raw AES-GCM throughput.
   Captured with `tcpdump -i lo -s 0 -U -w` on the port; a capture with kernel drops is
   rejected. The client writes the plaintext bytes it sent and received (`*.plaintext`).
   Delete the files (or set BENCH_DIR) to record new ones.
3. Times, in ${BENCH_RUNS:-3} interleaved rounds (the tools take turns), each pinned to one core
   (`taskset -c ${BENCH_CPU:-0}`), output to /dev/null:
      tshark -r small.pcap -o tls.keylog_file:small.keys -Y http.request -T fields -e http.request.uri
      shadowtap --input-pcap small.pcap:PORT --input-pcap-workers 1 --input-raw-tls-keylog small.keys
                --input-raw-track-response --output-null
   and the same two on large.pcap. Prints best and
   median wall time, the ratio tshark/shadowtap (best against best and the median of the
   per-round ratios; target >= 30x), the requests each found (tshark: lines; shadowtap: an
   extra untimed run without --input-raw-track-response, `output-null in N`), and decrypted
   application MB/s per core = plaintext bytes (both directions) / shadowtap's CPU time
   (user + sys of the process; target >= 1 GB/s with AES-GCM on the large capture).

The plain-HTTP reference (shadowtap vs cat, httpry and tshark on an nginx/wrk capture) is
examples/bench-capture.sh; the plain path must stay as fast as it measured before TLS.

Environment: BENCH_DIR, BENCH_PORT (18460), BENCH_REQUESTS (50000), BENCH_CONNECTIONS (40),
BENCH_LARGE (100), BENCH_RUNS (3), BENCH_CPU (0), BENCH_LARGE_TSHARK (1; 0 skips tshark there), CARGO_TARGET_DIR.
Everything the recording starts (nginx, tcpdump, the tempdir) is stopped/removed on exit.
"""

import os
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import bench_nginx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.environ.get("BENCH_DIR", "/tmp/shadowtap-bench-tls")
PORT = int(os.environ.get("BENCH_PORT", "18460"))
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "50000"))
CONNECTIONS = int(os.environ.get("BENCH_CONNECTIONS", "40"))
LARGE = int(os.environ.get("BENCH_LARGE", "100"))
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CPU = os.environ.get("BENCH_CPU", "0")
LARGE_TSHARK = os.environ.get("BENCH_LARGE_TSHARK", "1") == "1"
THREADS = 4
POST_BODY = b"f=" + b"x" * 598


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def need(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"bench-tls: {tool} is missing")


# --------------------------------------------------------------------------------------------
# Recording


class Server:
    """nginx on 127.0.0.1:PORT with TLS 1.2 and 1.3, from a tempdir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="stap-bench-tls.")
        d = self.dir
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", f"{d}/key.pem",
                        "-out", f"{d}/cert.pem", "-days", "2", "-subj", "/CN=localhost"],
                       check=True, capture_output=True)
        os.makedirs(f"{d}/www")
        for name, size in [("1k", 1024), ("16k", 16384), ("1m", 1 << 20)]:
            with open(f"{d}/www/{name}", "wb") as f:
                f.write((b"0123456789abcdef" * (size // 16 + 1))[:size])
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""daemon on; master_process off; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi; default_type text/plain;
  server {{ listen 127.0.0.1:{PORT} ssl; ssl_certificate {d}/cert.pem; ssl_certificate_key {d}/key.pem;
    ssl_protocols TLSv1.2 TLSv1.3;
    location = / {{ return 200 "hello from nginx\\n"; }}
    location = /form {{ return 200 "stored\\n"; }}
    location / {{ root {d}/www; }} }} }}
""")
        bench_nginx.start(d, PORT, "bench-tls")

    def stop(self):
        bench_nginx.stop(self.dir)


def read_response(sock, buf):
    """Reads one Content-Length response from sock; returns (bytes of it, leftover)."""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    head_end = buf.index(b"\r\n\r\n") + 4
    length = 0
    for line in buf[:head_end].split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    total = head_end + length
    while len(buf) < total:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("closed")
        buf += chunk
    return total, buf[total:]


def context(keys, tls12, n):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.keylog_filename = keys
    ctx.set_alpn_protocols(["http/1.1"])
    if tls12:
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256" if n % 4 < 2 else "ECDHE-ECDSA-AES256-GCM-SHA384")
    else:
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    return ctx


def one_connection(n, keys, paths, count, totals, lock):
    ctx = context(keys, n % 2 == 1, n)
    raw = socket.create_connection(("127.0.0.1", PORT))
    sock = ctx.wrap_socket(raw, server_hostname="localhost")
    sent = received = 0
    buf = b""
    for i in range(count):
        path = paths[(n + i) % len(paths)]
        if path == "/form":
            req = (b"POST /form HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(POST_BODY)) + POST_BODY
        else:
            req = b"GET %s?n=%d HTTP/1.1\r\nHost: localhost\r\nUser-Agent: bench-tls\r\n\r\n" % (path.encode(), i)
        sock.sendall(req)
        sent += len(req)
        got, buf = read_response(sock, buf)
        received += got
    sock.close()
    with lock:
        totals[0] += sent
        totals[1] += received


def client(keys, paths, connections, per_connection):
    totals, lock = [0, 0], threading.Lock()
    queue = list(range(connections))

    def worker():
        while True:
            with lock:
                if not queue:
                    return
                n = queue.pop()
            one_connection(n, keys, paths, per_connection, totals, lock)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return totals


def record(name, paths, connections, per_connection):
    pcap, keys = f"{BENCH_DIR}/{name}.pcap", f"{BENCH_DIR}/{name}.keys"
    if os.path.exists(pcap) and os.path.exists(keys) and os.path.exists(f"{pcap}.plaintext"):
        return
    log(f"== recording {pcap}: {connections * per_connection} requests on {connections} connections")
    for f in (pcap, keys):
        if os.path.exists(f):
            os.remove(f)
    server = Server()
    tcpdump = subprocess.Popen(["tcpdump", "-i", "lo", "-s", "0", "-U", "-B", "65536", "-w", pcap,
                                f"tcp port {PORT}"], stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(1)
        start = time.time()
        sent, received = client(keys, paths, connections, per_connection)
        log(f"   client: {time.time() - start:.1f} s, {sent + received} plaintext bytes")
        time.sleep(1)
    finally:
        tcpdump.send_signal(signal.SIGINT)
        _, err = tcpdump.communicate(timeout=30)
        server.stop()
    if "0 packets dropped by kernel" not in err:
        os.remove(pcap)
        raise SystemExit(f"bench-tls: tcpdump dropped packets: {err}")
    with open(f"{pcap}.plaintext", "w") as f:
        f.write(f"{sent + received}\n")


# --------------------------------------------------------------------------------------------
# Timing


def timed(cmd):
    """(wall seconds, CPU seconds of the child, stdout, stderr) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(["taskset", "-c", CPU] + cmd, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"bench-tls: {cmd[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return wall, cpu, proc.stdout, proc.stderr.decode(errors="replace")


def shadowtap_cmd(binary, name, extra):
    return [binary, "--input-pcap", f"{BENCH_DIR}/{name}.pcap:{PORT}", "--input-pcap-workers", "1",
            "--input-raw-tls-keylog", f"{BENCH_DIR}/{name}.keys"] + extra + ["--output-null"]


def tshark_cmd(name):
    return ["tshark", "-r", f"{BENCH_DIR}/{name}.pcap", "-o", f"tls.keylog_file:{BENCH_DIR}/{name}.keys",
            "-Y", "http.request", "-T", "fields", "-e", "http.request.uri"]


def output_null_in(stderr):
    for line in reversed(stderr.splitlines()):
        if "output-null in " in line:
            return int(line.split("output-null in ", 1)[1].split()[0])
    return -1


def summarise(label, walls):
    return f"{label}: best {min(walls):.3f} s, median {statistics.median(walls):.3f} s ({len(walls)} runs)"


def bench(binary, name, with_tshark):
    plaintext = int(open(f"{BENCH_DIR}/{name}.pcap.plaintext").read())
    pcap_mb = os.path.getsize(f"{BENCH_DIR}/{name}.pcap") / 1e6
    log(f"== {name}.pcap: {pcap_mb:.1f} MB, {plaintext / 1e6:.1f} MB of plaintext")
    st_walls, st_cpus, ts_walls, ratios = [], [], [], []
    st_tls = shadowtap_cmd(binary, name, ["--input-raw-track-response"])
    tshark_requests = -1
    for r in range(RUNS):
        if with_tshark:
            wall, _, out, _ = timed(tshark_cmd(name))
            ts_walls.append(wall)
            tshark_requests = out.count(b"\n")
        wall, cpu, _, err = timed(st_tls)
        st_walls.append(wall)
        st_cpus.append(cpu)
        if with_tshark:
            ratios.append(ts_walls[-1] / wall)
        log(f"   round {r + 1}: shadowtap {wall:.3f} s (cpu {cpu:.3f} s)"
            + (f", tshark {ts_walls[-1]:.3f} s" if with_tshark else ""))
    _, _, _, err = timed(shadowtap_cmd(binary, name, []))
    shadowtap_requests = output_null_in(err)
    print(f"--- {name}.pcap ({pcap_mb:.1f} MB, {plaintext / 1e6:.1f} MB plaintext)")
    print(summarise("shadowtap --input-raw-track-response", st_walls))
    if with_tshark:
        print(summarise("tshark -Y http.request", ts_walls))
        print(f"tshark / shadowtap: {min(ts_walls) / min(st_walls):.1f}x best against best, "
              f"{statistics.median(ratios):.1f}x median of the rounds' ratios "
              f"(range {min(ratios):.1f}-{max(ratios):.1f}; target >= 30x)")
        print(f"requests found: tshark {tshark_requests}, shadowtap {shadowtap_requests}")
        if shadowtap_requests != tshark_requests:
            print("WARNING: the counts differ: the times and MB/s below do not compare like with like")
    else:
        print(f"requests found: shadowtap {shadowtap_requests}")
    best_cpu = min(st_cpus)
    print(f"decrypted application data: {plaintext / best_cpu / 1e6:.0f} MB/s per core "
          f"({plaintext} bytes / {best_cpu:.3f} s of CPU, best run)")


def main():
    need("cargo", "nginx", "tcpdump", "openssl", "tshark", "taskset")
    if os.geteuid() != 0:
        sys.exit("bench-tls: run as root (tcpdump on lo)")
    log("== building target/release/shadowtap")
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "shadowtap"], cwd=REPO, check=True)
    target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
    binary = os.path.join(target, "release", "shadowtap")
    os.makedirs(BENCH_DIR, exist_ok=True)
    per_connection = -(-REQUESTS // CONNECTIONS)
    record("small", ["/", "/1k", "/16k", "/form", "/", "/1k"], CONNECTIONS, per_connection)
    record("large", ["/1m"], 4, -(-LARGE // 4))
    bench(binary, "small", True)
    bench(binary, "large", LARGE_TSHARK)


if __name__ == "__main__":
    main()
