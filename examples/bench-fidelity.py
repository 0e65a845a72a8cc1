#!/usr/bin/env python3
"""bench-fidelity.py — how many HTTP requests and responses shadowtap reads from real and
malformed captures, next to tshark on the same files, in the same run.

    examples/bench-fidelity.py [PCAP_OR_DIR ...]

Without arguments it reads every capture in tests/fixtures (the nginx/curl/wrk captures and the
malformed-response captures in tests/fixtures/recovery) and, when it is there, tcpdump's test
corpus (../shared/corpus or $SHADOWTAP_CORPUS; only the files in which tshark finds HTTP).

For each file:
  * the server ports are the source ports of its SYN-ACKs (tshark), so both tools dissect the
    same ports as HTTP (tshark: `-d tcp.port==P,http` for each; shadowtap: `FILE:P,...`);
  * tshark: `tshark -r FILE -d ... -Y http.request` and `-Y http.response`, counted;
  * shadowtap: `--input-pcap FILE:PORTS --input-raw-track-response --output-stdout`, the .gor
    records counted by kind, and its `recovered: <kind>` figures from `--stats-format json`.
Prints a row per file and the totals, with shadowtap/tshark ratios. Needs tshark and a built
binary (`cargo build --release`; $SHADOWTAP overrides the path).
"""
import glob
import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(REPO, "target"))
BINARY = os.environ.get("SHADOWTAP", os.path.join(TARGET, "release", "shadowtap"))


def tshark(args):
    done = subprocess.run(["tshark", *args], capture_output=True, text=True)
    return done.stdout.splitlines()


def server_ports(pcap):
    lines = tshark(["-r", pcap, "-Y", "tcp.flags.syn==1 && tcp.flags.ack==1",
                    "-T", "fields", "-e", "tcp.srcport"])
    return sorted({int(p) for p in lines if p.strip().isdigit()})


def tshark_counts(pcap, ports):
    decode = [a for p in ports for a in ("-d", f"tcp.port=={p},http")]
    return tuple(len(tshark(["-r", pcap, *decode, "-Y", f"http.{what}"]))
                 for what in ("request", "response"))


def gor_kinds(stream):
    """Counts .gor records by kind (records end with the 🐵🙈🙉 separator line)."""
    counts = {}
    separator = "\n🐵🙈🙉\n".encode()
    for record in stream.split(separator):
        if record.strip():
            kind = record[:1].decode("latin-1")
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def shadowtap_counts(pcap, ports):
    value = f"{pcap}:{','.join(map(str, ports))}" if ports else pcap
    done = subprocess.run([BINARY, "--stats-format", "json", "--input-pcap", value,
                           "--input-raw-track-response", "--output-stdout"],
                          capture_output=True)
    kinds = gor_kinds(done.stdout)
    recovered = {}
    for line in done.stderr.decode("utf-8", "replace").splitlines():
        if line.startswith("{") and '"summary"' in line:
            for plugin in json.loads(line)["plugins"]:
                for name, n in plugin.get("extra", {}).items():
                    if name.startswith("recovered: "):
                        key = name[len("recovered: "):]
                        recovered[key] = recovered.get(key, 0) + n
    return kinds.get("1", 0), kinds.get("2", 0), recovered


def captures(arguments):
    if arguments:
        paths = []
        for a in arguments:
            paths += sorted(glob.glob(os.path.join(a, "*.pcap*"))) if os.path.isdir(a) else [a]
        return paths
    paths = sorted(glob.glob(os.path.join(REPO, "tests/fixtures/*.pcap")))
    paths += sorted(glob.glob(os.path.join(REPO, "tests/fixtures/recovery/*.pcap")))
    corpus = os.environ.get("SHADOWTAP_CORPUS", os.path.join(REPO, "../shared/corpus"))
    for path in sorted(glob.glob(os.path.join(corpus, "**/*.pcap*"), recursive=True)):
        if tshark(["-r", path, "-Y", "http"]):
            paths.append(path)
    return paths


def main():
    if not os.access(BINARY, os.X_OK):
        sys.exit(f"no binary at {BINARY}: cargo build --release (or set SHADOWTAP)")
    totals = [0, 0, 0, 0]
    all_recovered = {}
    print(f"{'capture':42} {'tshark req':>10} {'resp':>5} {'shadowtap req':>13} {'resp':>5}")
    for pcap in captures(sys.argv[1:]):
        ports = server_ports(pcap)
        t_req, t_resp = tshark_counts(pcap, ports)
        s_req, s_resp, recovered = shadowtap_counts(pcap, ports)
        for i, n in enumerate((t_req, t_resp, s_req, s_resp)):
            totals[i] += n
        for k, n in recovered.items():
            all_recovered[k] = all_recovered.get(k, 0) + n
        name = os.path.relpath(pcap, REPO)[-42:]
        print(f"{name:42} {t_req:10} {t_resp:5} {s_req:13} {s_resp:5}")
    t_req, t_resp, s_req, s_resp = totals
    print(f"{'total':42} {t_req:10} {t_resp:5} {s_req:13} {s_resp:5}")
    ratio = lambda a, b: f"{a / b:.2f}" if b else "n/a"
    print(f"shadowtap/tshark: requests {ratio(s_req, t_req)}, responses {ratio(s_resp, t_resp)}")
    print("recovered:", ", ".join(f"{k} {n}" for k, n in sorted(all_recovered.items())) or "none")


if __name__ == "__main__":
    main()
