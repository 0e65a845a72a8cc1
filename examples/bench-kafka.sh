#!/usr/bin/env bash
# Kafka and Elasticsearch output throughput.
#
#   examples/bench-kafka.sh [REQUESTS]        (default 100000)
#
# 1. builds shadowtap (release) and writes a .gor file of REQUESTS GET requests (python);
# 2. starts a tansu broker on a free loopback port (memory storage; `cargo install tansu
#    --locked --features dynostore`), creates two 3-partition topics;
# 3. times `shadowtap --input-file 'F|100000000%' --output-kafka 127.0.0.1:PORT/bench` and, in
#    the same run, a librdkafka producer from Python (`confluent-kafka`, acks=all, idempotent,
#    the same keys and values) as the reference; prints records/s of both and the ratio;
# 4. times `--output-es` into an in-process bulk stub (python http.server answering every item
#    201) and prints documents/s.
#
# Needs: python3 with confluent-kafka (pip install confluent-kafka), tansu on PATH or in
# ~/.cargo/bin. Uses CARGO_TARGET_DIR if set.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-100000}
TARGET=${CARGO_TARGET_DIR:-target}
TANSU=${TANSU:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
[ -x "$TANSU" ] || { echo "tansu not found: cargo install tansu --locked --features dynostore" >&2; exit 1; }
python3 -c 'import confluent_kafka' 2>/dev/null || { echo "pip install confluent-kafka" >&2; exit 1; }

cargo build --release --quiet --bin shadowtap
BIN="$TARGET/release/shadowtap"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$WORK"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

python3 - "$WORK/bench.gor" "$N" <<'EOF'
import sys
path, n = sys.argv[1], int(sys.argv[2])
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
with open(path, "wb") as f:
    for i in range(n):
        ts = 1_700_000_000_000_000_000 + i * 1_000_000
        f.write(f"1 {i + 1:024x} {ts} 0\n".encode())
        f.write(f"GET /item/{i}?q=shoes&page={i % 7} HTTP/1.1\r\nHost: shop.example\r\n"
                f"User-Agent: Mozilla/5.0 (X11; Linux x86_64) bench\r\nAccept: */*\r\n"
                f"Cookie: session={i:016x}\r\n\r\n".encode())
        f.write(sep)
EOF
echo "requests: $N ($(du -h "$WORK/bench.gor" | cut -f1))"

PORT=$(free_port)
"$TANSU" broker --storage-engine memory://tansu/ --listener-url "tcp://127.0.0.1:$PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$PORT" >"$WORK/tansu.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
"$TANSU" topic create bench --partitions 3 --broker "tcp://127.0.0.1:$PORT" >/dev/null
"$TANSU" topic create reference --partitions 3 --broker "tcp://127.0.0.1:$PORT" >/dev/null

start=$(date +%s.%N)
"$BIN" --input-file "$WORK/bench.gor|100000000%" --output-kafka "127.0.0.1:$PORT/bench" 2>"$WORK/kafka.err"
end=$(date +%s.%N)
tail -1 "$WORK/kafka.err"
OURS=$(python3 -c "print(round($N / ($end - $start)))")
echo "shadowtap output-kafka: $OURS records/s"

REF=$(python3 - "$WORK/bench.gor" "127.0.0.1:$PORT" <<'EOF'
import sys, time
from confluent_kafka import Producer
path, broker = sys.argv[1:3]
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
messages = []
for rec in open(path, "rb").read().split(sep):
    if rec:
        messages.append((rec.split(b" ", 2)[1], rec))
failed = 0
def report(err, msg):
    global failed
    if err is not None:
        failed += 1
p = Producer({"bootstrap.servers": broker, "acks": "all", "enable.idempotence": True,
              "partitioner": "murmur2_random", "compression.codec": "none"})
start = time.time()
for key, value in messages:
    while True:
        try:
            p.produce("reference", value=value, key=key, on_delivery=report)
            break
        except BufferError:
            p.poll(0.005)
    p.poll(0)
p.flush(60)
elapsed = time.time() - start
assert failed == 0, f"{failed} reference deliveries failed"
print(round(len(messages) / elapsed))
EOF
)
echo "confluent-kafka (librdkafka) reference: $REF records/s"
python3 -c "print(f'ratio shadowtap/reference: {$OURS / $REF:.2f} (target >= 1.0)')"

ESPORT=$(free_port)
python3 - "$ESPORT" >"$WORK/es.log" 2>&1 <<'EOF' &
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class Bulk(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        lines = body.splitlines()
        actions = [json.loads(a)["index"] for a in lines[0::2]]
        items = [{"index": {"_index": a["_index"], "_id": a["_id"], "status": 201}} for a in actions]
        out = json.dumps({"took": 1, "errors": False, "items": items}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)
ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Bulk).serve_forever()
EOF
PIDS+=($!)
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$ESPORT) 2>/dev/null && break; sleep 0.1; done
start=$(date +%s.%N)
"$BIN" --input-file "$WORK/bench.gor|100000000%" --output-es "http://127.0.0.1:$ESPORT/bench-%Y.%m.%d" \
    --output-es-workers 2 2>"$WORK/es.err"
end=$(date +%s.%N)
tail -1 "$WORK/es.err"
echo "shadowtap output-es into the python bulk stub: $(python3 -c "print(round($N / ($end - $start)))") documents/s"
