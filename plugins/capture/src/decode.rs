//! Zero-copy decoding of captured frames down to the TCP payload.
//!
//! [`decode`] borrows the frame: the returned [`Packet`] points into it. Every field access is
//! bounds-checked (`get`), so no input can make it panic.
//!
//! Link layers: Ethernet (VLAN/QinQ tags, PPPoE sessions), Linux cooked v1/v2, BSD loopback,
//! raw IP, PPPoE without Ethernet (`PPP_ETHER`) and Cisco HDLC. Tunnels are unwrapped in place
//! ([`tunnel`]): VXLAN (UDP 4789: AWS VPC Traffic Mirroring, Azure vTAP) and GENEVE (UDP 6081:
//! AWS Gateway Load Balancer), nested at most [`MAX_TUNNEL_DEPTH`] deep.

pub mod tunnel;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// pcap link-layer header types understood by [`decode`].
pub mod linktype {
    /// BSD loopback: 4-byte address family in the capturing host's byte order.
    pub const NULL: u32 = 0;
    /// Ethernet II, with any number (up to 8) of 802.1Q / 802.1ad VLAN tags.
    pub const ETHERNET: u32 = 1;
    /// Raw IP (DLT_RAW on some BSDs).
    pub const RAW_BSD: u32 = 12;
    /// Raw IP (DLT_RAW on OpenBSD).
    pub const RAW_OPENBSD: u32 = 14;
    /// Raw IP, version taken from the first nibble.
    pub const RAW: u32 = 101;
    /// OpenBSD loopback: 4-byte address family in network byte order.
    pub const LOOP: u32 = 108;
    /// Linux cooked capture v1.
    pub const LINUX_SLL: u32 = 113;
    /// Raw IPv4.
    pub const IPV4: u32 = 228;
    /// Raw IPv6.
    pub const IPV6: u32 = 229;
    /// Linux cooked capture v2.
    pub const LINUX_SLL2: u32 = 276;
    /// PPPoE session frames without the Ethernet header (RFC 2516 header, then PPP).
    pub const PPP_ETHER: u32 = 51;
    /// Cisco HDLC: address 0x0F/0x8F, control 0x00, a 2-byte ethertype.
    pub const C_HDLC: u32 = 104;
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88A8, 0x9100];
const MAX_VLAN_TAGS: usize = 8;
const ETHERTYPE_PPPOE_SESSION: u16 = 0x8864;
const MAX_IPV6_EXTENSIONS: usize = 16;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// Tunnel headers (VXLAN, GENEVE) unwrapped in one frame at most; deeper is a format error.
pub const MAX_TUNNEL_DEPTH: usize = 4;

/// Why a frame yields no TCP segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The link layer carries something other than IPv4/IPv6.
    #[error("not an IP packet")]
    NotIp,
    /// IP packet carrying something other than TCP.
    #[error("not a TCP segment")]
    NotTcp,
    /// An IP fragment (reassembly of IP fragments is not supported).
    #[error("IP fragment")]
    Fragment,
    /// Inconsistent lengths or versions.
    #[error("malformed packet: {0}")]
    Format(&'static str),
    /// A header is cut short.
    #[error("frame truncated")]
    Truncated,
    /// A pcap link type [`decode`] does not know.
    #[error("unsupported link type {0}")]
    UnsupportedLinkType(u32),
}

impl DecodeError {
    /// The ledger reason for this error.
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::NotIp => "not ip",
            DecodeError::NotTcp => "not tcp",
            DecodeError::Fragment => "fragment",
            DecodeError::Format(_) => "format error",
            DecodeError::Truncated => "truncated",
            DecodeError::UnsupportedLinkType(_) => "unsupported link type",
        }
    }
}

/// TCP control flags as a bitset (the low byte of the TCP flags field).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN bit.
    pub const FIN: u8 = 0x01;
    /// SYN bit.
    pub const SYN: u8 = 0x02;
    /// RST bit.
    pub const RST: u8 = 0x04;
    /// PSH bit.
    pub const PSH: u8 = 0x08;
    /// ACK bit.
    pub const ACK: u8 = 0x10;

    /// FIN is set.
    pub fn fin(self) -> bool {
        self.0 & Self::FIN != 0
    }
    /// SYN is set.
    pub fn syn(self) -> bool {
        self.0 & Self::SYN != 0
    }
    /// RST is set.
    pub fn rst(self) -> bool {
        self.0 & Self::RST != 0
    }
    /// PSH is set.
    pub fn psh(self) -> bool {
        self.0 & Self::PSH != 0
    }
    /// ACK is set.
    pub fn ack(self) -> bool {
        self.0 & Self::ACK != 0
    }
}

/// A decoded TCP segment borrowing its payload from the captured frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet<'a> {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port.
    pub src_port: u16,
    /// Destination port.
    pub dst_port: u16,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number.
    pub ack: u32,
    /// Control flags.
    pub flags: TcpFlags,
    /// Receive window.
    pub window: u16,
    /// TCP payload (IP padding trimmed); shorter than sent when `captured_truncated`.
    pub payload: &'a [u8],
    /// The capture cut the frame (snaplen): the payload is shorter than the IP length says.
    pub captured_truncated: bool,
}

#[derive(Clone, Copy)]
pub(crate) enum Network {
    V4,
    V6,
}

/// Decodes one captured frame of pcap link type `linktype`. `wire_len` is the frame's original
/// length on the wire (pcap `orig_len`); it only matters when the IP length fields are zero
/// (TSO/jumbo captures), where it tells whether the capture cut the frame.
#[inline(always)]
pub fn decode(linktype: u32, frame: &[u8], wire_len: usize) -> Result<Packet<'_>, DecodeError> {
    let (network, l3) = link_payload(linktype, frame)?;
    let snap_cut = wire_len > frame.len();
    network_layer(network, l3, snap_cut, 0)
}

/// Decodes an IP packet `depth` tunnels deep. Inlined down to the TCP header (the hot path);
/// the tunnel path (`tunnel::beyond_ip`) is out of line, which also ends the recursion.
#[inline(always)]
pub(crate) fn network_layer(
    network: Network,
    l3: &[u8],
    snap_cut: bool,
    depth: usize,
) -> Result<Packet<'_>, DecodeError> {
    match network {
        Network::V4 => ipv4(l3, snap_cut, depth),
        Network::V6 => ipv6(l3, snap_cut, depth),
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]))
}

pub(crate) fn be32(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 4)?;
    Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
}

pub(crate) fn tail(b: &[u8], from: usize) -> Result<&[u8], DecodeError> {
    b.get(from..).ok_or(DecodeError::Truncated)
}

fn link_payload(linktype: u32, frame: &[u8]) -> Result<(Network, &[u8]), DecodeError> {
    use linktype::*;
    match linktype {
        ETHERNET => {
            let ethertype = be16(frame, 12).ok_or(DecodeError::Truncated)?;
            by_ethertype(ethertype, tail(frame, 14)?)
        }
        LINUX_SLL => {
            let protocol = be16(frame, 14).ok_or(DecodeError::Truncated)?;
            by_ethertype(protocol, tail(frame, 16)?)
        }
        LINUX_SLL2 => {
            let protocol = be16(frame, 0).ok_or(DecodeError::Truncated)?;
            by_ethertype(protocol, tail(frame, 20)?)
        }
        NULL | LOOP => by_address_family(frame),
        PPP_ETHER => pppoe_session(frame),
        C_HDLC => cisco_hdlc(frame),
        RAW | RAW_BSD | RAW_OPENBSD => by_version_nibble(frame),
        IPV4 => Ok((Network::V4, frame)),
        IPV6 => Ok((Network::V6, frame)),
        other => Err(DecodeError::UnsupportedLinkType(other)),
    }
}

pub(crate) fn by_ethertype(
    mut ethertype: u16,
    mut rest: &[u8],
) -> Result<(Network, &[u8]), DecodeError> {
    for _ in 0..=MAX_VLAN_TAGS {
        match ethertype {
            ETHERTYPE_IPV4 => return Ok((Network::V4, rest)),
            ETHERTYPE_IPV6 => return Ok((Network::V6, rest)),
            t if ETHERTYPE_VLAN.contains(&t) => {
                ethertype = be16(rest, 2).ok_or(DecodeError::Truncated)?;
                rest = tail(rest, 4)?;
            }
            ETHERTYPE_PPPOE_SESSION => return pppoe_session(rest),
            _ => return Err(DecodeError::NotIp),
        }
    }
    Err(DecodeError::Format("too many VLAN tags"))
}

/// A PPPoE session frame (RFC 2516: version/type 0x11, code 0, session id, length), then PPP.
/// PPPoE discovery frames (ethertype 0x8863) never get here: they are not IP.
fn pppoe_session(frame: &[u8]) -> Result<(Network, &[u8]), DecodeError> {
    let header = frame.get(..6).ok_or(DecodeError::Truncated)?;
    if header[0] != 0x11 {
        return Err(DecodeError::Format("PPPoE version/type"));
    }
    if header[1] != 0 {
        return Err(DecodeError::Format("PPPoE code (not a session frame)"));
    }
    let length = usize::from(be16(header, 4).ok_or(DecodeError::Truncated)?);
    let (network, l3, protocol_len) = ppp(tail(frame, 6)?)?;
    if length < protocol_len {
        return Err(DecodeError::Format("PPPoE length"));
    }
    Ok((network, l3))
}

/// The PPP protocol field (one byte when compressed: an odd first byte), IPv4 0x0021 or IPv6
/// 0x0057; returns the network, its packet and the field's size.
fn ppp(b: &[u8]) -> Result<(Network, &[u8], usize), DecodeError> {
    let first = *b.first().ok_or(DecodeError::Truncated)?;
    let (protocol, size) = if first & 1 == 1 {
        (u16::from(first), 1)
    } else {
        (be16(b, 0).ok_or(DecodeError::Truncated)?, 2)
    };
    let network = match protocol {
        0x0021 => Network::V4,
        0x0057 => Network::V6,
        _ => return Err(DecodeError::NotIp),
    };
    Ok((network, tail(b, size)?, size))
}

/// Cisco HDLC: address 0x0F (unicast) or 0x8F (broadcast), control 0, an ethertype.
fn cisco_hdlc(frame: &[u8]) -> Result<(Network, &[u8]), DecodeError> {
    let header = frame.get(..4).ok_or(DecodeError::Truncated)?;
    if header[0] != 0x0F && header[0] != 0x8F {
        return Err(DecodeError::Format("Cisco HDLC address"));
    }
    if header[1] != 0 {
        return Err(DecodeError::Format("Cisco HDLC control"));
    }
    match be16(header, 2) {
        Some(ETHERTYPE_IPV4) => Ok((Network::V4, tail(frame, 4)?)),
        Some(ETHERTYPE_IPV6) => Ok((Network::V6, tail(frame, 4)?)),
        _ => Err(DecodeError::NotIp),
    }
}

/// The family word is in the capturing host's byte order (NULL) or network order (LOOP);
/// accepting either order is unambiguous for the values we look for.
fn by_address_family(frame: &[u8]) -> Result<(Network, &[u8]), DecodeError> {
    let word = frame.get(..4).ok_or(DecodeError::Truncated)?;
    let bytes = [word[0], word[1], word[2], word[3]];
    let rest = tail(frame, 4)?;
    for family in [u32::from_le_bytes(bytes), u32::from_be_bytes(bytes)] {
        match family {
            2 => return Ok((Network::V4, rest)),
            24 | 28 | 30 => return Ok((Network::V6, rest)),
            _ => {}
        }
    }
    Err(DecodeError::NotIp)
}

fn by_version_nibble(frame: &[u8]) -> Result<(Network, &[u8]), DecodeError> {
    match frame.first().map(|b| b >> 4) {
        Some(4) => Ok((Network::V4, frame)),
        Some(6) => Ok((Network::V6, frame)),
        Some(_) => Err(DecodeError::NotIp),
        None => Err(DecodeError::Truncated),
    }
}

/// Cuts `body` to the IP-declared `declared` length; reports whether the capture is shorter.
fn ip_body(body: &[u8], declared: Option<usize>, snap_cut: bool) -> (&[u8], bool) {
    match declared {
        None => (body, snap_cut),
        Some(n) if n <= body.len() => (&body[..n], false),
        Some(_) => (body, true),
    }
}

#[inline(always)]
fn ipv4(b: &[u8], snap_cut: bool, depth: usize) -> Result<Packet<'_>, DecodeError> {
    let first = *b.first().ok_or(DecodeError::Truncated)?;
    if first >> 4 != 4 {
        return Err(DecodeError::Format("IP version"));
    }
    let header_len = usize::from(first & 0x0F) * 4;
    if header_len < 20 {
        return Err(DecodeError::Format("IPv4 header length"));
    }
    let header = b.get(..header_len).ok_or(DecodeError::Truncated)?;
    let total = usize::from(be16(header, 2).ok_or(DecodeError::Truncated)?);
    let declared = match total {
        0 => None, // TSO: the kernel left the length unset
        t if t < header_len => return Err(DecodeError::Format("IPv4 total length")),
        t => Some(t - header_len),
    };
    let fragment = be16(header, 6).ok_or(DecodeError::Truncated)?;
    if fragment & 0x2000 != 0 || fragment & 0x1FFF != 0 {
        return Err(DecodeError::Fragment);
    }
    let (segment, cut) = ip_body(tail(b, header_len)?, declared, snap_cut);
    if header[9] != IPPROTO_TCP {
        return tunnel::beyond_ip(header[9], segment, cut, depth);
    }
    let src = be32(header, 12).ok_or(DecodeError::Truncated)?;
    let dst = be32(header, 16).ok_or(DecodeError::Truncated)?;
    tcp(
        segment,
        IpAddr::V4(Ipv4Addr::from(src)),
        IpAddr::V4(Ipv4Addr::from(dst)),
        cut,
    )
}

fn ipv6_addr(b: &[u8], at: usize) -> Option<IpAddr> {
    let s: [u8; 16] = b.get(at..at + 16)?.try_into().ok()?;
    Some(IpAddr::V6(Ipv6Addr::from(s)))
}

#[inline(always)]
fn ipv6(b: &[u8], snap_cut: bool, depth: usize) -> Result<Packet<'_>, DecodeError> {
    let header = b.get(..40).ok_or(DecodeError::Truncated)?;
    if header[0] >> 4 != 6 {
        return Err(DecodeError::Format("IP version"));
    }
    let declared = match be16(header, 4).unwrap_or(0) {
        0 => None, // jumbogram or TSO
        n => Some(usize::from(n)),
    };
    let src = ipv6_addr(header, 8).ok_or(DecodeError::Truncated)?;
    let dst = ipv6_addr(header, 24).ok_or(DecodeError::Truncated)?;
    let (body, cut) = ip_body(tail(b, 40)?, declared, snap_cut);
    let (next, segment) = skip_ipv6_extensions(header[6], body)?;
    if next != IPPROTO_TCP {
        return tunnel::beyond_ip(next, segment, cut, depth);
    }
    tcp(segment, src, dst, cut)
}

/// Skips extension headers up to TCP or UDP: returns that protocol number and its bytes.
fn skip_ipv6_extensions(mut next: u8, mut body: &[u8]) -> Result<(u8, &[u8]), DecodeError> {
    for _ in 0..MAX_IPV6_EXTENSIONS {
        let len = match next {
            IPPROTO_TCP | IPPROTO_UDP => return Ok((next, body)),
            0 | 43 | 60 => (usize::from(*body.get(1).ok_or(DecodeError::Truncated)?) + 1) * 8,
            44 => {
                let word = be16(body, 2).ok_or(DecodeError::Truncated)?;
                if word >> 3 != 0 || word & 1 != 0 {
                    return Err(DecodeError::Fragment);
                }
                8
            }
            51 => (usize::from(*body.get(1).ok_or(DecodeError::Truncated)?) + 2) * 4,
            _ => return Err(DecodeError::NotTcp),
        };
        next = *body.first().ok_or(DecodeError::Truncated)?;
        body = tail(body, len)?;
    }
    Err(DecodeError::Format("too many IPv6 extension headers"))
}

#[inline(always)]
fn tcp(segment: &[u8], src: IpAddr, dst: IpAddr, cut: bool) -> Result<Packet<'_>, DecodeError> {
    let header = segment.get(..20).ok_or(DecodeError::Truncated)?;
    let data_offset = usize::from(header[12] >> 4) * 4;
    if data_offset < 20 {
        return Err(DecodeError::Format("TCP data offset"));
    }
    let payload = match segment.get(data_offset..) {
        Some(p) => p,
        None if cut => return Err(DecodeError::Truncated),
        None => return Err(DecodeError::Format("TCP data offset beyond segment")),
    };
    Ok(Packet {
        src,
        dst,
        src_port: be16(header, 0).unwrap_or(0),
        dst_port: be16(header, 2).unwrap_or(0),
        seq: be32(header, 4).unwrap_or(0),
        ack: be32(header, 8).unwrap_or(0),
        flags: TcpFlags(header[13]),
        window: be16(header, 14).unwrap_or(0),
        payload,
        captured_truncated: cut,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{self, Segment};

    fn segment() -> Segment {
        Segment::new("10.0.0.1:40000", "10.0.0.2:80")
            .seq(1000)
            .ack(2000)
            .flags(TcpFlags::ACK | TcpFlags::PSH)
            .payload(b"GET / HTTP/1.1\r\n\r\n")
    }

    fn assert_segment(p: &Packet<'_>) {
        assert_eq!(p.src, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(p.dst, "10.0.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((p.src_port, p.dst_port), (40000, 80));
        assert_eq!((p.seq, p.ack), (1000, 2000));
        assert!(p.flags.ack() && p.flags.psh() && !p.flags.syn());
        assert_eq!(p.payload, b"GET / HTTP/1.1\r\n\r\n");
        assert!(!p.captured_truncated);
    }

    #[test]
    fn ethernet_ipv4() {
        let frame = testutil::ethernet(&segment().ipv4(), &[]);
        assert_segment(&decode(linktype::ETHERNET, &frame, frame.len()).unwrap());
    }

    #[test]
    fn ethernet_padding_is_trimmed() {
        let mut frame = testutil::ethernet(&segment().payload(b"").ipv4(), &[]);
        frame.extend_from_slice(&[0; 6]);
        let p = decode(linktype::ETHERNET, &frame, frame.len()).unwrap();
        assert!(p.payload.is_empty());
    }

    #[test]
    fn vlan_and_qinq() {
        for tags in [&[0x8100][..], &[0x88A8, 0x8100], &[0x9100, 0x8100, 0x8100]] {
            let frame = testutil::ethernet(&segment().ipv4(), tags);
            assert_segment(&decode(linktype::ETHERNET, &frame, frame.len()).unwrap());
        }
        let frame = testutil::ethernet(&segment().ipv4(), &[0x8100; 9]);
        assert_eq!(
            decode(linktype::ETHERNET, &frame, frame.len()),
            Err(DecodeError::Format("too many VLAN tags"))
        );
    }

    #[test]
    fn every_link_type() {
        let ip = segment().ipv4();
        let frames = [
            (linktype::LINUX_SLL, testutil::sll(&ip)),
            (linktype::LINUX_SLL2, testutil::sll2(&ip)),
            (linktype::NULL, testutil::null(&ip, 2, false)),
            (linktype::NULL, testutil::null(&ip, 2, true)),
            (linktype::LOOP, testutil::null(&ip, 2, true)),
            (linktype::RAW, ip.clone()),
            (linktype::RAW_BSD, ip.clone()),
            (linktype::RAW_OPENBSD, ip.clone()),
            (linktype::IPV4, ip.clone()),
        ];
        for (lt, frame) in frames {
            assert_segment(&decode(lt, &frame, frame.len()).unwrap());
        }
        let v6 = Segment::new("[2001:db8::1]:40000", "[2001:db8::2]:80")
            .payload(b"x")
            .ipv6(&[]);
        for family in [24, 28, 30] {
            let frame = testutil::null(&v6, family, false);
            let p = decode(linktype::NULL, &frame, frame.len()).unwrap();
            assert_eq!(p.payload, b"x");
        }
        for lt in [linktype::RAW, linktype::IPV6] {
            assert_eq!(decode(lt, &v6, v6.len()).unwrap().dst_port, 80);
        }
        assert_eq!(
            decode(147, &ip, ip.len()),
            Err(DecodeError::UnsupportedLinkType(147))
        );
        assert_eq!(
            decode(linktype::NULL, &testutil::null(&ip, 7, false), 60),
            Err(DecodeError::NotIp)
        );
    }

    #[test]
    fn ipv4_options_are_skipped() {
        let ip = segment().ipv4_with(&[1, 1, 1, 0, 7, 7, 7, 7], 0);
        assert_segment(&decode(linktype::RAW, &ip, ip.len()).unwrap());
    }

    #[test]
    fn ipv4_fragments_are_rejected() {
        for frag in [0x2000u16, 0x0010, 0x2010] {
            let ip = segment().ipv4_with(&[], frag);
            assert_eq!(
                decode(linktype::RAW, &ip, ip.len()),
                Err(DecodeError::Fragment)
            );
        }
        let dont_fragment = segment().ipv4_with(&[], 0x4000);
        assert!(decode(linktype::RAW, &dont_fragment, 60).is_ok());
    }

    #[test]
    fn ipv6_extension_headers() {
        let seg = Segment::new("[::1]:1234", "[::2]:80").payload(b"hi");
        let ext = [
            (0u8, vec![0u8; 6]),
            (43, vec![0; 14]),
            (60, vec![0; 6]),
            (51, vec![0; 10]),
            (44, vec![0; 6]),
        ];
        let ip = seg.ipv6(&ext);
        let p = decode(linktype::RAW, &ip, ip.len()).unwrap();
        assert_eq!((p.payload, p.src_port), (&b"hi"[..], 1234));
        let fragment = seg.ipv6(&[(44, vec![0, 1, 0, 0, 0, 0])]);
        assert_eq!(
            decode(linktype::RAW, &fragment, 99),
            Err(DecodeError::Fragment)
        );
        let udp = testutil::ipv6_raw("::1", "::2", 17, &[], &[0; 8]);
        assert_eq!(decode(linktype::RAW, &udp, 48), Err(DecodeError::NotTcp));
    }

    #[test]
    fn not_tcp_and_not_ip() {
        let udp = testutil::ipv4_raw("1.1.1.1", "2.2.2.2", 17, &[], 0, &[0; 8]);
        assert_eq!(decode(linktype::RAW, &udp, 28), Err(DecodeError::NotTcp));
        let mut arp = testutil::ethernet(&[0; 28], &[]);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(
            decode(linktype::ETHERNET, &arp, 42),
            Err(DecodeError::NotIp)
        );
    }

    #[test]
    fn snaplen_cut_payload_is_flagged() {
        let frame = testutil::ethernet(&segment().ipv4(), &[]);
        let cut = &frame[..frame.len() - 4];
        let p = decode(linktype::ETHERNET, cut, frame.len()).unwrap();
        assert!(p.captured_truncated);
        assert_eq!(p.payload, b"GET / HTTP/1.1");
    }

    #[test]
    fn cut_headers_are_truncated_errors() {
        let frame = testutil::ethernet(&segment().ipv4(), &[0x8100]);
        for len in 0..(14 + 4 + 20 + 20) {
            let err = decode(linktype::ETHERNET, &frame[..len], frame.len()).unwrap_err();
            assert_eq!(err.reason(), "truncated", "len {len}");
        }
    }

    #[test]
    fn bad_lengths_are_format_errors() {
        let mut ip = segment().ipv4();
        ip[0] = 0x44; // IHL 4 words
        assert_eq!(
            decode(linktype::RAW, &ip, 60).unwrap_err().reason(),
            "format error"
        );
        let mut ip = segment().ipv4();
        ip[20 + 12] = 0x40; // data offset 16 bytes
        assert_eq!(
            decode(linktype::RAW, &ip, 60).unwrap_err().reason(),
            "format error"
        );
    }

    #[test]
    fn pppoe_sessions_in_ethernet_vlan_and_ppp_ether() {
        let ip = segment().ipv4();
        for tags in [&[][..], &[0x8100], &[0x88A8, 0x8100]] {
            let frame = testutil::pppoe(&ip, tags);
            assert_segment(&decode(linktype::ETHERNET, &frame, frame.len()).unwrap());
        }
        let frame = testutil::pppoe_session(&ip);
        assert_segment(&decode(linktype::PPP_ETHER, &frame, frame.len()).unwrap());
        let v6 = Segment::new("[2001:db8::1]:40000", "[2001:db8::2]:80")
            .payload(b"v6")
            .ipv6(&[]);
        let frame = testutil::pppoe(&v6, &[]);
        let p = decode(linktype::ETHERNET, &frame, frame.len()).unwrap();
        assert_eq!(p.payload, &b"v6"[..]);
        // protocol-field compression: a one-byte protocol 0x21
        let mut compressed = testutil::pppoe_session(&ip);
        compressed.remove(6);
        assert_segment(&decode(linktype::PPP_ETHER, &compressed, 99).unwrap());
    }

    #[test]
    fn pppoe_errors() {
        let ip = segment().ipv4();
        let bad = |at: usize, value: u8| {
            let mut f = testutil::pppoe_session(&ip);
            f[at] = value;
            decode(linktype::PPP_ETHER, &f, f.len()).map(|p| p.seq)
        };
        assert_eq!(bad(0, 0x21), Err(DecodeError::Format("PPPoE version/type")));
        assert_eq!(
            bad(1, 0x09),
            Err(DecodeError::Format("PPPoE code (not a session frame)"))
        );
        let mut short = testutil::pppoe_session(&ip);
        short[4..6].copy_from_slice(&1u16.to_be_bytes());
        assert_eq!(
            decode(linktype::PPP_ETHER, &short, short.len()),
            Err(DecodeError::Format("PPPoE length"))
        );
        let mut lcp = testutil::pppoe_session(&ip);
        lcp[6..8].copy_from_slice(&0xC021u16.to_be_bytes());
        assert_eq!(
            decode(linktype::PPP_ETHER, &lcp, lcp.len()),
            Err(DecodeError::NotIp)
        );
        let mut discovery = testutil::pppoe(&ip, &[]);
        discovery[13] = 0x63;
        assert_eq!(
            decode(linktype::ETHERNET, &discovery, 99),
            Err(DecodeError::NotIp)
        );
        let frame = testutil::pppoe(&ip, &[0x8100]);
        for len in 0..(14 + 4 + 8 + 20 + 20) {
            let err = decode(linktype::ETHERNET, &frame[..len], frame.len()).unwrap_err();
            assert_eq!(err, DecodeError::Truncated, "len {len}");
        }
    }

    #[test]
    fn cisco_hdlc() {
        let ip = segment().ipv4();
        let frame = testutil::cisco_hdlc(&ip);
        assert_segment(&decode(linktype::C_HDLC, &frame, frame.len()).unwrap());
        let mut broadcast = frame.clone();
        broadcast[0] = 0x8F;
        assert_segment(&decode(linktype::C_HDLC, &broadcast, frame.len()).unwrap());
        let v6 = Segment::new("[::1]:1", "[::2]:80").payload(b"6").ipv6(&[]);
        let hdlc6 = testutil::cisco_hdlc(&v6);
        let p = decode(linktype::C_HDLC, &hdlc6, 99).unwrap();
        assert_eq!(p.payload, b"6");
        let mut address = frame.clone();
        address[0] = 0xFF;
        assert_eq!(
            decode(linktype::C_HDLC, &address, 99),
            Err(DecodeError::Format("Cisco HDLC address"))
        );
        let mut control = frame.clone();
        control[1] = 0x03;
        assert_eq!(
            decode(linktype::C_HDLC, &control, 99),
            Err(DecodeError::Format("Cisco HDLC control"))
        );
        let mut slarp = frame.clone();
        slarp[2..4].copy_from_slice(&0x8035u16.to_be_bytes());
        assert_eq!(
            decode(linktype::C_HDLC, &slarp, 99),
            Err(DecodeError::NotIp)
        );
        for len in 0..(4 + 20 + 20) {
            let err = decode(linktype::C_HDLC, &frame[..len], frame.len()).unwrap_err();
            assert_eq!(err, DecodeError::Truncated, "len {len}");
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut state = 0x1234_5678_u32;
        let mut frame = [0u8; 128];
        for round in 0..20_000 {
            for b in frame.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *b = state as u8;
            }
            frame[12] = 0x08;
            frame[13] = if round % 2 == 0 { 0x00 } else { 0xDD };
            frame[14] = if round % 2 == 0 { 0x45 } else { 0x60 };
            let len = round % frame.len();
            for lt in [0, 1, 12, 51, 101, 104, 108, 113, 228, 229, 276] {
                let _ = decode(lt, &frame[..len], len + round % 3);
            }
        }
    }
}
