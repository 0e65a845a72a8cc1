//! Which worker a frame goes to when one capture file is read by several: a symmetric hash of
//! its TCP connection (both directions hash alike), as PACKET_FANOUT's per-flow mode does for
//! live capture, so that each connection lives in exactly one worker's tracker.
//!
//! The reader hashes every frame, so the common case (Ethernet, IPv4, TCP, no VLAN tag) is
//! read straight from the frame's bytes; everything else goes through the capture core's own
//! [`decode`], which then also decides what a tunnel's flow is (the inner connection where
//! the core decapsulates, else the frame is not TCP). A frame that does not decode to a TCP
//! segment is only counted by whichever worker gets it: it goes to shard 0.

use shadowtap_capture::{decode, linktype, Packet};
use std::net::{IpAddr, SocketAddr};

const K0: u64 = 0x9e37_79b9_7f4a_7c15;
const K1: u64 = 0xff51_afd7_ed55_8ccd;
const K2: u64 = 0xc4ce_b9fe_1a85_ec53;

/// One word into the hash state.
#[inline]
fn add(state: u64, word: u64) -> u64 {
    (state.rotate_left(23) ^ word).wrapping_mul(K0)
}

/// Spreads the state over all 64 bits (the shard is taken from the high bits).
#[inline]
fn finish(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(K1);
    h ^= h >> 33;
    h = h.wrapping_mul(K2);
    h ^ (h >> 33)
}

/// The hash of an IPv4 connection; the same whichever end is `a`.
#[inline]
fn hash_v4(a: u32, a_port: u16, b: u32, b_port: u16) -> u64 {
    let a = u64::from(a) << 16 | u64::from(a_port);
    let b = u64::from(b) << 16 | u64::from(b_port);
    let (low, high) = if a <= b { (a, b) } else { (b, a) };
    finish(add(add(4, low), high))
}

/// The hash of a connection between two endpoints; the same whichever end is `a`.
pub fn endpoints_hash(a: SocketAddr, b: SocketAddr) -> u64 {
    match (a.ip(), b.ip()) {
        (IpAddr::V4(x), IpAddr::V4(y)) => hash_v4(x.into(), a.port(), y.into(), b.port()),
        (x, y) => {
            let word = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
                IpAddr::V6(v6) => u128::from(v6),
            };
            let a = (word(x), a.port());
            let b = (word(y), b.port());
            let (low, high) = if a <= b { (a, b) } else { (b, a) };
            let mut h = 6;
            for (address, port) in [low, high] {
                h = add(h, address as u64);
                h = add(h, (address >> 64) as u64);
                h = add(h, u64::from(port));
            }
            finish(h)
        }
    }
}

/// The hash of a decoded segment's connection.
pub fn packet_hash(packet: &Packet<'_>) -> u64 {
    endpoints_hash(
        SocketAddr::new(packet.src, packet.src_port),
        SocketAddr::new(packet.dst, packet.dst_port),
    )
}

/// The hash of a frame's connection, `None` when it is not a TCP segment [`decode`] reads.
pub fn frame_hash(linktype: u32, frame: &[u8], wire_len: usize) -> Option<u64> {
    if linktype == linktype::ETHERNET {
        if let Some(hash) = ethernet_ipv4_tcp(frame) {
            return Some(hash);
        }
    }
    decode(linktype, frame, wire_len)
        .ok()
        .map(|packet| packet_hash(&packet))
}

/// Ethernet, IPv4 without fragmentation, TCP: the addresses and ports where [`decode`] finds
/// them (a frame it would refuse anyway may be hashed all the same; it is only counted).
#[inline]
fn ethernet_ipv4_tcp(frame: &[u8]) -> Option<u64> {
    if frame.get(12..14)? != [0x08, 0x00] {
        return None;
    }
    let ip = frame.get(14..)?;
    let first = *ip.first()?;
    let header_len = usize::from(first & 0x0f) * 4;
    if first >> 4 != 4 || header_len < 20 || ip.len() < header_len + 4 {
        return None;
    }
    let fragment = u16::from_be_bytes([ip[6], ip[7]]);
    if ip[9] != 6 || fragment & 0x3fff != 0 {
        return None;
    }
    let word = |at: usize| u32::from_be_bytes([ip[at], ip[at + 1], ip[at + 2], ip[at + 3]]);
    let port = |at: usize| u16::from_be_bytes([ip[at], ip[at + 1]]);
    Some(hash_v4(
        word(12),
        port(header_len),
        word(16),
        port(header_len + 2),
    ))
}

/// The shard of `hash` among `shards` (multiply-high: no division, uses the high bits).
#[inline]
pub fn shard_of(hash: u64, shards: usize) -> usize {
    ((u128::from(hash) * shards as u128) >> 64) as usize
}

/// The shard a frame goes to among `shards`; frames that are not TCP go to shard 0.
pub fn frame_shard(linktype: u32, frame: &[u8], wire_len: usize, shards: usize) -> usize {
    frame_hash(linktype, frame, wire_len).map_or(0, |hash| shard_of(hash, shards))
}

#[cfg(test)]
mod tests {
    use super::*;
    use shadowtap_capture::testutil::Conversation;

    fn shards_of(frames: &[Vec<u8>], linktype: u32, shards: usize) -> Vec<usize> {
        frames
            .iter()
            .map(|f| frame_shard(linktype, f, f.len(), shards))
            .collect()
    }

    #[test]
    fn both_directions_of_a_connection_share_a_shard() {
        for i in 0..200u16 {
            let client = format!("10.1.{}.{}:{}", i % 7, i % 250, 30000 + i);
            let mut talk = Conversation::new(&client, "10.0.0.2:80");
            let mut segments = talk.handshake();
            segments.push(talk.client(b"GET / HTTP/1.1\r\n\r\n"));
            segments.push(talk.server(b"HTTP/1.1 204 No Content\r\n\r\n"));
            let frames: Vec<Vec<u8>> = segments.iter().map(|s| s.ethernet()).collect();
            for shards in [1, 2, 3, 4, 8] {
                let got = shards_of(&frames, linktype::ETHERNET, shards);
                assert!(got.iter().all(|&s| s == got[0] && s < shards), "{got:?}");
            }
            // the fast path and decode agree, in both directions
            for frame in &frames {
                let packet = decode(linktype::ETHERNET, frame, frame.len()).unwrap();
                assert_eq!(ethernet_ipv4_tcp(frame), Some(packet_hash(&packet)));
            }
        }
    }

    #[test]
    fn the_hash_is_symmetric_and_spreads_connections() {
        let a: SocketAddr = "192.168.0.1:40000".parse().unwrap();
        let b: SocketAddr = "192.168.0.2:80".parse().unwrap();
        assert_eq!(endpoints_hash(a, b), endpoints_hash(b, a));
        let c: SocketAddr = "192.168.0.1:40001".parse().unwrap();
        assert_ne!(endpoints_hash(a, b), endpoints_hash(c, b));
        // a 4-tuple is not confused with its ports swapped between the ends
        let d: SocketAddr = "192.168.0.1:80".parse().unwrap();
        let e: SocketAddr = "192.168.0.2:40000".parse().unwrap();
        assert_ne!(endpoints_hash(a, b), endpoints_hash(d, e));
        let mut counts = [0usize; 4];
        for port in 0..4000u16 {
            let client = SocketAddr::new(a.ip(), 20000 + port);
            counts[shard_of(endpoints_hash(client, b), 4)] += 1;
        }
        assert!(
            counts.iter().all(|&n| (800..1200).contains(&n)),
            "{counts:?}"
        );
    }

    #[test]
    fn ipv6_connections_are_symmetric_too() {
        let mut talk = Conversation::new("[2001:db8::1]:50000", "[2001:db8::2]:8080");
        let mut segments = talk.handshake();
        segments.push(talk.client(b"GET / HTTP/1.1\r\n\r\n"));
        segments.push(talk.server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"));
        let frames: Vec<Vec<u8>> = segments.iter().map(|s| s.ethernet()).collect();
        let hashes: Vec<_> = frames
            .iter()
            .map(|f| frame_hash(linktype::ETHERNET, f, f.len()))
            .collect();
        assert!(hashes[0].is_some());
        assert!(hashes.iter().all(|h| *h == hashes[0]), "{hashes:?}");
        let a: SocketAddr = "[2001:db8::1]:50000".parse().unwrap();
        let b: SocketAddr = "[2001:db8::2]:8080".parse().unwrap();
        assert_eq!(hashes[0], Some(endpoints_hash(b, a)));
        // raw IPv6 frames (no link header) hash the same connection alike
        let raw: Vec<Vec<u8>> = frames.iter().map(|f| f[14..].to_vec()).collect();
        let got = shards_of(&raw, linktype::RAW, 4);
        assert!(got.iter().all(|&s| s == shards_of(&frames, 1, 4)[0]));
    }

    #[test]
    fn vlan_tagged_frames_go_where_untagged_ones_do() {
        let mut talk = Conversation::new("10.0.0.9:41000", "10.0.0.2:80");
        let frame = talk.client(b"GET / HTTP/1.1\r\n\r\n").ethernet();
        let mut tagged = frame[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x2a]);
        tagged.extend_from_slice(&frame[12..]);
        assert_eq!(
            frame_hash(1, &tagged, tagged.len()),
            frame_hash(1, &frame, frame.len())
        );
    }

    /// A VXLAN frame (UDP to 4789 carrying an Ethernet frame) goes to shard 0, or, where the
    /// capture core decodes the inner connection, where that connection's frames go.
    #[test]
    fn tunnels_fall_back_to_shard_zero_or_follow_the_inner_connection() {
        let mut talk = Conversation::new("10.9.0.1:45000", "10.9.0.2:80");
        let inner = talk.client(b"GET / HTTP/1.1\r\n\r\n").ethernet();
        let mut udp = Vec::new();
        udp.extend_from_slice(&50000u16.to_be_bytes());
        udp.extend_from_slice(&4789u16.to_be_bytes());
        udp.extend_from_slice(&((8 + 8 + inner.len()) as u16).to_be_bytes());
        udp.extend_from_slice(&[0, 0]);
        udp.extend_from_slice(&[0x08, 0, 0, 0, 0, 0, 42, 0]);
        udp.extend_from_slice(&inner);
        let mut ip = vec![0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0];
        ip[2..4].copy_from_slice(&((20 + udp.len()) as u16).to_be_bytes());
        ip.extend_from_slice(&[172, 16, 0, 1, 172, 16, 0, 2]);
        ip.extend_from_slice(&udp);
        let mut outer = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2, 0x08, 0x00];
        outer.extend_from_slice(&ip);
        for shards in [2, 4] {
            let got = frame_shard(1, &outer, outer.len(), shards);
            let inner_shard = frame_shard(1, &inner, inner.len(), shards);
            assert!(got == 0 || got == inner_shard, "{got} vs {inner_shard}");
        }
        // IP-in-IP is no TCP segment either
        let mut ipip = ip.clone();
        ipip[9] = 4;
        assert_eq!(frame_shard(linktype::RAW, &ipip, ipip.len(), 4), 0);
    }

    #[test]
    fn junk_and_truncated_frames_go_to_shard_zero() {
        for len in 0..60 {
            let junk: Vec<u8> = (0..len).map(|i| (i * 37 + 11) as u8).collect();
            assert!(frame_shard(1, &junk, junk.len(), 4) < 4);
        }
        assert_eq!(frame_shard(1, &[], 0, 4), 0);
        assert_eq!(frame_shard(9999, &[1, 2, 3], 3, 4), 0);
        let mut talk = Conversation::new("10.0.0.9:41000", "10.0.0.2:80");
        let frame = talk.client(b"GET / HTTP/1.1\r\n\r\n").ethernet();
        // cut inside the TCP ports: not hashed
        assert_eq!(ethernet_ipv4_tcp(&frame[..14 + 20 + 3]), None);
    }
}
