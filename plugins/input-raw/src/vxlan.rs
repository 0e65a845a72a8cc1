//! The `vxlan` engine (`--input-raw-engine vxlan`): mirrored traffic delivered as VXLAN over
//! UDP, as AWS VPC Traffic Mirroring and Azure virtual network TAP send it. A UDP socket on
//! `--input-raw-vxlan-port` (default 4789) receives whole datagrams (up to 65535 bytes, never
//! cut), the VXLAN header is checked and filtered by `--input-raw-vxlan-vni`, and the inner
//! Ethernet frame goes to a capture worker like a frame from the af_packet ring. Unlike
//! GoReplay's engine it never truncates a datagram (GoReplay reads 1526 bytes), observes
//! shutdown within 100 ms, applies the `--input-raw` ports inside the tunnel, counts kernel
//! drops (SO_RXQ_OVFL) and takes the kernel's receive time (SO_TIMESTAMPNS).
//!
//! The kernel reports its cumulative drop count with each datagram it queues, so drops after
//! the last datagram of a run are not seen. Malformed VXLAN headers are counted under their
//! decoding reason, VNIs the filter rejects as `filtered` (and the `vni filtered` figure).

use shadowtap_api::{now_ns, Input, InputContext, PluginError, Reason};
use shadowtap_capture::decode::tunnel::vxlan_header;
use shadowtap_capture::{linktype, TrackerConfig};
use shadowtap_capture_input::guard::LoadGuard;
use shadowtap_capture_input::worker::decode_reason;
use shadowtap_capture_input::Worker;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

/// The default (IANA) VXLAN port; `--input-raw-vxlan-port 0` means this too.
pub const DEFAULT_PORT: u16 = 4789;
/// The largest VNI (24 bits).
pub const MAX_VNI: u32 = 0xFF_FFFF;
/// How long one receive may block before the loop checks shutdown and expiry.
const POLL: Duration = Duration::from_millis(100);
/// Datagrams read without blocking after the first, before the worker flushes.
const BATCH: usize = 256;
/// The receive buffer: the largest UDP payload fits whole.
const DATAGRAM_MAX: usize = 65536;

/// `--input-raw-vxlan-vni` values: positive ones allow, negative ones deny.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct VniFilter {
    allow: Vec<u32>,
    deny: Vec<u32>,
}

impl VniFilter {
    /// The filter of these flag values (0 allows VNI 0).
    pub fn new(values: &[i64]) -> VniFilter {
        let mut filter = VniFilter::default();
        for &value in values {
            let vni = value.unsigned_abs() as u32;
            if value < 0 {
                filter.deny.push(vni);
            } else {
                filter.allow.push(vni);
            }
        }
        filter
    }

    /// True when `vni` passes: not denied, and allowed when an allow-list is given.
    pub fn admits(&self, vni: u32) -> bool {
        !self.deny.contains(&vni) && (self.allow.is_empty() || self.allow.contains(&vni))
    }
}

/// Parses one `--input-raw-vxlan-vni` value: an integer within ±16777215.
pub fn vni_value(text: &str) -> Result<i64, String> {
    let value: i64 = text.trim().parse().map_err(|_| {
        format!("{text:?} is not an integer VNI (positive allows, negative denies)")
    })?;
    if value.unsigned_abs() > u64::from(MAX_VNI) {
        return Err(format!("{text:?} is beyond the 24-bit VNI range"));
    }
    Ok(value)
}

/// Where the socket binds: `HOST` of `--input-raw HOST:PORTS` (empty, `any`: every IPv4
/// address; `::` every address; an address; or an interface name, bound with
/// SO_BINDTODEVICE).
pub fn bind_target(host: &str, port: u16) -> (SocketAddr, Option<String>) {
    let port = if port == 0 { DEFAULT_PORT } else { port };
    match host {
        "" | "any" | "0.0.0.0" => (SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port), None),
        "::" => (SocketAddr::new(Ipv6Addr::UNSPECIFIED.into(), port), None),
        _ => match host.parse::<IpAddr>() {
            Ok(ip) => (SocketAddr::new(ip, port), None),
            Err(_) => (
                SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), port),
                Some(host.to_string()),
            ),
        },
    }
}

/// The receiving socket, opened (in the capture's namespace) before the run starts.
pub struct VxlanSocket {
    socket: UdpSocket,
    buffer: Vec<u8>,
    /// SO_RXQ_OVFL's cumulative count at the last datagram.
    drops_seen: u32,
}

fn set_int(fd: i32, level: i32, name: i32, value: i32) -> io::Result<()> {
    // SAFETY: `value` is a live i32 of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            &value as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One received datagram.
struct Datagram {
    /// Bytes captured (all of them unless it exceeded the buffer).
    len: usize,
    /// Its real length.
    wire_len: usize,
    /// Kernel receive time, ns since the epoch.
    ts_ns: i64,
    /// Datagrams the kernel dropped on this socket since the previous one.
    new_drops: u64,
}

impl VxlanSocket {
    /// Binds `address` (on `device` when given) with a receive buffer of `buffer_size`.
    pub fn open(
        address: SocketAddr,
        device: Option<&str>,
        buffer_size: u64,
    ) -> Result<VxlanSocket, String> {
        let socket = UdpSocket::bind(address)
            .map_err(|e| format!("cannot bind UDP {address} for VXLAN: {e}"))?;
        let fd = socket.as_raw_fd();
        if let Some(device) = device {
            let name = std::ffi::CString::new(device)
                .map_err(|_| format!("bad interface name {device:?}"))?;
            let bytes = name.as_bytes_with_nul();
            // SAFETY: a valid buffer of the length passed.
            let rc = unsafe {
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    bytes.as_ptr() as *const libc::c_void,
                    bytes.len() as libc::socklen_t,
                )
            };
            if rc != 0 {
                return Err(format!(
                    "cannot bind the VXLAN socket to interface {device:?}: {}",
                    io::Error::last_os_error()
                ));
            }
        }
        let size = buffer_size.min(i32::MAX as u64 / 2) as i32;
        // SO_RCVBUFFORCE passes net.core.rmem_max (needs CAP_NET_ADMIN); else the capped one.
        if set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size).is_err() {
            let _ = set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        set_int(fd, libc::SOL_SOCKET, libc::SO_RXQ_OVFL, 1)
            .map_err(|e| format!("SO_RXQ_OVFL on the VXLAN socket: {e}"))?;
        set_int(fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, 1)
            .map_err(|e| format!("SO_TIMESTAMPNS on the VXLAN socket: {e}"))?;
        socket
            .set_read_timeout(Some(POLL))
            .map_err(|e| format!("receive timeout on the VXLAN socket: {e}"))?;
        Ok(VxlanSocket {
            socket,
            buffer: vec![0; DATAGRAM_MAX],
            drops_seen: 0,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Receives one datagram (waiting at most [`POLL`] unless `wait` is false); `None` when
    /// none arrived.
    fn receive(&mut self, wait: bool) -> io::Result<Option<Datagram>> {
        let mut iov = libc::iovec {
            iov_base: self.buffer.as_mut_ptr() as *mut libc::c_void,
            iov_len: self.buffer.len(),
        };
        let mut control = [0u64; 16];
        // SAFETY: msghdr is plain data; zeroed is a valid value.
        let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
        header.msg_iov = &mut iov;
        header.msg_iovlen = 1;
        header.msg_control = control.as_mut_ptr() as *mut libc::c_void;
        header.msg_controllen = std::mem::size_of_val(&control) as _;
        let flags = libc::MSG_TRUNC | if wait { 0 } else { libc::MSG_DONTWAIT };
        // SAFETY: header points to a live iovec over our buffer and a live control buffer.
        let n = unsafe { libc::recvmsg(self.socket.as_raw_fd(), &mut header, flags) };
        if n < 0 {
            let error = io::Error::last_os_error();
            return match error.kind() {
                io::ErrorKind::WouldBlock
                | io::ErrorKind::TimedOut
                | io::ErrorKind::Interrupted => Ok(None),
                _ => Err(error),
            };
        }
        let wire_len = n as usize;
        let mut ts_ns = None;
        let mut drops = None;
        // SAFETY: the kernel filled `control` up to msg_controllen; the CMSG macros walk it
        // within those bounds.
        unsafe {
            let mut cmsg = libc::CMSG_FIRSTHDR(&header);
            while !cmsg.is_null() {
                let data = libc::CMSG_DATA(cmsg);
                match ((*cmsg).cmsg_level, (*cmsg).cmsg_type) {
                    (libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS) => {
                        let ts = std::ptr::read_unaligned(data as *const libc::timespec);
                        ts_ns = Some(ts.tv_sec * 1_000_000_000 + ts.tv_nsec);
                    }
                    (libc::SOL_SOCKET, libc::SO_RXQ_OVFL) => {
                        drops = Some(std::ptr::read_unaligned(data as *const u32));
                    }
                    _ => {}
                }
                cmsg = libc::CMSG_NXTHDR(&header, cmsg);
            }
        }
        let new_drops = drops.map_or(0, |total| {
            let delta = total.wrapping_sub(self.drops_seen);
            self.drops_seen = total;
            u64::from(delta)
        });
        Ok(Some(Datagram {
            len: wire_len.min(self.buffer.len()),
            wire_len,
            ts_ns: ts_ns.unwrap_or_else(now_ns),
            new_drops,
        }))
    }
}

/// One `--input-raw-engine vxlan` capture: a socket, a VNI filter, a worker.
pub struct VxlanInput {
    /// The bound socket.
    pub socket: VxlanSocket,
    /// `--input-raw-vxlan-vni`.
    pub filter: VniFilter,
    /// Tracker settings (the `--input-raw` ports apply inside the tunnel).
    pub tracker: TrackerConfig,
    /// `--input-raw-realip-header`.
    pub realip_header: Option<String>,
    /// The shared load guard, if configured.
    pub guard: Option<LoadGuard>,
}

impl Input for VxlanInput {
    fn run(mut self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let mut worker = Worker::live(
            self.tracker.clone(),
            cx.counters().clone(),
            self.realip_header.take(),
        );
        let vni_filtered = cx.counters().extra("vni filtered");
        let result = loop {
            if cx.is_stopping() || worker.is_stopped() {
                break Ok(());
            }
            if let Err(e) = self.read_some(&mut worker, &mut cx, &vni_filtered) {
                break Err(PluginError::Runtime(format!("vxlan socket: {e}")));
            }
            worker.tick(now_ns(), &mut cx);
            worker.flush(&mut cx);
        };
        worker.finish(&mut cx);
        result
    }
}

impl VxlanInput {
    /// Waits for a datagram, then takes whatever else is queued (up to [`BATCH`]).
    fn read_some(
        &mut self,
        worker: &mut Worker,
        cx: &mut InputContext,
        vni_filtered: &std::sync::atomic::AtomicU64,
    ) -> io::Result<()> {
        for i in 0..BATCH {
            let Some(datagram) = self.socket.receive(i == 0)? else {
                return Ok(());
            };
            if datagram.new_drops > 0 {
                cx.counters()
                    .add_refused(Reason::KernelDrop, datagram.new_drops);
            }
            if crate::live::paused(&self.guard, cx) {
                continue;
            }
            let bytes = &self.socket.buffer[..datagram.len];
            let (vni, inner) = match vxlan_header(bytes) {
                Ok(unwrapped) => unwrapped,
                Err(error) => {
                    cx.counters().add_refused(decode_reason(&error), 1);
                    continue;
                }
            };
            if !self.filter.admits(vni) {
                cx.counters().add_refused(Reason::Filtered, 1);
                vni_filtered.fetch_add(1, Relaxed);
                continue;
            }
            let wire_len = datagram.wire_len - (bytes.len() - inner.len());
            let _ = worker.frame(linktype::ETHERNET, inner, wire_len, datagram.ts_ns, cx);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vni_filters() {
        let all = VniFilter::new(&[]);
        assert!(all.admits(0) && all.admits(MAX_VNI));
        let allow = VniFilter::new(&[7, 9]);
        assert!(allow.admits(7) && allow.admits(9) && !allow.admits(8));
        let deny = VniFilter::new(&[-7]);
        assert!(!deny.admits(7) && deny.admits(8));
        let both = VniFilter::new(&[7, 8, -8]);
        assert!(both.admits(7) && !both.admits(8) && !both.admits(9));
        assert!(VniFilter::new(&[0]).admits(0));
    }

    #[test]
    fn vni_values() {
        assert_eq!(vni_value("42"), Ok(42));
        assert_eq!(vni_value("-16777215"), Ok(-16_777_215));
        assert!(vni_value("16777216").unwrap_err().contains("24-bit"));
        assert!(vni_value("abc").unwrap_err().contains("not an integer"));
        assert!(vni_value("").is_err());
    }

    #[test]
    fn bind_targets() {
        let any = SocketAddr::from(([0, 0, 0, 0], 4789));
        assert_eq!(bind_target("", 0), (any, None));
        assert_eq!(bind_target("any", 4789), (any, None));
        assert_eq!(
            bind_target("10.1.2.3", 9999),
            (SocketAddr::from(([10, 1, 2, 3], 9999)), None)
        );
        assert_eq!(bind_target("::", 1).0, "[::]:1".parse().unwrap());
        assert_eq!(bind_target("eth0", 0), (any, Some("eth0".to_string())));
    }

    #[test]
    fn whole_datagrams_arrive_with_times_and_no_drops() {
        let mut socket = VxlanSocket::open("127.0.0.1:0".parse().unwrap(), None, 1 << 20).unwrap();
        let to = socket.local_addr().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        let big = vec![0xAB; 65507];
        sender.send_to(&big, to).unwrap();
        sender.send_to(b"small", to).unwrap();
        let before = now_ns();
        let first = socket.receive(true).unwrap().unwrap();
        assert_eq!(
            (first.len, first.wire_len, first.new_drops),
            (65507, 65507, 0)
        );
        assert!(socket.buffer[..first.len].iter().all(|&b| b == 0xAB));
        assert!((first.ts_ns - before).abs() < 10_000_000_000);
        let second = socket.receive(false).unwrap().unwrap();
        assert_eq!(&socket.buffer[..second.len], b"small");
        assert!(socket.receive(false).unwrap().is_none());
        let started = std::time::Instant::now();
        assert!(socket.receive(true).unwrap().is_none());
        assert!(started.elapsed() < Duration::from_millis(500));
    }

    #[test]
    fn kernel_drops_are_reported() {
        let mut socket = VxlanSocket::open("127.0.0.1:0".parse().unwrap(), None, 1).unwrap();
        let to = socket.local_addr().unwrap();
        let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
        for _ in 0..200 {
            sender.send_to(&[1u8; 1400], to).unwrap();
        }
        let mut drops = 0;
        let mut received = 0;
        while let Some(d) = socket.receive(false).unwrap() {
            drops += d.new_drops;
            received += 1;
        }
        assert!(received > 0 && received < 200, "{received}");
        // the kernel's count rides on the next datagram queued
        sender.send_to(b"after", to).unwrap();
        let last = socket.receive(true).unwrap().unwrap();
        drops += last.new_drops;
        received += 1;
        assert_eq!(
            received + drops,
            201,
            "received {received}, dropped {drops}"
        );
    }
}
