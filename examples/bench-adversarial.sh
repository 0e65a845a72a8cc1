#!/usr/bin/env bash
# bench-adversarial.sh — what hostile packet orders cost the capture core, next to the same
# bytes in order (issue 11: at most 3x, at 10k and 160k segments).
#
#   examples/bench-adversarial.sh          # needs cargo; no root, no network
#
# 1. Builds the release binary (`cargo build --release --bin shadowtap`; BENCH_BIN=PATH times
#    another build instead, e.g. an older one) and the capture generator
#    (`plugins/capture/examples/adversarial_pcap.rs`).
# 2. Writes, for each size N in ${BENCH_SIZES:-10000 160000}, into a tempdir:
#      flow   one connection whose N-byte POST comes as N one-byte segments; adversarial: every
#             segment but the first, highest sequence first, then the first (the hole) last
#      conns  N short connections, each a GET segment and a client FIN; adversarial: all GETs
#             first, then all FINs
#    each also in order (the same packets sorted by sequence / connection).
# 3. Times, wall clock, in ${BENCH_RUNS:-3} rounds (in-order and adversarial take turns):
#      flow, default cap   shadowtap --input-pcap FILE:80 --output-null
#                          (beyond --input-raw-max-held-segments' default the message is
#                          dropped, counted "segment limit": the cheap path)
#      flow, cap raised    ... --input-raw-max-held-segments 1000000 (all N segments held)
#      conns, headers      ... --input-raw-protocol http-headers (the header-only tracker)
#      conns, full         ... (the reassembling tracker)
#    and prints best and median wall time of each order and the ratio adversarial/in-order
#    (best/best and median/median), plus shadowtap's summary line for the adversarial run.
#    A case whose flag the binary does not know (an older build) is skipped.
#
# Environment: BENCH_SIZES, BENCH_RUNS, BENCH_BIN, BENCH_TIMEOUT (seconds per run, 600),
# BENCH_PROFILE (release; `dev` builds and times the debug binary, for a quick look).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
SIZES=${BENCH_SIZES:-10000 160000}
RUNS=${BENCH_RUNS:-3}
TIMEOUT=${BENCH_TIMEOUT:-600}
TARGET=${CARGO_TARGET_DIR:-$REPO/target}
PROFILE=${BENCH_PROFILE:-release}
OUT_DIR=$TARGET/$([ "$PROFILE" = dev ] && echo debug || echo "$PROFILE")

command -v cargo >/dev/null || { echo "bench: cargo is missing" >&2; exit 1; }
if [ -z "${BENCH_BIN:-}" ]; then
    echo "== building the $PROFILE binary" >&2
    (cd "$REPO" && cargo build --profile "$PROFILE" --quiet --bin shadowtap)
fi
BIN=${BENCH_BIN:-$OUT_DIR/shadowtap}
echo "== building the capture generator" >&2
(cd "$REPO" && cargo build --profile "$PROFILE" --quiet -p shadowtap-capture --features testutil --example adversarial_pcap)
GEN=$OUT_DIR/examples/adversarial_pcap

TMP=$(mktemp -d /tmp/shadowtap-bench-adversarial.XXXXXX)
trap 'rm -rf "$TMP"' EXIT

# Wall milliseconds of one run of the binary; its last stderr line goes to $TMP/summary.
time_run() {
    local start end
    start=$(date +%s%N)
    timeout "$TIMEOUT" "$BIN" "$@" >/dev/null 2>"$TMP/stderr" || {
        echo "bench: shadowtap $* failed:" >&2
        tail -3 "$TMP/stderr" >&2
        exit 1
    }
    end=$(date +%s%N)
    tail -1 "$TMP/stderr" | sed "s|$TMP/||g" >"$TMP/summary"
    echo $(((end - start) / 1000000))
}

best() { tr -s ' ' '\n' | grep . | sort -n | head -1; }
median() { tr -s ' ' '\n' | grep . | sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / (b > 0 ? b : 1)}'; }

# bench LABEL WORKLOAD N FLAGS...
bench() {
    local label=$1 workload=$2 n=$3
    shift 3
    for flag in "$@"; do
        if [[ $flag == --* ]] && ! "$BIN" --help 2>&1 | grep -q -- "$flag"; then
            printf '%-22s %7s  skipped: this binary has no %s\n' "$label" "$n" "$flag"
            return
        fi
    done
    local inorder="" adversarial=""
    for _ in $(seq "$RUNS"); do
        inorder+="$(time_run --input-pcap "$TMP/$workload-in-order-$n.pcap:80" --output-null "$@") "
        adversarial+="$(time_run --input-pcap "$TMP/$workload-adversarial-$n.pcap:80" --output-null "$@") "
    done
    local ib im ab am
    ib=$(echo "$inorder" | best)
    im=$(echo "$inorder" | median)
    ab=$(echo "$adversarial" | best)
    am=$(echo "$adversarial" | median)
    printf '%-22s %7s  in-order %6s/%6s ms  adversarial %6s/%6s ms  ratio %5s/%5s  | %s\n' \
        "$label" "$n" "$ib" "$im" "$ab" "$am" "$(ratio "$ab" "$ib")" "$(ratio "$am" "$im")" \
        "$(cat "$TMP/summary")"
}

echo "== $BIN, $RUNS round(s); times best/median, ratio adversarial/in-order best/median"
for n in $SIZES; do
    for workload in flow conns; do
        for order in in-order adversarial; do
            "$GEN" "$workload" "$order" "$n" "$TMP/$workload-$order-$n.pcap"
        done
    done
    bench "flow, default cap" flow "$n"
    bench "flow, cap raised" flow "$n" --input-raw-max-held-segments 1000000
    bench "conns, headers" conns "$n" --input-raw-protocol http-headers
    bench "conns, full" conns "$n"
done
