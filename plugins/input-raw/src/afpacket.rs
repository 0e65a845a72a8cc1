//! The AF_PACKET engine: a TPACKET_V3 memory-mapped receive ring per worker socket, the
//! sockets of one interface joined in a PACKET_FANOUT group hashed by flow (the kernel's flow
//! hash is symmetric, so both directions of a connection reach the same worker), the filter
//! run in the kernel, and packets read in place from the ring.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, Ordering};
use std::time::Duration;

/// Ring geometry for one socket.
#[derive(Clone, Copy, Debug)]
pub struct RingSize {
    /// Bytes per block (a power of two, a multiple of the page size).
    pub block_size: usize,
    /// Blocks in the ring.
    pub blocks: usize,
    /// The frame size hint (TPACKET_V3 packs frames of any size into blocks).
    pub frame_size: usize,
}

impl RingSize {
    /// A ring of about `total` bytes in 1 MiB blocks (at least 4).
    pub fn of_total(total: usize) -> Self {
        let block_size = 1 << 20;
        RingSize {
            block_size,
            blocks: (total / block_size).max(4),
            frame_size: 2048,
        }
    }
}

/// How a socket is opened.
pub struct SocketConfig<'a> {
    /// Interface name.
    pub interface: &'a str,
    /// Ring geometry.
    pub ring: RingSize,
    /// Kernel BPF instructions (compiled by libpcap for Ethernet).
    pub filter: Option<&'a pcap::BpfProgram>,
    /// Fanout group id, shared by every socket of this interface.
    pub fanout_group: u16,
    /// Promiscuous mode.
    pub promisc: bool,
}

/// One packet as it sits in the ring.
pub struct RingFrame<'a> {
    /// Captured bytes (from the link-layer header).
    pub data: &'a [u8],
    /// Length on the wire.
    pub wire_len: usize,
    /// Kernel timestamp, ns since the epoch.
    pub ts_ns: i64,
    /// `sll_pkttype` (PACKET_HOST, PACKET_OUTGOING…).
    pub packet_type: u8,
}

/// Kernel counters since the last read.
#[derive(Clone, Copy, Debug, Default)]
pub struct RingStats {
    /// Packets the kernel handed to this socket.
    pub packets: u64,
    /// Packets the kernel dropped (ring full).
    pub drops: u64,
}

/// An open socket with its mapped ring.
pub struct Ring {
    socket: OwnedFd,
    map: NonNull<u8>,
    map_len: usize,
    size: RingSize,
    next_block: usize,
}

// The ring memory is owned by this value and only touched by the thread that owns it.
unsafe impl Send for Ring {}

const TPACKET3_HDR_LEN: usize = 48;
const TP_STATUS_KERNEL: u32 = 0;

fn os_error(what: &str) -> String {
    let error = io::Error::last_os_error();
    let hint = if error.raw_os_error() == Some(libc::EPERM) {
        " (needs root or CAP_NET_RAW: setcap cap_net_raw,cap_net_admin=eip $(command -v shadowtap))"
    } else {
        ""
    };
    format!("{what}: {error}{hint}")
}

fn set_option<T>(fd: i32, level: i32, name: i32, value: &T, what: &str) -> Result<(), String> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            value as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(os_error(what))
    }
}

impl Ring {
    /// Opens, configures, maps and binds a socket on `config.interface`.
    pub fn open(config: &SocketConfig<'_>) -> Result<Ring, String> {
        // SAFETY: plain socket(2) call; the fd is owned below.
        let fd = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW,
                (libc::ETH_P_ALL as u16).to_be() as i32,
            )
        };
        if fd < 0 {
            return Err(os_error("cannot open an AF_PACKET socket"));
        }
        // SAFETY: fd is a fresh, valid descriptor that nothing else owns.
        let socket = unsafe { OwnedFd::from_raw_fd(fd) };
        let version = libc::tpacket_versions::TPACKET_V3 as i32;
        set_option(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_VERSION,
            &version,
            "PACKET_VERSION TPACKET_V3",
        )?;
        let size = config.ring;
        let request = libc::tpacket_req3 {
            tp_block_size: size.block_size as u32,
            tp_block_nr: size.blocks as u32,
            tp_frame_size: size.frame_size as u32,
            tp_frame_nr: (size.block_size / size.frame_size * size.blocks) as u32,
            tp_retire_blk_tov: 10,
            tp_sizeof_priv: 0,
            tp_feature_req_word: 0,
        };
        set_option(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_RX_RING,
            &request,
            "PACKET_RX_RING",
        )?;
        let map_len = size.block_size * size.blocks;
        // SAFETY: maps the ring the kernel just allocated for this socket.
        let map = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                map_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if map == libc::MAP_FAILED {
            return Err(os_error("cannot map the receive ring"));
        }
        let ring = Ring {
            socket,
            map: NonNull::new(map as *mut u8).expect("mmap succeeded"),
            map_len,
            size,
            next_block: 0,
        };
        ring.configure(config)?;
        Ok(ring)
    }

    fn configure(&self, config: &SocketConfig<'_>) -> Result<(), String> {
        let fd = self.socket.as_raw_fd();
        if let Some(program) = config.filter {
            attach_filter(fd, program)?;
        }
        let index = interface_index(config.interface)?;
        // SAFETY: sockaddr_ll is plain data; zeroed is a valid value.
        let mut address: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        address.sll_family = libc::AF_PACKET as u16;
        address.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        address.sll_ifindex = index;
        // SAFETY: address is a valid sockaddr_ll of the size passed.
        let rc = unsafe {
            libc::bind(
                fd,
                &address as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(os_error(&format!(
                "cannot bind to interface {}",
                config.interface
            )));
        }
        if config.promisc {
            // SAFETY: packet_mreq is plain data.
            let mut membership: libc::packet_mreq = unsafe { std::mem::zeroed() };
            membership.mr_ifindex = index;
            membership.mr_type = libc::PACKET_MR_PROMISC as u16;
            set_option(
                fd,
                libc::SOL_PACKET,
                libc::PACKET_ADD_MEMBERSHIP,
                &membership,
                "promiscuous mode",
            )?;
        }
        let fanout = i32::from(config.fanout_group)
            | ((libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_DEFRAG) as i32) << 16;
        set_option(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            &fanout,
            "PACKET_FANOUT",
        )
    }

    /// Waits up to `timeout` for a filled block, then calls `each` for every packet in it and
    /// hands the block back to the kernel. Returns the packets seen.
    pub fn next_block(
        &mut self,
        timeout: Duration,
        mut each: impl FnMut(RingFrame<'_>),
    ) -> Result<usize, String> {
        let block = self.block(self.next_block);
        if !block_ready(block) {
            self.wait(timeout)?;
            if !block_ready(block) {
                return Ok(0);
            }
        }
        fence(Ordering::Acquire);
        // SAFETY: the block is owned by user space (TP_STATUS_USER) until handed back; all
        // offsets come from the kernel and stay inside the block, which is checked below.
        let count = unsafe { self.walk(block, &mut each) };
        fence(Ordering::Release);
        // SAFETY: status word of a block we own.
        unsafe { std::ptr::write_volatile(block.add(8) as *mut u32, TP_STATUS_KERNEL) };
        self.next_block = (self.next_block + 1) % self.size.blocks;
        Ok(count)
    }

    fn block(&self, index: usize) -> *mut u8 {
        // SAFETY: index < blocks, so the offset is inside the mapping.
        unsafe { self.map.as_ptr().add(index * self.size.block_size) }
    }

    unsafe fn walk(&self, block: *mut u8, each: &mut impl FnMut(RingFrame<'_>)) -> usize {
        let read_u32 = |at: *const u8| std::ptr::read_unaligned(at as *const u32);
        let count = read_u32(block.add(12)) as usize;
        let mut offset = read_u32(block.add(16)) as usize;
        let limit = self.size.block_size;
        let mut seen = 0;
        for _ in 0..count {
            if offset + TPACKET3_HDR_LEN > limit {
                break;
            }
            let header = block.add(offset);
            let next = read_u32(header) as usize;
            let seconds = read_u32(header.add(4));
            let nanos = read_u32(header.add(8));
            let snaplen = read_u32(header.add(12)) as usize;
            let wire_len = read_u32(header.add(16)) as usize;
            let mac = std::ptr::read_unaligned(header.add(24) as *const u16) as usize;
            let packet_type = *header.add(TPACKET3_HDR_LEN + 10);
            if offset + mac + snaplen <= limit {
                let data = std::slice::from_raw_parts(header.add(mac), snaplen);
                each(RingFrame {
                    data,
                    wire_len,
                    ts_ns: i64::from(seconds) * 1_000_000_000 + i64::from(nanos),
                    packet_type,
                });
                seen += 1;
            }
            if next == 0 {
                break;
            }
            offset += next;
        }
        seen
    }

    fn wait(&self, timeout: Duration) -> Result<(), String> {
        let mut poll = libc::pollfd {
            fd: self.socket.as_raw_fd(),
            events: libc::POLLIN | libc::POLLERR,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe {
            libc::poll(
                &mut poll,
                1,
                timeout.as_millis().min(i32::MAX as u128) as i32,
            )
        };
        if rc < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return Err(os_error("poll on the capture socket"));
        }
        Ok(())
    }

    /// Kernel counters since the last call (reading resets them).
    pub fn stats(&self) -> RingStats {
        // SAFETY: tpacket_stats_v3 is plain data.
        let mut stats: libc::tpacket_stats_v3 = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::tpacket_stats_v3>() as libc::socklen_t;
        // SAFETY: stats is a valid buffer of len bytes.
        let rc = unsafe {
            libc::getsockopt(
                self.socket.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                &mut stats as *mut _ as *mut libc::c_void,
                &mut len,
            )
        };
        if rc != 0 {
            return RingStats::default();
        }
        RingStats {
            packets: u64::from(stats.tp_packets),
            drops: u64::from(stats.tp_drops),
        }
    }
}

fn block_ready(block: *mut u8) -> bool {
    // SAFETY: the status word of a block inside the mapping; the kernel writes it.
    let status = unsafe { std::ptr::read_volatile(block.add(8) as *const u32) };
    status & libc::TP_STATUS_USER != 0
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping created in `open`.
        unsafe { libc::munmap(self.map.as_ptr() as *mut libc::c_void, self.map_len) };
    }
}

fn attach_filter(fd: i32, program: &pcap::BpfProgram) -> Result<(), String> {
    let instructions = program.get_instructions();
    const _: () = assert!(std::mem::size_of::<libc::sock_filter>() == 8);
    let filter = libc::sock_fprog {
        len: instructions.len() as u16,
        // SAFETY: BpfInstruction is repr(transparent) over bpf_insn {u16, u8, u8, u32}, the
        // same layout as sock_filter; the kernel copies the program during setsockopt.
        filter: instructions.as_ptr() as *mut libc::sock_filter,
    };
    set_option(
        fd,
        libc::SOL_SOCKET,
        libc::SO_ATTACH_FILTER,
        &filter,
        "attaching the BPF filter",
    )
}

/// The index of interface `name` in the calling thread's network namespace.
pub fn interface_index(name: &str) -> Result<i32, String> {
    let c_name =
        std::ffi::CString::new(name).map_err(|_| format!("bad interface name {name:?}"))?;
    // SAFETY: a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        Err(format!("no interface {name:?}"))
    } else {
        Ok(index as i32)
    }
}
