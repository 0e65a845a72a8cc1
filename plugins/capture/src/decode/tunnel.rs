//! UDP tunnels unwrapped in place: VXLAN (RFC 7348, UDP 4789: AWS VPC Traffic Mirroring,
//! Azure vTAP) and GENEVE (RFC 8926, UDP 6081: AWS Gateway Load Balancer).
//!
//! A tunnelled frame decodes to the inner TCP segment, borrowed from the outer frame like any
//! other (a VNI is not kept: the vxlan engine filters by it before decoding). Tunnels nest at most
//! [`MAX_TUNNEL_DEPTH`] deep. Only the destination port selects a tunnel (the source port is a
//! flow hash); a datagram to a tunnel port that is not a valid tunnel header is a format error.
//! We observe, we are not the tunnel endpoint: GENEVE's critical-option bit is not enforced,
//! and a GENEVE control message (O bit) carries no tenant traffic (`NotIp`).

use super::{
    be16, be32, by_ethertype, network_layer, tail, DecodeError, Network, Packet, IPPROTO_UDP,
    MAX_TUNNEL_DEPTH,
};

/// The IANA UDP port of VXLAN.
pub const VXLAN_PORT: u16 = 4789;
/// The IANA UDP port of GENEVE.
pub const GENEVE_PORT: u16 = 6081;

const GENEVE_ETHERNET: u16 = 0x6558;
const GENEVE_IPV4: u16 = 0x0800;
const GENEVE_IPV6: u16 = 0x86DD;

/// What follows the IP header when it is not TCP: a UDP tunnel, or nothing we decode.
#[cold]
#[inline(never)]
pub(super) fn beyond_ip(
    protocol: u8,
    body: &[u8],
    cut: bool,
    depth: usize,
) -> Result<Packet<'_>, DecodeError> {
    if protocol != IPPROTO_UDP {
        return Err(DecodeError::NotTcp);
    }
    let dst_port = be16(body, 2).ok_or(DecodeError::Truncated)?;
    if dst_port != VXLAN_PORT && dst_port != GENEVE_PORT {
        return Err(DecodeError::NotTcp);
    }
    let payload = udp_payload(body, cut)?;
    if depth >= MAX_TUNNEL_DEPTH {
        return Err(DecodeError::Format("tunnels nested too deep"));
    }
    if dst_port == VXLAN_PORT {
        vxlan(payload, cut, depth + 1)
    } else {
        geneve(payload, cut, depth + 1)
    }
}

/// The UDP payload, cut to the UDP length (0: unset, as for IPv6 jumbograms and TSO).
fn udp_payload(datagram: &[u8], cut: bool) -> Result<&[u8], DecodeError> {
    let length = usize::from(be16(datagram, 4).ok_or(DecodeError::Truncated)?);
    let rest = tail(datagram, 8)?;
    match length {
        0 => Ok(rest),
        n if n < 8 => Err(DecodeError::Format("UDP length")),
        n if n <= datagram.len() => Ok(&datagram[8..n]),
        _ if cut => Ok(rest),
        _ => Err(DecodeError::Format("UDP length beyond the IP packet")),
    }
}

/// Reads a VXLAN header: the VNI and the inner Ethernet frame. The I flag must be set; the
/// reserved bits are ignored on receipt (RFC 7348 §5). The `vxlan` engine calls this on each
/// datagram its socket receives.
pub fn vxlan_header(datagram: &[u8]) -> Result<(u32, &[u8]), DecodeError> {
    let header = datagram.get(..8).ok_or(DecodeError::Truncated)?;
    if header[0] & 0x08 == 0 {
        return Err(DecodeError::Format("VXLAN I flag not set"));
    }
    let vni = be32(header, 4).ok_or(DecodeError::Truncated)? >> 8;
    Ok((vni, &datagram[8..]))
}

fn vxlan(payload: &[u8], cut: bool, depth: usize) -> Result<Packet<'_>, DecodeError> {
    let (_vni, inner) = vxlan_header(payload)?;
    inner_ethernet(inner, cut, depth)
}

/// An inner Ethernet frame (VLAN tags and PPPoE allowed, as outside).
fn inner_ethernet(frame: &[u8], cut: bool, depth: usize) -> Result<Packet<'_>, DecodeError> {
    let ethertype = be16(frame, 12).ok_or(DecodeError::Truncated)?;
    let (network, l3) = by_ethertype(ethertype, tail(frame, 14)?)?;
    network_layer(network, l3, cut, depth)
}

/// What a GENEVE header says: its VNI, the inner protocol and the inner bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Geneve<'a> {
    /// Virtual network identifier (0 from AWS Gateway Load Balancer).
    pub vni: u32,
    /// Protocol type of the payload (an ethertype; 0x6558 is Ethernet).
    pub protocol: u16,
    /// The payload after the options.
    pub inner: &'a [u8],
}

/// Reads a GENEVE header (RFC 8926 §3.4): version 0, option length in 4-byte words, the
/// options as TLVs that fill it exactly. `cut` says the capture is shorter than the datagram
/// (a header running past the end is then `Truncated`, not a format error).
pub fn geneve_header(datagram: &[u8], cut: bool) -> Result<Geneve<'_>, DecodeError> {
    let header = datagram.get(..8).ok_or(DecodeError::Truncated)?;
    if header[0] >> 6 != 0 {
        return Err(DecodeError::Format("GENEVE version"));
    }
    let options_len = usize::from(header[0] & 0x3F) * 4;
    let Some(options) = datagram.get(8..8 + options_len) else {
        return Err(if cut {
            DecodeError::Truncated
        } else {
            DecodeError::Format("GENEVE option length beyond the packet")
        });
    };
    // Options are whole 4-byte words, so an option's 4-byte header always fits; its length
    // (in words, low 5 bits of byte 3) must not run past the options.
    let overrun = DecodeError::Format("GENEVE option beyond the option length");
    let mut at = 0;
    while at < options.len() {
        let words = usize::from(*options.get(at + 3).ok_or(overrun)? & 0x1F);
        at += 4 + words * 4;
    }
    if at != options.len() {
        return Err(overrun);
    }
    if header[1] & 0x80 != 0 {
        return Err(DecodeError::NotIp); // a control message between tunnel endpoints
    }
    Ok(Geneve {
        vni: be32(header, 4).ok_or(DecodeError::Truncated)? >> 8,
        protocol: be16(header, 2).ok_or(DecodeError::Truncated)?,
        inner: &datagram[8 + options_len..],
    })
}

fn geneve(payload: &[u8], cut: bool, depth: usize) -> Result<Packet<'_>, DecodeError> {
    let g = geneve_header(payload, cut)?;
    match g.protocol {
        GENEVE_ETHERNET => inner_ethernet(g.inner, cut, depth),
        GENEVE_IPV4 => network_layer(Network::V4, g.inner, cut, depth),
        GENEVE_IPV6 => network_layer(Network::V6, g.inner, cut, depth),
        _ => Err(DecodeError::NotIp),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, linktype};
    use crate::testutil::{self, Segment};

    fn segment() -> Segment {
        Segment::new("10.0.0.1:40000", "10.0.0.2:80")
            .seq(7)
            .payload(b"GET /inner HTTP/1.1\r\n\r\n")
    }

    fn inner() -> Vec<u8> {
        segment().ethernet()
    }

    fn assert_inner(p: &Packet<'_>) {
        assert_eq!(p.src, "10.0.0.1".parse::<std::net::IpAddr>().unwrap());
        assert_eq!((p.src_port, p.dst_port, p.seq), (40000, 80, 7));
        assert_eq!(p.payload, b"GET /inner HTTP/1.1\r\n\r\n");
        assert!(!p.captured_truncated);
    }

    fn decoded(frame: &[u8]) -> Result<Packet<'_>, DecodeError> {
        decode(linktype::ETHERNET, frame, frame.len())
    }

    /// Every prefix of `frame` shorter than `headers` bytes is `Truncated`; longer ones
    /// decode with the payload flagged as cut.
    fn assert_truncated_at_every_byte(frame: &[u8], headers: usize) {
        for len in 0..frame.len() {
            match decode(linktype::ETHERNET, &frame[..len], frame.len()) {
                Err(e) => {
                    assert_eq!(e, DecodeError::Truncated, "len {len}");
                    assert!(len < headers, "len {len}: {e}");
                }
                Ok(p) => {
                    assert!(len >= headers, "len {len}");
                    assert!(p.captured_truncated, "len {len}");
                }
            }
        }
    }

    #[test]
    fn vxlan_unwraps_to_the_inner_segment() {
        let frame = testutil::vxlan(0x00AB_CDEF, &inner());
        let p = decoded(&frame).unwrap();
        assert_inner(&p);
        // zero-copy: the payload points into the outer frame
        let range = frame.as_ptr_range();
        assert!(range.contains(&p.payload.as_ptr()));
        // reserved bits are ignored on receipt
        let mut flagged = frame.clone();
        flagged[14 + 20 + 8] = 0xFF;
        flagged[14 + 20 + 8 + 7] = 0xFF;
        assert_inner(&decoded(&flagged).unwrap());
    }

    #[test]
    fn vxlan_over_ipv6_and_inner_ipv6_and_vlan() {
        let v6 = Segment::new("[2001:db8::1]:5000", "[2001:db8::2]:8080").payload(b"hi");
        let inner6 = testutil::ethernet(&v6.ipv6(&[]), &[0x8100]);
        let payload = testutil::vxlan_payload(9, &inner6);
        let datagram = testutil::udp(1234, VXLAN_PORT, &payload);
        let outer = testutil::ipv6_raw("fd00::1", "fd00::2", 17, &[(0, vec![0; 6])], &datagram);
        let frame = testutil::ethernet(&outer, &[]);
        let p = decoded(&frame).unwrap();
        assert_eq!((p.payload, p.dst_port), (&b"hi"[..], 8080));
    }

    #[test]
    fn vxlan_needs_the_i_flag() {
        let mut frame = testutil::vxlan(5, &inner());
        frame[14 + 20 + 8] = 0x00;
        assert_eq!(
            decoded(&frame),
            Err(DecodeError::Format("VXLAN I flag not set"))
        );
        assert_eq!(
            vxlan_header(&[0x08, 0, 0, 0, 0, 0, 1]),
            Err(DecodeError::Truncated)
        );
        assert_eq!(
            vxlan_header(&[0x08, 0, 0, 0, 0, 0, 1, 0, 9]),
            Ok((1, &[9u8][..]))
        );
    }

    #[test]
    fn vxlan_truncated_at_every_byte() {
        let frame = testutil::vxlan(5, &inner());
        let headers = 14 + 20 + 8 + 8 + 14 + 20 + 20;
        assert_truncated_at_every_byte(&frame, headers);
    }

    #[test]
    fn nested_tunnels_unwrap_up_to_the_cap() {
        let mut frame = inner();
        for level in 1..=MAX_TUNNEL_DEPTH as u32 {
            frame = if level % 2 == 0 {
                testutil::geneve(level, 0x6558, &[], &frame)
            } else {
                testutil::vxlan(level, &frame)
            };
            assert_inner(&decoded(&frame).unwrap());
        }
        let too_deep = testutil::vxlan(99, &frame);
        assert_eq!(
            decoded(&too_deep),
            Err(DecodeError::Format("tunnels nested too deep"))
        );
    }

    #[test]
    fn other_udp_and_bad_udp_lengths() {
        let frame = testutil::underlay(53, &[0; 12]);
        assert_eq!(decoded(&frame), Err(DecodeError::NotTcp));
        let mut short = testutil::vxlan(1, &inner());
        short[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&7u16.to_be_bytes());
        assert_eq!(decoded(&short), Err(DecodeError::Format("UDP length")));
        let mut long = testutil::vxlan(1, &inner());
        long[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&9000u16.to_be_bytes());
        assert_eq!(
            decoded(&long),
            Err(DecodeError::Format("UDP length beyond the IP packet"))
        );
        let mut unset = testutil::vxlan(1, &inner());
        unset[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&0u16.to_be_bytes());
        assert_inner(&decoded(&unset).unwrap());
        let mut fragment = testutil::vxlan(1, &inner());
        fragment[14 + 6] = 0x20;
        assert_eq!(decoded(&fragment), Err(DecodeError::Fragment));
    }

    #[test]
    fn non_ip_inside_a_tunnel_is_not_ip() {
        let mut arp = testutil::ethernet(&[0; 28], &[]);
        arp[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
        assert_eq!(decoded(&testutil::vxlan(1, &arp)), Err(DecodeError::NotIp));
        let frame = testutil::geneve(1, 0x0806, &[], &[0; 28]);
        assert_eq!(decoded(&frame), Err(DecodeError::NotIp));
    }

    #[test]
    fn geneve_ethernet_ipv4_and_ipv6_with_gwlb_options() {
        let options = testutil::gwlb_options();
        assert_eq!(options.len(), 32);
        let frame = testutil::geneve(0x123456, 0x6558, &[], &inner());
        assert_inner(&decoded(&frame).unwrap());
        let frame = testutil::geneve(0, 0x0800, &options, &segment().ipv4());
        assert_inner(&decoded(&frame).unwrap());
        // AWS GWLB: outer IPv4 + UDP + GENEVE with its options = 68 bytes of overhead
        assert_eq!(frame.len() - 14 - segment().ipv4().len(), 68);
        let v6 = Segment::new("[2001:db8::1]:5000", "[2001:db8::2]:80").payload(b"six");
        let frame = testutil::geneve(7, 0x86DD, &options, &v6.ipv6(&[]));
        let p = decoded(&frame).unwrap();
        assert_eq!(p.payload, &b"six"[..]);
    }

    #[test]
    fn geneve_header_errors() {
        let good = testutil::geneve_payload(1, 0x0800, &testutil::gwlb_options(), b"ip");
        let g = geneve_header(&good, false).unwrap();
        assert_eq!((g.vni, g.protocol, g.inner), (1, 0x0800, &b"ip"[..]));
        let mut version = good.clone();
        version[0] |= 0x40;
        assert_eq!(
            geneve_header(&version, false),
            Err(DecodeError::Format("GENEVE version"))
        );
        let mut beyond = good.clone();
        beyond[0] = 0x3F;
        assert_eq!(
            geneve_header(&beyond, false),
            Err(DecodeError::Format(
                "GENEVE option length beyond the packet"
            ))
        );
        assert_eq!(geneve_header(&beyond, true), Err(DecodeError::Truncated));
        let mut overrun = good.clone();
        overrun[8 + 3] = 0x1F; // the first option claims 124 bytes
        assert_eq!(
            geneve_header(&overrun, false),
            Err(DecodeError::Format(
                "GENEVE option beyond the option length"
            ))
        );
        let mut second = testutil::geneve_payload(1, 0x0800, &[0, 0, 0, 0], b"ip\0\x01\0\0");
        second[0] = 2; // 8 bytes of options: an empty one, then one claiming 4 more bytes
        assert_eq!(
            geneve_header(&second, false),
            Err(DecodeError::Format(
                "GENEVE option beyond the option length"
            ))
        );
        second[8 + 7] = 0;
        assert_eq!(geneve_header(&second, false).unwrap().inner, [0, 0]);
        let mut control = good.clone();
        control[1] = 0x80;
        assert_eq!(geneve_header(&control, false), Err(DecodeError::NotIp));
        for len in 0..8 {
            assert_eq!(
                geneve_header(&good[..len], true),
                Err(DecodeError::Truncated)
            );
        }
    }

    #[test]
    fn geneve_truncated_at_every_byte() {
        let frame = testutil::geneve(3, 0x0800, &testutil::gwlb_options(), &segment().ipv4());
        let headers = 14 + 20 + 8 + 8 + 32 + 20 + 20;
        assert_truncated_at_every_byte(&frame, headers);
        let frame = testutil::geneve(3, 0x6558, &[], &inner());
        assert_truncated_at_every_byte(&frame, 14 + 20 + 8 + 8 + 14 + 20 + 20);
    }

    #[test]
    fn mutated_tunnel_frames_never_panic() {
        let ip = segment().ipv4();
        let seeds = [
            testutil::vxlan(1, &inner()),
            testutil::vxlan(2, &testutil::vxlan(3, &inner())),
            testutil::geneve(0, 0x0800, &testutil::gwlb_options(), &ip),
            testutil::geneve(4, 0x6558, &[], &testutil::pppoe(&ip, &[0x8100])),
        ];
        let mut state = 0x9E37_79B9_u32;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state
        };
        for round in 0..20_000 {
            let mut frame = seeds[round % seeds.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = next() as usize % frame.len();
                frame[at] = next() as u8;
            }
            let len = frame.len() - next() as usize % 8;
            if let Err(e) = decode(linktype::ETHERNET, &frame[..len], frame.len()) {
                assert!(!e.reason().is_empty());
            }
        }
    }

    #[test]
    fn a_snaplen_cut_inner_payload_is_flagged() {
        let frame = testutil::vxlan(5, &inner());
        let p = decode(linktype::ETHERNET, &frame[..frame.len() - 3], frame.len()).unwrap();
        assert!(p.captured_truncated);
        assert_eq!(p.payload, b"GET /inner HTTP/1.1\r");
    }
}
