#!/usr/bin/env bash
# Differential replay (--output-diff) throughput and memory, each against a reference in the
# same run, rounds interleaved (these machines are noisy):
#
#   examples/bench-diff.sh [PAIRS] [ROUNDS] [MEMORY_SECONDS]     (defaults: 200000, 3, 60)
#
# 1. Pairs compared per CPU-second: a .gor of PAIRS requests, their original JSON responses and
#    replayed ones (`target=candidate`; 5 % change a field, 1,000 endpoints), read by
#    `--output-diff` vs `--output-null` (the same file through the engine alone) vs `cat`.
#    Per core = pairs / (user + system CPU seconds of the whole process).
# 2. Replay with --output-diff on vs off: `--output-http` with responses tracked to one nginx
#    (which answers each request's original JSON), the same requests, in turns.
# 3. The comparing thread's own rate (output-diff compares on one thread: its CPU time from /proc
#    against the pairs it had compared, from --metrics, at the same moments), and memory: the
#    pairs file looped for MEMORY_SECONDS (100 s reach about 10 M pairs here; the target is
#    ≤ 256 MB for 10 M pairs over 1,000 endpoints).
# Needs: cargo, python3, nginx (apt-get install nginx-light), GNU time (/usr/bin/time).
set -euo pipefail

PAIRS=${1:-200000}
ROUNDS=${2:-3}
MEMORY_SECONDS=${3:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$NGINX" ] || { echo "bench-diff: nginx is not installed (apt-get install nginx-light)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "bench-diff: GNU time is not installed (apt-get install time)" >&2; exit 1; }

if [ -z "${SHADOWTAP:-}" ]; then  # SHADOWTAP=path/to/binary skips the build
    echo "building release binary…" >&2
    (cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet --bin shadowtap)
    SHADOWTAP=$TARGET_DIR/release/shadowtap
fi

WORK=$(mktemp -d)
NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

python3 - "$WORK" "$PAIRS" <<'EOF'
import sys
work, pairs = sys.argv[1], int(sys.argv[2])
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
def body(i, plan):
    return ('{"id":%d,"name":"user %d","plan":"%s","items":[{"sku":"a%d","price":%d}],"active":true}'
            % (i, i, plan, i % 97, i % 50)).encode()
def response(b):
    return b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b)
with open(f"{work}/pairs.gor", "wb") as out, open(f"{work}/requests.gor", "wb") as req:
    for i in range(pairs):
        rid = b"%024x" % i
        path = b"/api/e%d/users/%d" % (i % 1000, i)
        request = b"GET %s HTTP/1.1\r\nHost: api.example\r\nAccept: application/json\r\n\r\n" % path
        original = response(body(i, "pro"))
        replayed = response(body(i, "free" if i % 20 == 0 else "pro"))
        for f in (out, req):
            f.write(b"1 %s 1700000000000000000 0\n%s%s" % (rid, request, sep))
            f.write(b"2 %s 1700000000000000001 1000000\n%s%s" % (rid, original, sep))
        out.write(b"3 %s 1700000000000000002 2000000 target=candidate\n%s%s" % (rid, replayed, sep))
EOF
echo "pairs file: $(du -h "$WORK/pairs.gor" | cut -f1), $PAIRS pairs" >&2

# One timed run: prints "wall cpu maxrss_kb".
timed() {
    /usr/bin/time -f "%e %U %S %M" -o "$WORK/time" "$@" >/dev/null 2>"$WORK/stderr" || true
    awk '{printf "%s %.3f %s\n", $1, $2 + $3, $4}' "$WORK/time"
}

stats() { # name values… → best and median
    python3 -c 'import sys,statistics as s; v=[float(x) for x in sys.argv[2:]]; print(f"{sys.argv[1]}: best {max(v):,.0f}  median {s.median(v):,.0f}")' "$@"
}

echo "== 1. pairs compared per CPU-second ($ROUNDS rounds)"
diff_rates=(); net_rates=(); cat_ratio=()
for round in $(seq "$ROUNDS"); do
    read -r cat_wall _ _ < <(timed cat "$WORK/pairs.gor")
    read -r _ null_cpu _ < <(timed "$SHADOWTAP" --input-file "$WORK/pairs.gor" --output-null)
    read -r diff_wall diff_cpu diff_rss < <(timed "$SHADOWTAP" --input-file "$WORK/pairs.gor" --output-diff "$WORK/r.html")
    grep -q "output-diff: $PAIRS pairs" "$WORK/stderr" || { echo "round $round: not every pair compared:"; tail -3 "$WORK/stderr"; }
    rate=$(python3 -c "print($PAIRS / $diff_cpu)")
    net=$(python3 -c "print($PAIRS / max($diff_cpu - $null_cpu, 1e-3))")
    diff_rates+=("$rate"); net_rates+=("$net")
    cat_ratio+=("$(python3 -c "print($diff_wall / max($cat_wall, 1e-3))")")
    printf "round %d: diff %.2fs wall %.2fs CPU (%.0f pairs/CPU-s, %.0f net of the engine's %.2fs), cat %.2fs, RSS %d MB\n" \
        "$round" "$diff_wall" "$diff_cpu" "$rate" "$net" "$null_cpu" "$cat_wall" "$((diff_rss / 1024))"
done
stats "pairs per CPU-second (whole process)" "${diff_rates[@]}"
stats "pairs per CPU-second (comparison alone)" "${net_rates[@]}"

echo "== 2. replay with --output-diff on vs off ($ROUNDS rounds)"
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
mkdir -p "$WORK/nginx"
cat > "$WORK/nginx/nginx.conf" <<EOF
daemon off; master_process off; pid $WORK/nginx/pid; error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http { access_log off; keepalive_requests 1000000; client_body_temp_path $WORK/nginx/b;
  proxy_temp_path $WORK/nginx/p; fastcgi_temp_path $WORK/nginx/f; uwsgi_temp_path $WORK/nginx/u; scgi_temp_path $WORK/nginx/s;
  server { listen 127.0.0.1:$PORT;
    location ~ ^/api/e\d+/users/(\d+)$ { default_type application/json;
      return 200 '{"id":\$1,"name":"user \$1","plan":"pro","items":[{"sku":"a1","price":1}],"active":true}'; } } }
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
sleep 0.5
ratios=(); offs=(); ons=()
replay=("$SHADOWTAP" --input-file "$WORK/requests.gor|100000%" --output-http "http://127.0.0.1:$PORT"
        --output-http-workers 8 --output-http-track-response)
for round in $(seq "$ROUNDS"); do
    read -r off_wall _ _ < <(timed "${replay[@]}" --output-null)
    read -r on_wall _ on_rss < <(timed "${replay[@]}" --output-diff "$WORK/replay.html")
    off=$(python3 -c "print($PAIRS / $off_wall)"); on=$(python3 -c "print($PAIRS / $on_wall)")
    offs+=("$off"); ons+=("$on"); ratios+=("$(python3 -c "print($on / $off)")")
    printf "round %d: off %.0f req/s, on %.0f req/s (%.2f×), RSS %d MB\n" "$round" "$off" "$on" \
        "$(python3 -c "print($on / $off)")" "$((on_rss / 1024))"
done
stats "replay off, req/s" "${offs[@]}"
stats "replay on, req/s" "${ons[@]}"
python3 -c 'import sys,statistics as s; v=[float(x) for x in sys.argv[1:]]; print(f"on/off: best {max(v):.2f}×  median {s.median(v):.2f}×")' "${ratios[@]}"

echo "== 3. the comparing thread, and memory: the pairs file looped for ${MEMORY_SECONDS}s through --output-diff"
# output-diff compares on one thread: its own CPU time (from /proc) against the pairs it had
# compared (from --metrics) at the same moments gives pairs per second of one core.
python3 - "$SHADOWTAP" "$WORK" "$MEMORY_SECONDS" <<'EOF'
import os, re, socket, statistics, subprocess, sys, time, urllib.request
shadowtap, work, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
proc = subprocess.Popen([shadowtap, "--input-file", f"{work}/pairs.gor", "--input-file-loop",
                         "--exit-after", f"{seconds}s", "--output-diff", f"{work}/memory.html",
                         "--metrics", f"127.0.0.1:{port}"],
                        stdout=subprocess.DEVNULL, stderr=open(f"{work}/memory.err", "w"))
tick = os.sysconf("SC_CLK_TCK")
def sample():
    cpu = None
    for tid in os.listdir(f"/proc/{proc.pid}/task"):
        try:
            comm = open(f"/proc/{proc.pid}/task/{tid}/comm").read()
            stat = open(f"/proc/{proc.pid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if comm.startswith("output-diff"):
            cpu = (int(stat[11]) + int(stat[12])) / tick
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    pairs = int(re.search(r'name="diff pairs"\} (\d+)', text).group(1))
    hwm = int(re.search(r"VmHWM:\s+(\d+)", open(f"/proc/{proc.pid}/status").read()).group(1))
    return time.time(), cpu, pairs, hwm
time.sleep(2)
start = time.time()
samples = []
while time.time() < start + seconds - 4:
    samples.append(sample())
    time.sleep(2)
proc.wait()
rates = [(b[2] - a[2]) / (b[1] - a[1]) for a, b in zip(samples, samples[1:]) if b[1] > a[1]]
print(f"comparing thread: {statistics.median(rates):,.0f} pairs per CPU-second median, "
      f"{max(rates):,.0f} best, over {len(rates)} windows of 2 s")
compared = int(re.search(r"output-diff: (\d+) pairs", open(f"{work}/memory.err").read()).group(1))
print(f"{compared:,} pairs over 1,000 endpoints: peak RSS {samples[-1][3] // 1024} MB "
      f"(read {seconds - 4} s into the run)")
EOF
