#!/usr/bin/env bash
# Replay throughput of --output-http against a local nginx, with wrk on the same nginx and URL
# in the same run as the reference.
#
#   examples/bench_replay.sh [REQUESTS] [CONNECTIONS]     (defaults: 100000 and 16)
#
# Builds the release binary, writes a .gor file of REQUESTS real-looking GET requests (browser
# headers, varied paths and queries), starts nginx on loopback (`return 200 "ok"`, no access
# log), then runs
#   shadowtap --input-file 'f.gor|100000%' --output-http http://127.0.0.1:PORT --output-http-workers C
#   wrk -c C -t 2 -d 10s http://127.0.0.1:PORT/...
# and prints both rates and their ratio (target ≥ 0.7), and shadowtap's peak RSS.
# Needs: cargo, nginx (apt-get install nginx-light), wrk, python3.
set -euo pipefail

REQUESTS=${1:-100000}
CONNECTIONS=${2:-16}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TARGET_DIR=${CARGO_TARGET_DIR:-$ROOT/target}

for tool in nginx wrk python3; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        echo "bench_replay: $tool is not installed" >&2
        exit 1
    }
done
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

echo "building release binary…" >&2
(cd "$ROOT" && CARGO_TARGET_DIR=$TARGET_DIR cargo build --release --quiet --bin shadowtap)
SHADOWTAP=$TARGET_DIR/release/shadowtap

WORK=$(mktemp -d)
NGINX_PID=
cleanup() {
    [ -n "$NGINX_PID" ] && kill "$NGINX_PID" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

python3 - "$WORK/requests.gor" "$REQUESTS" <<'EOF'
import sys
path, count = sys.argv[1], int(sys.argv[2])
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
pages = ["/", "/products", "/products/1234", "/search", "/cart", "/api/v1/items", "/static/app.js"]
with open(path, "wb") as out:
    for i in range(count):
        page = pages[i % len(pages)]
        query = f"?q=item{i % 997}&page={i % 13}&utm_source=newsletter" if i % 3 == 0 else ""
        request = (
            f"GET {page}{query} HTTP/1.1\r\n"
            "Host: shop.example.com\r\n"
            "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
            "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
            "Accept-Language: en-US,en;q=0.9\r\n"
            "Accept-Encoding: gzip, deflate, br\r\n"
            f"Cookie: session={i * 7919 % 1000003:x}; theme=dark\r\n"
            "Connection: keep-alive\r\n\r\n"
        )
        meta = f"1 {i + 1:024x} {1_700_000_000_000_000_000 + i * 1_000_000} 0\n"
        out.write(meta.encode() + request.encode() + sep)
EOF

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    keepalive_requests 10000000;
    client_body_temp_path $WORK/nginx/body;
    proxy_temp_path $WORK/nginx/proxy;
    fastcgi_temp_path $WORK/nginx/fastcgi;
    uwsgi_temp_path $WORK/nginx/uwsgi;
    scgi_temp_path $WORK/nginx/scgi;
    server {
        listen 127.0.0.1:$PORT;
        location / { return 200 "ok"; }
    }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -e "$WORK/nginx/error.log" &
NGINX_PID=$!
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    sleep 0.05
done

URL="http://127.0.0.1:$PORT"
echo "replaying $REQUESTS requests with $CONNECTIONS workers…" >&2
TIME=()
echo "?" >"$WORK/rss"
[ -x /usr/bin/time ] && TIME=(/usr/bin/time -f '%M' -o "$WORK/rss")
START=$(date +%s.%N)
"${TIME[@]}" "$SHADOWTAP" --input-file "$WORK/requests.gor|100000%" \
    --output-http "$URL" --output-http-workers "$CONNECTIONS" --output-http-workers-min "$CONNECTIONS" \
    2>"$WORK/shadowtap.err"
END=$(date +%s.%N)
SUMMARY=$(grep 'output-http\[' "$WORK/shadowtap.err" | tail -1)
SENT=$(sed -E 's/.*output-http\[[^]]*\] in [0-9]+ out ([0-9]+).*/\1/' <<<"$SUMMARY")
SHADOWTAP_RPS=$(python3 -c "print(round($SENT / ($END - $START)))")

echo "running wrk -c $CONNECTIONS -t 2 -d 10s…" >&2
WRK_RPS=$(wrk -c "$CONNECTIONS" -t 2 -d 10s "$URL/products/1234?q=item1" | awk '/Requests\/sec/ {print int($2)}')

echo "shadowtap: $SENT of $REQUESTS requests replayed in $(python3 -c "print(round($END - $START, 2))") s: $SHADOWTAP_RPS req/s (peak RSS $(cat "$WORK/rss") KiB)"
echo "wrk:       $WRK_RPS req/s"
echo "ratio:     $(python3 -c "print(round($SHADOWTAP_RPS / $WRK_RPS, 2))") (target >= 0.7)"
[ "$SENT" -eq "$REQUESTS" ] || { echo "not every request was replayed: $SUMMARY" >&2; exit 1; }
