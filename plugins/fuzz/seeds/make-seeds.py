#!/usr/bin/env python3
"""Writes the committed seed corpus of every fuzz target (plugins/fuzz/corpus/<target>/).

Seeds are small well-formed and hostile examples of each input, built here, plus frames and
capture files from tests/fixtures and the tcpdump corpus (../shared/corpus, when present).
Run from anywhere: python3 plugins/fuzz/seeds/make-seeds.py
"""
import gzip, json, os, struct, sys, zlib
from pathlib import Path

FUZZ = Path(__file__).resolve().parent.parent
REPO = FUZZ.parent.parent
CORPUS = Path(os.environ.get("SHADOWTAP_CORPUS", REPO.parent / "shared" / "corpus")) / "tcpdump-tests"
SEP = b"\n\xf0\x9f\x90\xb5\xf0\x9f\x99\x88\xf0\x9f\x99\x89\n"

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n",
    b"POST /v1/items?session=7&x=1 HTTP/1.1\r\nHost: api\r\nContent-Length: 5\r\nX-Id: 42\r\n\r\nhello",
    b"PUT /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\nAuthorization: Basic dXNlcjpwYXNz\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    b"GET http://origin/abs HTTP/1.0\r\nUser-Agent: bot\r\n\r\n",
    b"CONNECT host:443 HTTP/1.1\r\nHost: host:443\r\n\r\n",
    b"HEAD /h HTTP/1.1\r\nHost: \r\nAccept: (x)\r\n\r\n",
    b"GET /\tbad HTTP/1.1\r\nHost\r\n\r\n",
    b"GET / HTTP/1.1\nHost: lf-only\n\n",
]
RESPONSES = [
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4;ext=1\r\nwiki\r\n0\r\nTrailer: x\r\n\r\n",
    b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
    b"HTTP/1.1 301 Moved\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n",
    b"HTTP/1.0 200 OK\r\n\r\nuntil close",
    b"HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n",
    b"http/1.1 200\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
]
gz_body = gzip.compress(b"compressed body " * 20, mtime=0)
RESPONSES.append(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(gz_body) + gz_body)
RESPONSES.append(b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n" % len(gz_body) + gz_body + b"\r\n0\r\n\r\n")

def write(target, name, data):
    folder = FUZZ / "corpus" / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data)

def lines():
    return [b"1 0123456789abcdef01234567 1700000000000000000 1500\n",
            b"2 d1ce 1 -1 extra fields\n", b"3 x 5\n", b"1 id\twith\ttabs 1 2\n",
            b"1 id\n 1 2\n", b"9 " + b"a" * 200 + b" 1\n", b"1  1 1\n", b"x y z\n",
            b"1 a 99999999999999999999 0\n"]

def gor():
    records = [lines()[0] + REQUESTS[1], lines()[1] + RESPONSES[0], lines()[3] + REQUESTS[0]]
    for i in range(4):
        data = SEP[1:].join(r for r in records[: i + 1]) + SEP
        write("gor_reader", f"records-{i}", bytes([i & 1]) + data)
    write("gor_reader", "unterminated", b"\x01" + records[0] + b"\n\xf0\x9f\x90")
    write("gor_reader", "separator-only", b"\x00" + SEP * 3)

def meta():
    for i, line in enumerate(lines()):
        write("meta_parse", f"line-{i}", line)

def middleware():
    for i, (line, payload) in enumerate(zip(lines(), REQUESTS + RESPONSES)):
        write("middleware_line", f"line-{i}", (line + payload).hex().encode() + b"\n")
    write("middleware_line", "odd", b"abc\n")
    write("middleware_line", "upper", (lines()[0] + REQUESTS[0]).hex().upper().encode())

def kafka():
    base = {"Req_URL": "/a?b=1", "Req_Type": "1", "Req_ID": "0123456789abcdef01234567",
            "Req_Ts": "1700000000000000000", "Req_Method": "POST",
            "Req_Headers": {"Host": "x", "Content-Type": "text/plain"}, "Req_Body": "hi"}
    write("kafka_json", "request", json.dumps(base).encode())
    write("kafka_json", "newline-id", json.dumps(dict(base, Req_ID="a\nb")).encode())
    write("kafka_json", "response", json.dumps(dict(base, Req_Type="2", Req_Method="")).encode())
    write("kafka_json", "bad", b'{"Req_Type": 1}')

def pcap_records(path):
    data = path.read_bytes()
    if len(data) < 24 or data[:4] not in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        return None, []
    linktype = struct.unpack("<I", data[20:24])[0]
    at, frames = 24, []
    while at + 16 <= len(data):
        caplen = struct.unpack("<I", data[at + 8: at + 12])[0]
        frames.append(data[at + 16: at + 16 + caplen])
        at += 16 + caplen
    return linktype, frames

LINKTYPES = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 51, 104]  # testutil::fuzz_decode's order

def pcaps():
    small = sorted(p for p in CORPUS.glob("*.pcap*") if p.stat().st_size < 6000) if CORPUS.is_dir() else []
    picked = [p for p in small if any(k in p.name.lower() for k in ("http", "tcp", "hdlc", "pppoe", "vlan", "sll", "ipv6", "null", "loop"))][:40]
    fixture = REPO / "tests" / "fixtures" / "loopback.pcap"
    header = fixture.read_bytes()[:24]
    linktype, frames = pcap_records(fixture)
    # the fixture's first 40 records, as a small file
    raw = fixture.read_bytes()
    at = 24
    for _ in range(40):
        at += 16 + struct.unpack("<I", raw[at + 8: at + 12])[0]
    write("pcap_reader", "loopback-head", b"\x00" + raw[:at])
    write("pcap_reader", "loopback-head-gz", b"\x01" + raw[:at])
    write("pcap_reader", "huge-caplen", b"\x01" + header + struct.pack("<IIII", 1, 0, 0x7fffffff, 0x7fffffff) + b"x" * 21)
    for p in picked:
        write("pcap_reader", p.name, b"\x00" + p.read_bytes())
    for i, frame in enumerate(frames[:8]):
        write("decode", f"loopback-{i}", struct.pack(">H", LINKTYPES.index(linktype)) + frame)
    for p in picked:
        lt, fr = pcap_records(p)
        if lt in LINKTYPES and fr:
            write("decode", p.name, struct.pack(">H", LINKTYPES.index(lt)) + fr[0])

def ipv4(src, dst, proto, body):
    header = bytes([0x45, 0]) + struct.pack(">H", 20 + len(body)) + b"\x12\x34\x00\x00" + bytes([64, proto, 0, 0])
    return header + bytes(src) + bytes(dst) + body

def ipv6(src_last, dst_last, proto, body):
    addr = lambda last: b"\x20\x01\x0d\xb8" + b"\x00" * 11 + bytes([last])
    return b"\x60\x00\x00\x00" + struct.pack(">H", len(body)) + bytes([proto, 64]) + addr(src_last) + addr(dst_last) + body

def tcp(payload, sport=40000, dport=80, flags=0x18):
    return struct.pack(">HHII", sport, dport, 1000, 2000) + bytes([0x50, flags, 0xFF, 0xFF, 0, 0, 0, 0]) + payload

def ether(ethertype, body, tags=()):
    out = b"\x02\x00\x00\x00\x00\x01\x02\x00\x00\x00\x00\x02"
    for tpid in tags:
        out += struct.pack(">HH", tpid, 100)
    return out + struct.pack(">H", ethertype) + body

def udp(dport, payload):
    return struct.pack(">HHHH", 49152, dport, 8 + len(payload), 0) + payload

def vxlan(vni, inner):
    return ether(0x0800, ipv4([192, 0, 2, 1], [192, 0, 2, 2], 17, udp(4789, b"\x08\x00\x00\x00" + struct.pack(">I", vni << 8) + inner)))

GWLB_OPTIONS = b"".join(bytes([1, 8, kind, words]) + bytes([kind]) * (4 * words) for kind, words in ((1, 2), (2, 2), (3, 1)))

def geneve(vni, protocol, inner, options=b"", first=None):
    header = bytes([len(options) // 4 if first is None else first, 0]) + struct.pack(">HI", protocol, vni << 8)
    return ether(0x0800, ipv4([192, 0, 2, 1], [192, 0, 2, 2], 17, udp(6081, header + options + inner)))

def pppoe_session(ip, protocol=0x0021):
    return b"\x11\x00\x12\x34" + struct.pack(">HH", len(ip) + 2, protocol) + ip

def tunnels():
    """Decode seeds for the tunnel and PPP link layers (selector = index in LINKTYPES)."""
    ip = ipv4([10, 0, 0, 1], [10, 0, 0, 2], 6, tcp(REQUESTS[0]))
    ip6 = ipv6(1, 2, 6, tcp(REQUESTS[1]))
    inner = ether(0x0800, ip)
    nested = inner
    for level in range(5):
        nested = vxlan(level, nested)
    no_i_flag = bytearray(vxlan(1, inner))
    no_i_flag[14 + 20 + 8] = 0
    seeds = {
        "vxlan": (1, vxlan(42, inner)),
        "vxlan-inner-vlan-ipv6": (1, vxlan(7, ether(0x86DD, ip6, (0x8100,)))),
        "vxlan-nested-5": (1, nested),
        "vxlan-no-i-flag": (1, bytes(no_i_flag)),
        "geneve-ethernet": (1, geneve(5, 0x6558, inner)),
        "geneve-gwlb-ipv4": (1, geneve(0, 0x0800, ip, GWLB_OPTIONS)),
        "geneve-gwlb-ipv6": (1, geneve(0, 0x86DD, ip6, GWLB_OPTIONS)),
        "geneve-option-overrun": (1, geneve(0, 0x0800, ip, bytes([1, 8, 1, 0x1F]))),
        "geneve-option-length-beyond": (1, geneve(0, 0x0800, b"", first=0x3F)),
        "pppoe": (1, ether(0x8864, pppoe_session(ip))),
        "pppoe-qinq-ipv6": (1, ether(0x8864, pppoe_session(ip6, 0x0057), (0x88A8, 0x8100))),
        "pppoe-lcp": (1, ether(0x8864, pppoe_session(b"\x01\x01\x00\x04", 0xC021))),
        "ppp-ether": (10, pppoe_session(ip)),
        "ppp-ether-compressed": (10, pppoe_session(ip)[:6] + b"\x21" + ip),
        "c-hdlc": (11, b"\x0f\x00\x08\x00" + ip),
        "c-hdlc-broadcast-ipv6": (11, b"\x8f\x00\x86\xdd" + ip6),
        "c-hdlc-slarp": (11, b"\x8f\x00\x80\x35" + bytes(18)),
    }
    for name, (selector, frame) in seeds.items():
        assert LINKTYPES[selector] in (1, 51, 104)
        write("decode", name, struct.pack(">H", selector) + frame)

def script(parts, conversations=1):
    """A tracker script: op byte (direction, connection in the top bits), length, payload."""
    out = bytearray()
    for n, (side, payload) in enumerate(parts):
        conn = (n % conversations) << 6
        for at in range(0, len(payload), 60):
            chunk = payload[at: at + 60]
            out += bytes([conn | (0 if side == "c" else 3), len(chunk)]) + chunk
    return bytes(out)

def trackers():
    exchanges = list(zip(REQUESTS, RESPONSES))
    one = script([p for r, s in exchanges for p in (("c", r), ("s", s))])
    write("http_framer", "exchanges", b"\x00" + one)
    write("http_framer", "binary-small", b"\x18" + one)
    for target in ("tracker_flows", "header_tracker"):
        write(target, "exchanges", b"\x00" + one)
        write(target, "interleaved", b"\x00" + script([p for r, s in exchanges for p in (("c", r), ("s", s))], 4))
        write(target, "fins", b"\x02" + one + bytes([5, 0, 6, 0, 0x45, 0, 0x46, 0, 7, 0]))
        write(target, "long", b"\x00" + bytes([0, 0xff]) + REQUESTS[1])

def http():
    for i, r in enumerate(RESPONSES):
        write("response_parser", f"response-{i}", bytes([i & 3]) + r)
    write("response_parser", "pipelined", b"\x01" + b"".join(RESPONSES[:4]))
    for i, r in enumerate(REQUESTS):
        write("request_rewrite", f"request-{i}", r)
        write("modifiers", f"request-{i}", r)
    for i, r in enumerate(RESPONSES + REQUESTS[:3]):
        write("prettify", f"message-{i}", r)

def listeners():
    for i, r in enumerate(REQUESTS):
        write("http_request", f"request-{i}", r)
    write("http_request", "bearer", b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\nContent-Length: 99999999999999999999\r\n\r\n")
    records = lines()[0] + REQUESTS[1] + SEP + lines()[3] + REQUESTS[0] + SEP
    write("tcp_connection", "records", b"\x00" + records)
    write("tcp_connection", "auth", b"\x01AUTH s3cret\n" + records)
    write("tcp_connection", "wrong-auth", b"\x01AUTH nope\r\n" + records)
    write("tcp_connection", "no-newline", b"\x01AUTH " + b"s" * 5000)

def http1():
    hostile = [b"GET / HTTP/1.1\r\nX: a\r\n  folded\r\n\tmore\r\nY: 1\r\n\r\nbody",
               b"GET / HTTP/1.1\r\n  orphan\r\nHost: x\r\n", b"GET / HTTP/1.1", b"",
               b"\r\n\nGET / HTTP/1.1\r\nA: x\ry\r\nno colon\r\n: empty\r\n\r\n",
               b"HTTP/1.1 200 OK\nA:\n\x00B :  \n\r\n\n"]
    for i, m in enumerate(REQUESTS + RESPONSES + hostile):
        write("header_editor", f"message-{i}", m)
    bodies = [b"4;name=value\r\nWiki\r\n5 ; x\r\npedia\n0\r\nExpires: never\r\n\r\nNEXT",
              b"0\r\n\r\n", b"3\r\nab", b"zz\r\n", b"fx\r\n", b"f,\r\n", b"3\r\nabcX\r\n",
              b"ffffffffffffffff\r\nabc", b"10000000000000000\r\n", b"1" + b";" * 70000,
              b"0\r\n" + b"x" * 70000, b"2\nab\n0\n\n", b"\x00\r\n"]
    for i, b in enumerate(bodies):
        write("chunked_decoder", f"body-{i}", bytes([i * 37 & 0xff]) + b if i % 2 else b)

def tcp_connections(path):
    """Each TCP connection's payloads in capture order: [(from_client, bytes)], by client port."""
    _, frames = pcap_records(path)
    conns, servers = {}, {}
    for frame in frames:
        ip = frame[14:]
        if len(ip) < 40 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        ihl = (ip[0] & 15) * 4
        tcp_header = ip[ihl:]
        sport, dport = struct.unpack(">HH", tcp_header[:4])
        flags = tcp_header[13]
        payload = tcp_header[(tcp_header[12] >> 4) * 4: struct.unpack(">H", ip[2:4])[0] - ihl]
        if flags & 0x02 and not flags & 0x10:
            servers[sport] = dport
        client = sport if sport in servers else dport
        if payload and client in servers:
            conns.setdefault(client, []).append((client == sport, payload))
    return [conns[port] for port in sorted(conns)]

def tls():
    """tls_session seeds: real connections of the TLS fixture with its key log (the entry's
    format: key-log length (u16 le), key log, then `op len bytes` chunks of at most 255 bytes)."""
    fixtures = REPO / "tests" / "fixtures" / "tls"
    keys = (fixtures / "tls.keys").read_bytes()
    for number, conn in enumerate(tcp_connections(fixtures / "tls.pcap")[:6]):
        chunks = b""
        for from_client, payload in conn:
            for at in range(0, len(payload), 255):
                piece = payload[at: at + 255]
                chunks += bytes([0 if from_client else 1, len(piece)]) + piece
        write("tls_session", f"connection-{number}", struct.pack("<H", len(keys)) + keys + chunks)
    write("tls_session", "no-keys", b"\x00\x00\x00\x05\x16\x03\x01\x00\x30")

def h2():
    """h2_connection seeds: the connections of plugins/h2's nginx h2c capture (the entry's format:
    `op len bytes` chunks of at most 255 bytes, op bit 0 the side)."""
    capture = REPO / "plugins" / "h2" / "tests" / "fixtures" / "nginx-h2c.pcap"
    for number, conn in enumerate(tcp_connections(capture)):
        chunks = b""
        for from_client, payload in conn:
            for at in range(0, len(payload), 255):
                piece = payload[at: at + 255]
                chunks += bytes([0 if from_client else 1, len(piece)]) + piece
        write("h2_connection", f"connection-{number}", chunks)

def hpack():
    """h2_hpack seeds: RFC 7541 Appendix C.3 (plain literals) and C.4 (Huffman) request streams,
    each block after its length byte, so the dynamic table carries from block to block."""
    streams = {
        "rfc7541-c3": ["828684410f7777772e6578616d706c652e636f6d", "828684be58086e6f2d6361636865",
                       "828785bf400a637573746f6d2d6b65790c637573746f6d2d76616c7565"],
        "rfc7541-c4": ["828684418cf1e3c2e5f23a6ba0ab90f4ff", "828684be5886a8eb10649cbf",
                       "828785bf408825a849e95ba97d7f8925a849e95bb8e8b4bf"],
    }
    for name, blocks in streams.items():
        data = b"".join(bytes([len(bytes.fromhex(b))]) + bytes.fromhex(b) for b in blocks)
        write("h2_hpack", name, data)

for make in (listeners, gor, meta, middleware, kafka, pcaps, tunnels, trackers, http, http1, tls, h2,
             hpack):
    make()
print("seeds written to", FUZZ / "corpus", file=sys.stderr)
