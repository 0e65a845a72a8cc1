#!/usr/bin/env bash
# Engine benchmark: messages per second through the emitter, with and without a middleware.
#
#   examples/bench-engine.sh [REQUESTS]        (default 200000; needs python3)
#
# Builds the release binary, writes a .gor file of REQUESTS real-looking requests, and times:
#   1. shadowtap --input-file F --output-null                     (the engine alone)
#   2. shadowtap --input-file F --middleware "python3 echo.py" --output-null
#   3. the Python echo middleware alone, fed the same hex lines by cat (the reference:
#      the best a pipeline through that middleware can do)
# and prints messages/s for each and the ratio 2/3 (how close the bridge gets to the
# middleware's own speed). Each figure is the best of 3 runs.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-200000}
target=${CARGO_TARGET_DIR:-$HOME/.cache/shadowtap-target}
work=${BENCH_DIR:-/tmp/shadowtap-bench}
mkdir -p "$work"
CARGO_TARGET_DIR=$target cargo build --release -q
bin=$target/release/shadowtap

python3 - "$requests" "$work/requests.gor" "$work/requests.hex" <<'PY'
import sys
count, gor_path, hex_path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
sep = "\n\U0001F435\U0001F648\U0001F649\n".encode()
agents = ["Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0", "curl/7.88.1"]
with open(gor_path, "wb") as gor, open(hex_path, "wb") as hexf:
    for i in range(count):
        meta = b"1 %024x %d 0\n" % (i, 1_700_000_000_000_000_000 + i * 1000)
        payload = (f"GET /api/items/{i}?page={i % 50}&sort=desc HTTP/1.1\r\nHost: shop.example.com\r\n"
                   f"User-Agent: {agents[i % 2]}\r\nAccept: application/json\r\nAccept-Encoding: gzip, br\r\n"
                   f"Cookie: session={i:016x}\r\n\r\n").encode()
        gor.write(meta + payload + sep)
        hexf.write((meta + payload).hex().encode() + b"\n")
PY

best_of_3() { # prints the best wall time in seconds of "$@"
  local best=
  for _ in 1 2 3; do
    local start end
    start=$(date +%s.%N)
    "$@" >/dev/null 2>&1
    end=$(date +%s.%N)
    best=$(python3 -c "t=$end-$start; b='$best'; print(t if not b else min(t, float(b)))")
  done
  echo "$best"
}

engine=$(best_of_3 "$bin" --input-file "$work/requests.gor|100000000%" --output-null)
bridged=$(best_of_3 "$bin" --input-file "$work/requests.gor|100000000%" --middleware "python3 middleware/python/echo.py" --output-null)
alone=$(best_of_3 sh -c "cat '$work/requests.hex' | python3 middleware/python/echo.py > /dev/null")

python3 - "$requests" "$engine" "$bridged" "$alone" <<'PY'
import sys
n, engine, bridged, alone = int(sys.argv[1]), *map(float, sys.argv[2:])
print(f"requests:                                   {n}")
print(f"input-file -> output-null:                  {n/engine:12,.0f} msg/s  ({engine:.3f} s)")
print(f"input-file -> python echo -> output-null:   {n/bridged:12,.0f} msg/s  ({bridged:.3f} s)")
print(f"reference: python echo alone (cat | echo):  {n/alone:12,.0f} msg/s  ({alone:.3f} s)")
print(f"ratio bridged / middleware alone:           {alone/bridged:12.2f}")
PY
