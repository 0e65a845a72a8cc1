#!/usr/bin/env bash
# Runs every fuzz target for N minutes each (default 1), one after another on one core, and
# prints each target's executions, corpus size and crashes. Needs nightly Rust and cargo-fuzz
# (`cargo install cargo-fuzz`). New corpus entries go to a scratch copy; crashes are kept in
# plugins/fuzz/artifacts/<target>/, where the stable test (cargo test -p
# shadowtap-fuzz-targets) replays them from then on.
#
#   examples/fuzz-all.sh            # 1 minute per target
#   examples/fuzz-all.sh 5 decode   # 5 minutes, one target
set -euo pipefail
cd "$(dirname "$0")/../plugins/fuzz"
minutes=${1:-1}
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  mapfile -t targets < <(sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.toml | grep -v '^shadowtap-fuzz$')
fi
command -v cargo-fuzz >/dev/null || { echo "fuzz-all: cargo-fuzz is missing: cargo install cargo-fuzz" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/shadowtap-target}/fuzz
cargo +nightly fuzz build -O
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
printf '%-16s %8s %12s %10s %8s %s\n' target seconds executions exec/s corpus crashes
for target in "${targets[@]}"; do
  mkdir -p "$scratch/$target" "artifacts/$target"
  cp -r "corpus/$target/." "$scratch/$target/"
  log="$scratch/$target.log"
  before=$(ls "artifacts/$target" | wc -l)
  start=$(date +%s)
  cargo +nightly fuzz run -O "$target" "$scratch/$target" -- \
    -max_total_time=$((minutes * 60)) -jobs=1 -rss_limit_mb=2048 -timeout=10 \
    -artifact_prefix="artifacts/$target/" >"$log" 2>&1 || true
  seconds=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || true)
  [ -n "$execs" ] || execs=$(grep -oE '^#[0-9]+' "$log" | tail -1 | tr -d '#')
  rate=$(( ${execs:-0} / (seconds > 0 ? seconds : 1) ))
  crashes=$(( $(ls "artifacts/$target" | wc -l) - before ))
  printf '%-16s %8s %12s %10s %8s %s\n' "$target" "$seconds" "${execs:-0}" "$rate" \
    "$(ls "$scratch/$target" | wc -l)" "$crashes"
  if [ "$crashes" -gt 0 ]; then grep -m3 -E 'panicked|ERROR' "$log" | sed 's/^/    /'; fi
done
