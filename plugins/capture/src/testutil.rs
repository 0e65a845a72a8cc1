//! Test helpers (feature `testutil`): builders for Ethernet/IPv4/IPv6/TCP frames, a scripted
//! TCP conversation, and a tiny classic-pcap reader.

use std::net::{IpAddr, SocketAddr};

use crate::decode::{Packet, TcpFlags};

/// One TCP segment to build frames from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Sender.
    pub src: SocketAddr,
    /// Receiver.
    pub dst: SocketAddr,
    /// Sequence number.
    pub seq: u32,
    /// Ack number.
    pub ack: u32,
    /// Flag bits ([`TcpFlags`] constants).
    pub flags: u8,
    /// Payload.
    pub payload: Vec<u8>,
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("socket address")
}

impl Segment {
    /// A segment from `src` to `dst` (`"ip:port"` or `"[ipv6]:port"`), flags ACK.
    pub fn new(src: &str, dst: &str) -> Segment {
        Segment {
            src: addr(src),
            dst: addr(dst),
            seq: 0,
            ack: 0,
            flags: TcpFlags::ACK,
            payload: Vec::new(),
        }
    }

    /// With this sequence number.
    pub fn seq(mut self, seq: u32) -> Segment {
        self.seq = seq;
        self
    }

    /// With this ack number.
    pub fn ack(mut self, ack: u32) -> Segment {
        self.ack = ack;
        self
    }

    /// With these flags.
    pub fn flags(mut self, flags: u8) -> Segment {
        self.flags = flags;
        self
    }

    /// With this payload.
    pub fn payload(mut self, payload: &[u8]) -> Segment {
        self.payload = payload.to_vec();
        self
    }

    /// The decoded view, as `decode` would return it.
    pub fn packet(&self) -> Packet<'_> {
        Packet {
            src: self.src.ip(),
            dst: self.dst.ip(),
            src_port: self.src.port(),
            dst_port: self.dst.port(),
            seq: self.seq,
            ack: self.ack,
            flags: TcpFlags(self.flags),
            window: 65535,
            payload: &self.payload,
            captured_truncated: false,
        }
    }

    /// TCP header (no options) followed by the payload.
    pub fn tcp(&self) -> Vec<u8> {
        let mut t = Vec::with_capacity(20 + self.payload.len());
        t.extend_from_slice(&self.src.port().to_be_bytes());
        t.extend_from_slice(&self.dst.port().to_be_bytes());
        t.extend_from_slice(&self.seq.to_be_bytes());
        t.extend_from_slice(&self.ack.to_be_bytes());
        t.extend_from_slice(&[0x50, self.flags, 0xFF, 0xFF, 0, 0, 0, 0]);
        t.extend_from_slice(&self.payload);
        t
    }

    /// An IPv4 packet (both addresses must be IPv4).
    pub fn ipv4(&self) -> Vec<u8> {
        self.ipv4_with(&[], 0)
    }

    /// An IPv4 packet with header `options` and a flags/fragment-offset word.
    pub fn ipv4_with(&self, options: &[u8], fragment_word: u16) -> Vec<u8> {
        let (IpAddr::V4(src), IpAddr::V4(dst)) = (self.src.ip(), self.dst.ip()) else {
            panic!("ipv4 needs IPv4 addresses");
        };
        ipv4_raw(
            &src.to_string(),
            &dst.to_string(),
            6,
            options,
            fragment_word,
            &self.tcp(),
        )
    }

    /// An IPv6 packet with extension headers `(type, bytes after the first two)`.
    pub fn ipv6(&self, extensions: &[(u8, Vec<u8>)]) -> Vec<u8> {
        let (IpAddr::V6(src), IpAddr::V6(dst)) = (self.src.ip(), self.dst.ip()) else {
            panic!("ipv6 needs IPv6 addresses");
        };
        ipv6_raw(
            &src.to_string(),
            &dst.to_string(),
            6,
            extensions,
            &self.tcp(),
        )
    }

    /// The IP packet for this segment's address family.
    pub fn ip(&self) -> Vec<u8> {
        match self.src.ip() {
            IpAddr::V4(_) => self.ipv4(),
            IpAddr::V6(_) => self.ipv6(&[]),
        }
    }

    /// An Ethernet frame carrying this segment.
    pub fn ethernet(&self) -> Vec<u8> {
        ethernet(&self.ip(), &[])
    }
}

fn checksum(header: &[u8]) -> u16 {
    let mut sum: u32 = header
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// An IPv4 packet: `options` are padded to 4 bytes.
pub fn ipv4_raw(
    src: &str,
    dst: &str,
    protocol: u8,
    options: &[u8],
    fragment_word: u16,
    body: &[u8],
) -> Vec<u8> {
    let mut opts = options.to_vec();
    opts.resize(options.len().div_ceil(4) * 4, 0);
    let header_len = 20 + opts.len();
    let total = (header_len + body.len()) as u16;
    let src: std::net::Ipv4Addr = src.parse().expect("ipv4");
    let dst: std::net::Ipv4Addr = dst.parse().expect("ipv4");
    let mut p = vec![0x40 | (header_len / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34]);
    p.extend_from_slice(&fragment_word.to_be_bytes());
    p.extend_from_slice(&[64, protocol, 0, 0]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&opts);
    let sum = checksum(&p);
    p[10..12].copy_from_slice(&sum.to_be_bytes());
    p.extend_from_slice(body);
    p
}

/// An IPv6 packet with extension headers `(type, bytes after the first two)`; `next` is the
/// upper-layer protocol after the last extension.
pub fn ipv6_raw(
    src: &str,
    dst: &str,
    next: u8,
    extensions: &[(u8, Vec<u8>)],
    body: &[u8],
) -> Vec<u8> {
    let mut chain = Vec::new();
    for (i, (kind, rest)) in extensions.iter().enumerate() {
        let following = extensions.get(i + 1).map_or(next, |e| e.0);
        let total = 2 + rest.len();
        let len_byte = match kind {
            51 => total / 4 - 2,
            44 => 0,
            _ => total / 8 - 1,
        };
        chain.push(following);
        chain.push(len_byte as u8);
        chain.extend_from_slice(rest);
    }
    let first = extensions.first().map_or(next, |e| e.0);
    let src: std::net::Ipv6Addr = src.parse().expect("ipv6");
    let dst: std::net::Ipv6Addr = dst.parse().expect("ipv6");
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&((chain.len() + body.len()) as u16).to_be_bytes());
    p.extend_from_slice(&[first, 64]);
    p.extend_from_slice(&src.octets());
    p.extend_from_slice(&dst.octets());
    p.extend_from_slice(&chain);
    p.extend_from_slice(body);
    p
}

fn ethertype_of(ip: &[u8]) -> [u8; 2] {
    match ip.first().map(|b| b >> 4) {
        Some(6) => [0x86, 0xDD],
        _ => [0x08, 0x00],
    }
}

/// An Ethernet II frame with a VLAN tag for each TPID in `vlan_tpids` (outermost first).
pub fn ethernet(ip: &[u8], vlan_tpids: &[u16]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for tpid in vlan_tpids {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&100u16.to_be_bytes());
    }
    f.extend_from_slice(&ethertype_of(ip));
    f.extend_from_slice(ip);
    f
}

/// A Linux cooked (SLL) frame.
pub fn sll(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    f.extend_from_slice(&ethertype_of(ip));
    f.extend_from_slice(ip);
    f
}

/// A Linux cooked v2 (SLL2) frame.
pub fn sll2(ip: &[u8]) -> Vec<u8> {
    let mut f = ethertype_of(ip).to_vec();
    f.extend_from_slice(&[0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    f.extend_from_slice(ip);
    f
}

/// A BSD loopback (NULL/LOOP) frame with this address family.
pub fn null(ip: &[u8], family: u32, big_endian: bool) -> Vec<u8> {
    let mut f = if big_endian {
        family.to_be_bytes().to_vec()
    } else {
        family.to_le_bytes().to_vec()
    };
    f.extend_from_slice(ip);
    f
}

/// A scripted TCP connection: each call returns the next segment and advances the sender's
/// sequence number.
#[derive(Debug, Clone)]
pub struct Conversation {
    /// Client endpoint.
    pub client: SocketAddr,
    /// Server endpoint.
    pub server: SocketAddr,
    /// The client's next sequence number.
    pub client_seq: u32,
    /// The server's next sequence number.
    pub server_seq: u32,
}

impl Conversation {
    /// A connection with client ISN 1000 and server ISN 5000 (before the SYNs).
    pub fn new(client: &str, server: &str) -> Conversation {
        Conversation {
            client: addr(client),
            server: addr(server),
            client_seq: 1000,
            server_seq: 5000,
        }
    }

    /// With these initial sequence numbers.
    pub fn isn(mut self, client: u32, server: u32) -> Conversation {
        self.client_seq = client;
        self.server_seq = server;
        self
    }

    fn sent_by_client(&self, flags: u8, data: &[u8]) -> Segment {
        Segment {
            src: self.client,
            dst: self.server,
            seq: self.client_seq,
            ack: self.server_seq,
            flags,
            payload: data.to_vec(),
        }
    }

    fn sent_by_server(&self, flags: u8, data: &[u8]) -> Segment {
        Segment {
            src: self.server,
            dst: self.client,
            seq: self.server_seq,
            ack: self.client_seq,
            flags,
            payload: data.to_vec(),
        }
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(&mut self) -> Vec<Segment> {
        let syn = self.sent_by_client(TcpFlags::SYN, b"");
        self.client_seq = self.client_seq.wrapping_add(1);
        let syn_ack = self.sent_by_server(TcpFlags::SYN | TcpFlags::ACK, b"");
        self.server_seq = self.server_seq.wrapping_add(1);
        let ack = self.sent_by_client(TcpFlags::ACK, b"");
        vec![syn, syn_ack, ack]
    }

    /// Client data.
    pub fn client(&mut self, data: &[u8]) -> Segment {
        let s = self.sent_by_client(TcpFlags::ACK | TcpFlags::PSH, data);
        self.client_seq = self.client_seq.wrapping_add(data.len() as u32);
        s
    }

    /// Server data.
    pub fn server(&mut self, data: &[u8]) -> Segment {
        let s = self.sent_by_server(TcpFlags::ACK | TcpFlags::PSH, data);
        self.server_seq = self.server_seq.wrapping_add(data.len() as u32);
        s
    }

    /// Client FIN.
    pub fn client_fin(&mut self) -> Segment {
        let s = self.sent_by_client(TcpFlags::FIN | TcpFlags::ACK, b"");
        self.client_seq = self.client_seq.wrapping_add(1);
        s
    }

    /// Server FIN.
    pub fn server_fin(&mut self) -> Segment {
        let s = self.sent_by_server(TcpFlags::FIN | TcpFlags::ACK, b"");
        self.server_seq = self.server_seq.wrapping_add(1);
        s
    }

    /// Client RST.
    pub fn client_rst(&mut self) -> Segment {
        self.sent_by_client(TcpFlags::RST | TcpFlags::ACK, b"")
    }
}

/// One record of a classic pcap file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PcapRecord<'a> {
    /// Capture time in nanoseconds since the epoch.
    pub ts_ns: i64,
    /// Length on the wire.
    pub orig_len: usize,
    /// Captured bytes.
    pub data: &'a [u8],
}

/// Reads a classic pcap file (either byte order, micro- or nanosecond timestamps); `None` for
/// anything else (pcapng included). Records after a truncated one are ignored.
pub fn read_pcap(file: &[u8]) -> Option<(u32, Vec<PcapRecord<'_>>)> {
    let magic: [u8; 4] = file.get(..4)?.try_into().ok()?;
    let (little, nanos) = match magic {
        [0xD4, 0xC3, 0xB2, 0xA1] => (true, false),
        [0xA1, 0xB2, 0xC3, 0xD4] => (false, false),
        [0x4D, 0x3C, 0xB2, 0xA1] => (true, true),
        [0xA1, 0xB2, 0x3C, 0x4D] => (false, true),
        _ => return None,
    };
    let word = |at: usize| -> Option<u32> {
        let b: [u8; 4] = file.get(at..at + 4)?.try_into().ok()?;
        Some(if little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    };
    let linktype = word(20)? & 0x0FFF_FFFF;
    let mut records = Vec::new();
    let mut at = 24;
    while let (Some(sec), Some(frac), Some(incl), Some(orig)) =
        (word(at), word(at + 4), word(at + 8), word(at + 12))
    {
        let start = at + 16;
        let Some(data) = file.get(start..start.saturating_add(incl as usize)) else {
            break;
        };
        let frac_ns = if nanos {
            i64::from(frac)
        } else {
            i64::from(frac) * 1000
        };
        records.push(PcapRecord {
            ts_ns: i64::from(sec) * 1_000_000_000 + frac_ns,
            orig_len: orig as usize,
            data,
        });
        at = start + data.len();
    }
    Some((linktype, records))
}

/// Writes a classic little-endian microsecond pcap file of `(ts_ns, frame)` records.
pub fn write_pcap(linktype: u32, records: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut f = Vec::new();
    for word in [0xA1B2_C3D4u32, 0x0004_0002, 0, 0, 65535, linktype] {
        f.extend_from_slice(&word.to_le_bytes());
    }
    for (ts_ns, frame) in records {
        let sec = (ts_ns / 1_000_000_000) as u32;
        let usec = ((ts_ns % 1_000_000_000) / 1000) as u32;
        for word in [sec, usec, frame.len() as u32, frame.len() as u32] {
            f.extend_from_slice(&word.to_le_bytes());
        }
        f.extend_from_slice(frame);
    }
    f
}

/// Fuzz body for the `decode` target: the first two bytes pick the link type (from the
/// supported list, or any value), the rest is the frame. Returns whether it decoded.
pub fn fuzz_decode(data: &[u8]) -> bool {
    const LINKTYPES: [u32; 12] = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 51, 104];
    let (selector, frame) = match data {
        [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
        _ => return false,
    };
    let linktype = LINKTYPES
        .get(usize::from(selector % 13))
        .copied()
        .unwrap_or(u32::from(selector));
    let wire_len = frame.len() + usize::from(selector >> 12);
    match crate::decode(linktype, frame, wire_len) {
        Ok(pkt) => {
            let _ = (pkt.flags.syn(), pkt.payload.len(), pkt.captured_truncated);
            true
        }
        Err(e) => {
            assert!(!e.reason().is_empty());
            false
        }
    }
}

/// Fuzz body for the `http_framer` target: interprets `data` as a script of segments of one
/// connection (both directions, with sequence jitter so segments reorder, overlap and leave
/// holes), control flags and clock jumps, feeds it to a [`crate::Tracker`] and checks its
/// invariants. Panics on a violated invariant.
pub fn fuzz_http_framer(data: &[u8]) {
    use crate::tracker::{Event, Framing, Tracker, TrackerConfig};
    let Some((&setup, mut script)) = data.split_first() else {
        return;
    };
    let cfg = TrackerConfig {
        ports: if setup & 1 == 0 { vec![80] } else { vec![] },
        track_responses: setup & 2 == 0,
        allow_incomplete: setup & 4 != 0,
        framing: if setup & 8 != 0 {
            Framing::Binary
        } else {
            Framing::Http
        },
        max_message_bytes: if setup & 16 != 0 { 64 } else { 4096 },
        max_buffered_bytes: if setup & 32 != 0 { 512 } else { 1 << 20 },
        expire_ns: 1_000,
        ..TrackerConfig::default()
    };
    let limit = cfg.max_message_bytes;
    let mut tracker = Tracker::new(cfg);
    let mut conv = Conversation::new("10.1.1.1:40000", "10.2.2.2:80").isn(u32::MAX - 100, 7);
    let mut now = 0i64;
    let mut check = |e: Event| {
        if let Event::Message(m) = e {
            assert_eq!(m.id.len(), 24);
            assert!(m.payload.len() <= limit);
        }
    };
    while let Some((&op, rest)) = script.split_first() {
        let len = usize::from(rest.first().copied().unwrap_or(0) % 64);
        let payload = rest.get(1..1 + len).unwrap_or_default();
        script = rest.get(1 + len..).unwrap_or_default();
        now += i64::from(op >> 5) * 100;
        let mut seg = match op & 7 {
            0..=2 => conv.client(payload),
            3..=5 => conv.server(payload),
            6 => {
                tracker.expire(now, &mut check);
                continue;
            }
            _ => {
                let mut s = if op & 8 != 0 {
                    conv.client_fin()
                } else {
                    conv.server_fin()
                };
                if op & 16 != 0 {
                    s.flags = TcpFlags::SYN | (s.flags & TcpFlags::ACK);
                }
                s
            }
        };
        if op & 24 == 24 {
            seg.seq = seg.seq.wrapping_sub(u32::from(op & 0x3F));
        }
        if op >> 6 == 3 && op & 7 < 6 {
            continue; // lost on the wire: leaves a hole
        }
        tracker.push(&seg.packet(), now, &mut check);
    }
    tracker.finish(&mut check);
    assert_eq!(tracker.flows(), 0);
    assert_eq!(tracker.buffered_bytes(), 0);
}

/// A UDP datagram (checksum 0: not computed).
pub fn udp(src_port: u16, dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let mut d = Vec::with_capacity(8 + payload.len());
    d.extend_from_slice(&src_port.to_be_bytes());
    d.extend_from_slice(&dst_port.to_be_bytes());
    d.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    d.extend_from_slice(&[0, 0]);
    d.extend_from_slice(payload);
    d
}

/// A VXLAN header (I flag set) with this VNI, followed by `inner` (an Ethernet frame).
pub fn vxlan_payload(vni: u32, inner: &[u8]) -> Vec<u8> {
    let mut v = vec![0x08, 0, 0, 0];
    v.extend_from_slice(&(vni << 8).to_be_bytes());
    v.extend_from_slice(inner);
    v
}

/// An underlay Ethernet/IPv4/UDP frame (192.0.2.1 → 192.0.2.2) to `dst_port` carrying `payload`.
pub fn underlay(dst_port: u16, payload: &[u8]) -> Vec<u8> {
    let datagram = udp(49152, dst_port, payload);
    ethernet(
        &ipv4_raw("192.0.2.1", "192.0.2.2", 17, &[], 0, &datagram),
        &[],
    )
}

/// An underlay frame to UDP 4789 carrying `inner` (an Ethernet frame) in VXLAN with this VNI.
pub fn vxlan(vni: u32, inner: &[u8]) -> Vec<u8> {
    underlay(4789, &vxlan_payload(vni, inner))
}

/// A GENEVE header: version 0, `options` (whole TLVs, a multiple of 4 bytes), protocol type
/// `protocol` (0x6558 Ethernet, 0x0800 IPv4, 0x86DD IPv6), this VNI, then `inner`.
pub fn geneve_payload(vni: u32, protocol: u16, options: &[u8], inner: &[u8]) -> Vec<u8> {
    assert!(
        options.len().is_multiple_of(4) && options.len() <= 252,
        "GENEVE options"
    );
    let mut g = vec![(options.len() / 4) as u8, 0];
    g.extend_from_slice(&protocol.to_be_bytes());
    g.extend_from_slice(&(vni << 8).to_be_bytes());
    g.extend_from_slice(options);
    g.extend_from_slice(inner);
    g
}

/// The three GENEVE options AWS Gateway Load Balancer sends (class 0x0108: endpoint id,
/// attachment id, flow cookie; 32 bytes).
pub fn gwlb_options() -> Vec<u8> {
    let mut o = Vec::new();
    for (kind, words) in [(1u8, 2u8), (2, 2), (3, 1)] {
        o.extend_from_slice(&[0x01, 0x08, kind, words]);
        o.extend(std::iter::repeat_n(kind, usize::from(words) * 4));
    }
    o
}

/// An underlay frame to UDP 6081 carrying `inner` in GENEVE (see [`geneve_payload`]).
pub fn geneve(vni: u32, protocol: u16, options: &[u8], inner: &[u8]) -> Vec<u8> {
    underlay(6081, &geneve_payload(vni, protocol, options, inner))
}

/// A PPPoE session header (RFC 2516) and PPP protocol field carrying `ip` (pcap PPP_ETHER).
pub fn pppoe_session(ip: &[u8]) -> Vec<u8> {
    let protocol: u16 = if ip.first().map(|b| b >> 4) == Some(6) {
        0x0057
    } else {
        0x0021
    };
    let mut f = vec![0x11, 0x00, 0x12, 0x34];
    f.extend_from_slice(&((ip.len() + 2) as u16).to_be_bytes());
    f.extend_from_slice(&protocol.to_be_bytes());
    f.extend_from_slice(ip);
    f
}

/// An Ethernet frame (ethertype 0x8864) carrying `ip` in a PPPoE session, after a VLAN tag
/// for each TPID in `vlan_tpids`.
pub fn pppoe(ip: &[u8], vlan_tpids: &[u16]) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for tpid in vlan_tpids {
        f.extend_from_slice(&tpid.to_be_bytes());
        f.extend_from_slice(&100u16.to_be_bytes());
    }
    f.extend_from_slice(&[0x88, 0x64]);
    f.extend_from_slice(&pppoe_session(ip));
    f
}

/// A Cisco HDLC frame (pcap C_HDLC): unicast address 0x0F, control 0, the IP ethertype.
pub fn cisco_hdlc(ip: &[u8]) -> Vec<u8> {
    let mut f = vec![0x0F, 0x00];
    f.extend_from_slice(&ethertype_of(ip));
    f.extend_from_slice(ip);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcap_round_trip() {
        let frame = Segment::new("1.2.3.4:5", "6.7.8.9:80")
            .payload(b"x")
            .ethernet();
        let file = write_pcap(1, &[(1_500_000_000, frame.clone())]);
        let (linktype, records) = read_pcap(&file).unwrap();
        assert_eq!(linktype, 1);
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].ts_ns, 1_500_000_000);
        assert_eq!(records[0].data, &frame[..]);
        assert!(read_pcap(b"\x0a\x0d\x0d\x0a").is_none());
    }
}
