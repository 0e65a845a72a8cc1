#!/usr/bin/env python3
"""bench-h2.py — how fast shadowtap decodes captured HTTP/2, next to tshark, and how fast it
replays HTTP/2, next to h2load (issue 14).

    examples/bench-h2.py         # as root (tcpdump on lo); needs nginx (with http2), tcpdump,
                                 # h2load (nghttp2-client), tshark, taskset, cargo, python3

1. Builds target/release/shadowtap (`cargo build --release --bin shadowtap`).
2. Unless it already exists, records $BENCH_PCAP (default /tmp/h2-bench.pcap) with
   `tests/fixtures/h2/make-h2.sh --bench $BENCH_PCAP`: `h2load -n 200000 -c 10 -m 10` against
   nginx h2c (prior knowledge) on 127.0.0.1:18280, `GET /echo?bench=1` (a 19-byte body back),
   captured with tcpdump on lo (a capture with kernel drops is rejected). Delete the file to
   record a new one.
3. Decode, in $BENCH_RUNS (default 3) interleaved rounds (the tools take turns), each pinned to
   one core (`taskset -c ${BENCH_CPU:-0}`), output to /dev/null:
      tshark -r PCAP -d tcp.port==18280,http2 -Y http2 -T fields -e tcp.stream -e http2.streamid
             -e http2.type -e http2.headers.path -e http2.headers.status -e http2.data.data
      shadowtap --input-pcap PCAP:18280 --input-pcap-workers 1 --input-raw-track-response
                --output-null
   tshark decodes every frame, HPACK included (the fields are the decoded `:path`, `:status`
   and DATA bytes); its output is counted: requests = `:path` values, responses = `:status`
   values, streams = distinct (connection, stream) pairs with a request. shadowtap's counts
   come from its exit summary (`output-null in N` = requests + responses, and an extra untimed
   run without --input-raw-track-response for the requests alone); the script fails unless
   both found every one of the h2load run's requests and responses.
   Prints best and median wall time of each, tshark/shadowtap (best against best, and the
   median and range of the per-round ratios; target >= 50x), and streams per second per core =
   streams / shadowtap's *user* CPU time (getrusage of the child: all of its threads; best run;
   target >= 500k), with user + system beside it.
4. Replay ("replay" section): records the capture's requests to one .gor file
   (`shadowtap --input-pcap PCAP:18280 --output-file GOR --output-file-append`, untimed),
   starts a fresh nginx h2c on 127.0.0.1:$BENCH_REPLAY_PORT (default 18286; same `/echo`
   location) and, in $BENCH_RUNS interleaved rounds (not pinned: both clients share the cores
   with nginx):
      shadowtap --input-file 'GOR|100000%' --output-http h2c://127.0.0.1:PORT
                --output-http-workers 10 --output-http-workers-min 10 --output-http-h2-streams 10
      h2load -n N -c 10 -m 10 http://127.0.0.1:PORT/echo?bench=1      (N = the .gor's requests)
   shadowtap's rate is the requests it sent (`output-http[…] out N` in its summary) over the
   wall time of the process; h2load's is its own `req/s`. Prints best and median of both and
   shadowtap/h2load (target >= 0.8x). The section is skipped, saying so, when the binary has
   no `--output-http-h2-streams` (HTTP/2 replay not built in).

Environment: BENCH_PCAP, BENCH_RUNS (3), BENCH_CPU (0), BENCH_REPLAY_PORT (18286),
BENCH_DECODE (1; 0 skips the decode section), BENCH_REPLAY (1; 0 skips the replay section),
BENCH_SHADOWTAP (a shadowtap binary to measure instead of building one), CARGO_TARGET_DIR.
Everything the replay section starts (nginx, its tempdir, the .gor) is stopped/removed on exit.
"""

import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import bench_nginx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PCAP = os.environ.get("BENCH_PCAP", "/tmp/h2-bench.pcap")
PORT = 18280  # make-h2.sh --bench's nginx h2c port
RUNS = int(os.environ.get("BENCH_RUNS", "3"))
CPU = os.environ.get("BENCH_CPU", "0")
REPLAY_PORT = int(os.environ.get("BENCH_REPLAY_PORT", "18286"))
REPLAY = os.environ.get("BENCH_REPLAY", "1") == "1"
DECODE = os.environ.get("BENCH_DECODE", "1") == "1"
STREAMS = 200_000  # make-h2.sh --bench: h2load -n 200000
URL_PATH = "/echo?bench=1"


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def need(*tools):
    for tool in tools:
        if shutil.which(tool) is None:
            sys.exit(f"bench-h2: {tool} is missing")


def timed(cmd, pin=True):
    """(wall seconds, user CPU seconds, user + system CPU seconds, stdout, stderr) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run((["taskset", "-c", CPU] if pin else []) + cmd, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    if proc.returncode != 0:
        raise SystemExit(f"bench-h2: {cmd[0]} failed: {proc.stderr.decode(errors='replace')[-2000:]}")
    return wall, user, user + system, proc.stdout, proc.stderr.decode(errors="replace")


def summarise(label, values, unit="s", digits=3):
    return (f"{label}: best {min(values) if unit == 's' else max(values):.{digits}f} {unit}, "
            f"median {statistics.median(values):.{digits}f} {unit} ({len(values)} runs)")


def counter(stderr, name):
    """N of `NAME in N` in shadowtap's exit summary (-1 when absent)."""
    match = re.findall(re.escape(name) + r"(?:\[[^\]]*\])? in (\d+)(?: out (\d+))?", stderr)
    return (int(match[-1][0]), int(match[-1][1] or -1)) if match else (-1, -1)


# --------------------------------------------------------------------------------------------
# Decoding


def record():
    if os.path.exists(PCAP):
        return
    log(f"== recording {PCAP} (tests/fixtures/h2/make-h2.sh --bench)")
    subprocess.run([f"{REPO}/tests/fixtures/h2/make-h2.sh", "--bench", PCAP], check=True)


def tshark_cmd():
    return ["tshark", "-r", PCAP, "-d", f"tcp.port=={PORT},http2", "-Y", "http2", "-T", "fields",
            "-e", "tcp.stream", "-e", "http2.streamid", "-e", "http2.type", "-e", "http2.headers.path",
            "-e", "http2.headers.status", "-e", "http2.data.data"]


def tshark_counts(out):
    """(requests, responses, streams) in tshark's field output: one line per packet, the
    values of each field comma-separated over the packet's frames."""
    requests = responses = 0
    streams = set()
    for line in out.decode(errors="replace").splitlines():
        cols = line.split("\t")
        if len(cols) < 5:
            continue
        paths = [p for p in cols[3].split(",") if p]
        requests += len(paths)
        responses += len([s for s in cols[4].split(",") if s])
        if paths:
            # Frames with a :path are HEADERS frames; pair them with their stream ids in order.
            ids = [i for i, t in zip(cols[1].split(","), cols[2].split(",")) if t == "1"]
            streams.update((cols[0], i) for i in ids[: len(paths)])
    return requests, responses, len(streams)


def shadowtap_cmd(binary, track_responses):
    return [binary, "--input-pcap", f"{PCAP}:{PORT}", "--input-pcap-workers", "1"] + (
        ["--input-raw-track-response"] if track_responses else []) + ["--output-null"]


def bench_decode(binary):
    mb = os.path.getsize(PCAP) / 1e6
    log(f"== decode: {PCAP} ({mb:.1f} MB), {RUNS} rounds, pinned to CPU {CPU}")
    st_walls, st_users, st_cpus, ts_walls, ratios = [], [], [], [], []
    tshark_found = None
    messages = -1
    for r in range(RUNS):
        wall, _, _, out, _ = timed(tshark_cmd())
        ts_walls.append(wall)
        tshark_found = tshark_counts(out)
        wall, user, cpu, _, err = timed(shadowtap_cmd(binary, True))
        messages = counter(err, "output-null")[0]
        st_walls.append(wall)
        st_users.append(user)
        st_cpus.append(cpu)
        ratios.append(ts_walls[-1] / wall)
        log(f"   round {r + 1}: shadowtap {wall:.3f} s (user {user:.3f} s, user+sys {cpu:.3f} s), "
            f"tshark {ts_walls[-1]:.3f} s")
    _, _, _, _, err = timed(shadowtap_cmd(binary, False))
    requests = counter(err, "output-null")[0]
    responses = messages - requests
    print(f"--- decode: {PCAP} ({mb:.1f} MB, h2load -n {STREAMS} -c 10 -m 10 against nginx h2c)")
    print(summarise("shadowtap --input-pcap-workers 1 --input-raw-track-response --output-null", st_walls))
    print(summarise("tshark -d tcp.port==PORT,http2 -Y http2 -T fields (path, status, data)", ts_walls))
    print(f"tshark / shadowtap: {min(ts_walls) / min(st_walls):.1f}x best against best, "
          f"{statistics.median(ratios):.1f}x median of the rounds' ratios "
          f"(range {min(ratios):.1f}-{max(ratios):.1f}; target >= 50x)")
    best_user = min(st_users)
    print(f"streams per second per core: {STREAMS / best_user / 1e3:.0f}k "
          f"({STREAMS} streams / {best_user:.3f} s of user CPU, best run; median "
          f"{STREAMS / statistics.median(st_users) / 1e3:.0f}k; with system time "
          f"{STREAMS / min(st_cpus) / 1e3:.0f}k; target >= 500k)")
    t_req, t_resp, t_streams = tshark_found
    print(f"found: shadowtap {requests} requests, {responses} responses; "
          f"tshark {t_req} requests, {t_resp} responses, {t_streams} streams")
    if not requests == responses == t_req == t_resp == t_streams == STREAMS:
        raise SystemExit(f"bench-h2: not every one of the {STREAMS} streams was decoded by both")


# --------------------------------------------------------------------------------------------
# Replay


class Nginx:
    """nginx h2c on 127.0.0.1:REPLAY_PORT, from a tempdir."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="stap-bench-h2.")
        d = self.dir
        with open(f"{d}/nginx.conf", "w") as f:
            f.write(f"""daemon on; master_process off; pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 1024; }}
http {{ access_log off; sendfile off; keepalive_requests 1000000; keepalive_timeout 60s;
  client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fastcgi;
  uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
  server {{ listen 127.0.0.1:{REPLAY_PORT} http2;
    location /echo {{ add_header x-echo-test "$http_x_test"; return 200 "echo $request_uri\\n"; }}
    location / {{ return 404 "not here\\n"; }} }} }}
""")
        bench_nginx.start(d, REPLAY_PORT, "bench-h2")

    def stop(self):
        bench_nginx.stop(self.dir)


def replay_supported(binary):
    out = subprocess.run([binary, "--help"], capture_output=True, text=True).stdout
    return "--output-http-h2-streams" in out


def h2load_rate(out):
    match = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out.decode(errors="replace"))
    done = re.search(r"requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded", out.decode(errors="replace"))
    if not match or not done:
        raise SystemExit(f"bench-h2: unexpected h2load output: {out[-500:]!r}")
    return float(match.group(1)), int(done.group(2))


def bench_replay(binary):
    if not replay_supported(binary):
        print("--- replay: SKIPPED: this shadowtap has no --output-http-h2-streams "
              "(HTTP/2 replay to h2c:// is not in this build)")
        return
    work = tempfile.mkdtemp(prefix="stap-bench-h2-gor.")
    gor = f"{work}/requests.gor"
    server = None
    try:
        log(f"== replay: recording the capture's requests to {gor}")
        _, _, _, _, err = timed([binary, "--input-pcap", f"{PCAP}:{PORT}", "--output-file", gor, "--output-file-append"],
                           pin=False)
        requests = counter(err, "output-file")[0]
        server = Nginx()
        url = f"http://127.0.0.1:{REPLAY_PORT}{URL_PATH}"
        st_rates, h2_rates, ratios = [], [], []
        for r in range(RUNS):
            out = subprocess.run(["h2load", "-n", str(requests), "-c", "10", "-m", "10", url],
                                 capture_output=True, check=True).stdout
            h2_rate, succeeded = h2load_rate(out)
            h2_rates.append(h2_rate)
            wall, _, _, _, err = timed([binary, "--input-file", f"{gor}|100000%", "--output-http",
                                        f"h2c://127.0.0.1:{REPLAY_PORT}", "--output-http-workers", "10",
                                        "--output-http-workers-min", "10", "--output-http-h2-streams", "10"],
                                       pin=False)
            sent = counter(err, "output-http")[1]
            st_rates.append(sent / wall)
            ratios.append(st_rates[-1] / h2_rate)
            log(f"   round {r + 1}: shadowtap {sent} requests in {wall:.3f} s = {st_rates[-1]:.0f} req/s, "
                f"h2load {succeeded} succeeded, {h2_rate:.0f} req/s")
            if sent != requests or succeeded != requests:
                raise SystemExit(f"bench-h2: replay sent {sent}, h2load {succeeded} of {requests} requests")
        print(f"--- replay: {requests} requests over 10 connections x 10 streams to nginx h2c")
        print(summarise("shadowtap --output-http h2c:// (10 workers, 10 streams each)", st_rates, "req/s", 0))
        print(summarise("h2load -c 10 -m 10", h2_rates, "req/s", 0))
        print(f"shadowtap / h2load: {max(st_rates) / max(h2_rates):.2f}x best against best, "
              f"{statistics.median(ratios):.2f}x median of the rounds' ratios "
              f"(range {min(ratios):.2f}-{max(ratios):.2f}; target >= 0.8x)")
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    need("cargo", "nginx", "tcpdump", "h2load", "tshark", "taskset")
    if os.geteuid() != 0 and not os.path.exists(PCAP):
        sys.exit("bench-h2: run as root (tcpdump on lo) to record the capture")
    binary = os.environ.get("BENCH_SHADOWTAP")
    if not binary:
        log("== building target/release/shadowtap")
        subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "shadowtap"], cwd=REPO, check=True)
        target = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
        binary = os.path.join(target, "release", "shadowtap")
    record()
    if DECODE:
        bench_decode(binary)
    if REPLAY:
        bench_replay(binary)


if __name__ == "__main__":
    main()
