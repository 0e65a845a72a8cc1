#!/usr/bin/env bash
# Live capture benchmark: the highest packet rate each engine captures with zero loss.
#
#   examples/bench-live.sh            (as root; needs tcpreplay, tcpdump; uses examples/bench-capture.sh's pcap)
#
# A slice of real nginx/wrk traffic (the pcap examples/bench-capture.sh records, PACKETS
# packets, default 100000) is replayed with tcpreplay onto one end of a veth pair made for the
# run, at increasing rates (RATES, packets/s; "top" = tcpreplay --topspeed). At each rate,
# shadowtap captures on the other end (promiscuous, as on a mirror port) with: af_packet 1 worker, af_packet 2 workers, libpcap,
# and the header-only fast path (af_packet, 2 workers); in the same run tcpdump captures the
# same replay as the reference (its own "dropped by kernel" count). A run is lossless when
# shadowtap emitted as many requests as it finds in the same slice read with --input-pcap and
# counted no drop of any kind. The table gives, per configuration, the highest lossless rate,
# and the CPU time shadowtap used (all its threads, from /proc/PID/task/*/schedstat) as packets
# per CPU-second: the rate one core sustains, measured live (a lower bound: it includes
# polling while idle). This machine's tcpreplay tops out near 400k packets/s, so the live
# rates of the faster engines are bounded by the generator; the CPU figure is not.
# Last, the header-only worker's rate on one core reading the full capture from a file
# (--input-pcap, taskset to one CPU) is printed for comparison.
set -uo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" -eq 0 ] || { echo "run as root (creates a veth pair)" >&2; exit 1; }
command -v tcpreplay >/dev/null || { echo "install tcpreplay (apt-get install tcpreplay)" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$HOME/.cache/shadowtap-target}
bench=${BENCH_DIR:-/tmp/shadowtap-bench}
port=${BENCH_PORT:-18490}
packets=${PACKETS:-100000}
rates=${RATES:-"50000 100000 200000 400000 800000 top"}
CARGO_TARGET_DIR=$target cargo build --release -q
bin=$target/release/shadowtap
[ -f "$bench/traffic.pcap" ] || examples/bench-capture.sh >/dev/null
slice=$bench/slice-$packets.pcap
[ -f "$slice" ] || editcap -r "$bench/traffic.pcap" "$slice" "1-$packets"

tx=stbtx$$ rx=stbrx$$
cleanup() { ip link del "$tx" 2>/dev/null || true; }
trap cleanup EXIT
ip link add "$tx" type veth peer name "$rx"
ip link set "$tx" mtu 65535 up
ip link set "$rx" mtu 65535 up
for i in "$tx" "$rx"; do ethtool -K "$i" tso off gso off gro off >/dev/null 2>&1 || true; done

expected=$("$bin" --input-pcap "$slice:$port" --output-null 2>&1 | sed -n 's/.*output-null in \([0-9]*\).*/\1/p')
echo "slice: $packets packets, $expected requests (read back with --input-pcap)"

replay() { # rate
  if [ "$1" = top ]; then tcpreplay -q --topspeed -i "$tx" "$slice" 2>&1; else tcpreplay -q --pps="$1" -i "$tx" "$slice" 2>&1; fi
}

run_shadowtap() { # rate, flags...
  local rate=$1; shift
  local err
  err=$(mktemp)
  "$bin" --input-raw "$rx:$port" --input-raw-promisc "$@" --output-null 2>"$err" &
  local pid=$!
  sleep 1
  local achieved
  achieved=$(replay "$rate" | sed -n 's/.*Rated: [0-9.]* Bps, [0-9.]* Mbps, \([0-9.]*\) pps.*/\1/p' | head -1)
  sleep 2.5
  local cpu_ns
  cpu_ns=$(cat /proc/$pid/task/*/schedstat 2>/dev/null | awk '{s+=$1} END {print s+0}')
  kill -INT $pid; wait $pid || true
  local summary
  summary=$(grep '^shadowtap: ' "$err" | tail -1)
  rm -f "$err"
  local got dropped
  got=$(echo "$summary" | sed -n 's/.*output-null in \([0-9]*\).*/\1/p')
  dropped=$(echo "$summary" | grep -o 'dropped [0-9]*' | awk '{s+=$2} END {print s+0}')
  echo "$achieved $got $dropped $cpu_ns"
}

per_cpu_second() { # packets, cpu ns
  awk -v p="$1" -v ns="$2" 'BEGIN { if (ns > 0) printf "%.0f", p / (ns / 1e9); else print "?" }'
}

run_tcpdump() { # rate
  local err
  err=$(mktemp)
  tcpdump -i "$rx" -s 0 -w /dev/null "tcp port $port" 2>"$err" &
  local pid=$!
  sleep 1
  replay "$1" >/dev/null
  sleep 1
  kill -INT $pid; wait $pid || true
  local dropped
  dropped=$(sed -n 's/\([0-9]*\) packets dropped by kernel/\1/p' "$err")
  rm -f "$err"
  echo "${dropped:-?}"
}

declare -A best
configs=("af_packet x1|--input-raw-workers 1"
         "af_packet x2|--input-raw-workers 2"
         "libpcap|--input-raw-engine libpcap"
         "headers x2|--input-raw-workers 2 --input-raw-protocol http-headers")
printf "%-8s %-10s %-16s %-10s %-8s %-8s %-14s %s\n" rate achieved config requests dropped cpu_ms pkts/cpu-s tcpdump_kernel_drops
for rate in $rates; do
  ref=$(run_tcpdump "$rate")
  for entry in "${configs[@]}"; do
    name=${entry%%|*}
    flags=${entry#*|}
    # shellcheck disable=SC2086
    read -r achieved got dropped cpu_ns < <(run_shadowtap "$rate" $flags)
    printf "%-8s %-10s %-16s %-10s %-8s %-8s %-14s %s\n" "$rate" "${achieved:-?}" "$name" "${got:-?}" \
      "${dropped:-?}" "$(( ${cpu_ns:-0} / 1000000 ))" "$(per_cpu_second "$packets" "${cpu_ns:-0}")" "$ref"
    if [ "${got:-0}" = "$expected" ] && [ "${dropped:-1}" = 0 ]; then best[$name]=${achieved:-$rate}; fi
  done
done
echo
echo "highest lossless rate (packets/s actually achieved by tcpreplay):"
for entry in "${configs[@]}"; do
  name=${entry%%|*}
  echo "  $name: ${best[$name]:-none}"
done
echo "  (libpcap's figure is its highest lossless rate; af_packet's are bounded by tcpreplay)"
echo
full=$bench/traffic.pcap
total=$(capinfos -c -M "$full" 2>/dev/null | awk -F': *' '/Number of packets/ {print $2}')
start=$(date +%s%N)
taskset -c 0 "$bin" --input-pcap "$full:$port" --input-raw-protocol http-headers --output-null 2>/dev/null
end=$(date +%s%N)
echo "header-only worker on one core (--input-pcap, taskset -c 0): $total packets in $(( (end - start) / 1000000 )) ms = $(per_cpu_second "$total" $(( end - start ))) packets/s"
