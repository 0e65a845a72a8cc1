//! Our own minimal FFI to PF_RING 8's `libpfring.so` (declared against `pfring.h`), loaded at
//! run time with `libloading` so that one binary runs with and without PF_RING.
//!
//! Only ABI that has been stable since PF_RING 5 is relied on: the opaque `pfring` handle, the
//! `pfring_pkthdr` prefix (`timeval`, `caplen`, `len`; the extended header is left to an
//! oversized opaque tail), `pfring_stat` (`recv`, `drop`, `shunt`) and C enums passed as `int`.

use std::ffi::{c_char, c_int, c_uint, c_void, CString};
use std::io;
use std::ptr::NonNull;
use std::sync::Arc;

/// `pfring_open()` flag: promiscuous mode.
pub const PF_RING_PROMISC: u32 = 1 << 3;
/// `pfring_open()` flag: always timestamp packets (zero-copy drivers skip it otherwise).
pub const PF_RING_TIMESTAMP: u32 = 1 << 4;

/// `packet_direction::rx_and_tx_direction`.
pub const RX_AND_TX_DIRECTION: c_int = 0;
/// `socket_mode::recv_only_mode`.
pub const RECV_ONLY_MODE: c_int = 2;

/// `cluster_type` values (from `linux/pf_ring.h`).
pub mod cluster {
    /// 6-tuple: src/dst ip and port, protocol, vlan.
    pub const PER_FLOW: i32 = 0;
    /// Packets in turn, ignoring flows.
    pub const ROUND_ROBIN: i32 = 1;
    /// src and dst ip.
    pub const PER_FLOW_2_TUPLE: i32 = 2;
    /// src/dst ip and port.
    pub const PER_FLOW_4_TUPLE: i32 = 3;
    /// src/dst ip and port, protocol.
    pub const PER_FLOW_5_TUPLE: i32 = 4;
    /// 5-tuple for TCP, 2-tuple otherwise.
    pub const PER_FLOW_TCP_5_TUPLE: i32 = 5;
}

/// The stable prefix of `struct pfring_pkthdr` plus room for any extended header.
#[repr(C)]
pub struct PfringPkthdr {
    /// Capture time.
    pub ts: libc::timeval,
    /// Bytes captured.
    pub caplen: u32,
    /// Bytes on the wire.
    pub len: u32,
    _ext: [u8; 512],
}

/// `pfring_stat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PfringStat {
    /// Packets received by the ring.
    pub recv: u64,
    /// Packets dropped by the ring (full).
    pub drop: u64,
    /// Packets shunted.
    pub shunt: u64,
}

type OpenFn = unsafe extern "C" fn(*const c_char, u32, u32) -> *mut c_void;
type SetStrFn = unsafe extern "C" fn(*mut c_void, *mut c_char) -> c_int;
type SetIntFn = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type SetClusterFn = unsafe extern "C" fn(*mut c_void, c_uint, c_int) -> c_int;
type SetU16Fn = unsafe extern "C" fn(*mut c_void, u16) -> c_int;
type SetUintFn = unsafe extern "C" fn(*mut c_void, c_uint) -> c_int;
type RingFn = unsafe extern "C" fn(*mut c_void) -> c_int;
type RecvFn =
    unsafe extern "C" fn(*mut c_void, *mut *mut u8, c_uint, *mut PfringPkthdr, u8) -> c_int;
type StatsFn = unsafe extern "C" fn(*mut c_void, *mut PfringStat) -> c_int;
type CloseFn = unsafe extern "C" fn(*mut c_void);
type VersionFn = unsafe extern "C" fn(*mut u32);

/// `libpfring.so` with every function the input uses, resolved once.
pub struct Lib {
    _library: libloading::Library,
    /// Where it was loaded from.
    pub path: String,
    open: OpenFn,
    set_application_name: SetStrFn,
    set_direction: SetIntFn,
    set_socket_mode: SetIntFn,
    set_cluster: SetClusterFn,
    set_bpf_filter: SetStrFn,
    set_poll_watermark: SetU16Fn,
    set_poll_duration: SetUintFn,
    enable_ring: RingFn,
    recv: RecvFn,
    stats: StatsFn,
    close: CloseFn,
    version_noring: Option<VersionFn>,
}

/// Why `libpfring.so` could not be used.
#[derive(Debug)]
pub enum LoadError {
    /// No candidate could be opened: (candidate, dlopen error) for each.
    NotFound(Vec<(String, String)>),
    /// It opened but lacks a function we need.
    MissingSymbol {
        /// The library.
        path: String,
        /// The function.
        symbol: &'static str,
        /// dlsym's error.
        error: String,
    },
}

impl Lib {
    /// Loads the first of `candidates` that opens.
    pub fn load(candidates: &[String]) -> Result<Arc<Lib>, LoadError> {
        let mut failures = Vec::new();
        for path in candidates {
            // SAFETY: loading a shared library runs its initialisers; libpfring's are plain C.
            match unsafe { libloading::Library::new(path) } {
                Ok(library) => return Lib::resolve(library, path.clone()).map(Arc::new),
                Err(e) => failures.push((path.clone(), e.to_string())),
            }
        }
        Err(LoadError::NotFound(failures))
    }

    fn resolve(library: libloading::Library, path: String) -> Result<Lib, LoadError> {
        macro_rules! sym {
            ($name:literal) => {{
                // SAFETY: the type matches the prototype in PF_RING 8's pfring.h.
                match unsafe { library.get(concat!($name, "\0").as_bytes()) } {
                    Ok(symbol) => *symbol,
                    Err(e) => {
                        return Err(LoadError::MissingSymbol {
                            path,
                            symbol: $name,
                            error: e.to_string(),
                        })
                    }
                }
            }};
        }
        let open: OpenFn = sym!("pfring_open");
        let set_application_name: SetStrFn = sym!("pfring_set_application_name");
        let set_direction: SetIntFn = sym!("pfring_set_direction");
        let set_socket_mode: SetIntFn = sym!("pfring_set_socket_mode");
        let set_cluster: SetClusterFn = sym!("pfring_set_cluster");
        let set_bpf_filter: SetStrFn = sym!("pfring_set_bpf_filter");
        let set_poll_watermark: SetU16Fn = sym!("pfring_set_poll_watermark");
        let set_poll_duration: SetUintFn = sym!("pfring_set_poll_duration");
        let enable_ring: RingFn = sym!("pfring_enable_ring");
        let recv: RecvFn = sym!("pfring_recv");
        let stats: StatsFn = sym!("pfring_stats");
        let close: CloseFn = sym!("pfring_close");
        // SAFETY: as above; optional (only used for the start-up log line).
        let version_noring: Option<VersionFn> =
            unsafe { library.get::<VersionFn>(b"pfring_version_noring\0") }
                .ok()
                .map(|s| *s);
        Ok(Lib {
            _library: library,
            path,
            open,
            set_application_name,
            set_direction,
            set_socket_mode,
            set_cluster,
            set_bpf_filter,
            set_poll_watermark,
            set_poll_duration,
            enable_ring,
            recv,
            stats,
            close,
            version_noring,
        })
    }

    /// The library's version as `major.minor.patch`, when it says.
    pub fn version(&self) -> Option<String> {
        let f = self.version_noring?;
        let mut v = 0u32;
        // SAFETY: writes one u32.
        unsafe { f(&mut v) };
        Some(format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff))
    }
}

/// One open PF_RING socket. Closed when dropped.
pub struct Ring {
    lib: Arc<Lib>,
    handle: NonNull<c_void>,
    hdr: Box<PfringPkthdr>,
}

// SAFETY: a ring is used by one thread at a time (moved from the opening thread to its
// consumer); libpfring has no thread affinity.
unsafe impl Send for Ring {}

/// What one `pfring_recv` returned.
pub enum Recv<'a> {
    /// A packet, borrowed from the ring until the next call.
    Packet {
        /// Captured bytes.
        data: &'a [u8],
        /// Length on the wire.
        wire_len: usize,
        /// Capture time (0 when the ring did not stamp it).
        ts_ns: i64,
    },
    /// Nothing waiting.
    Empty,
    /// The ring failed (its return code).
    Error(c_int),
}

fn c_string(text: &str) -> Result<CString, String> {
    CString::new(text).map_err(|_| format!("{text:?} contains a NUL byte"))
}

impl Ring {
    /// `pfring_open(device, caplen, flags)`; on failure the OS error it left in errno.
    pub fn open(lib: &Arc<Lib>, device: &str, caplen: u32, flags: u32) -> io::Result<Ring> {
        let name =
            CString::new(device).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: a valid C string; returns NULL or a handle we own.
        let handle = unsafe { (lib.open)(name.as_ptr(), caplen, flags) };
        let error = io::Error::last_os_error();
        match NonNull::new(handle) {
            Some(handle) => Ok(Ring {
                lib: lib.clone(),
                handle,
                hdr: Box::new(PfringPkthdr {
                    ts: libc::timeval {
                        tv_sec: 0,
                        tv_usec: 0,
                    },
                    caplen: 0,
                    len: 0,
                    _ext: [0; 512],
                }),
            }),
            None => Err(error),
        }
    }

    fn ok(rc: c_int, what: &str) -> Result<(), String> {
        if rc < 0 {
            Err(format!("{what} failed (return code {rc})"))
        } else {
            Ok(())
        }
    }

    /// `pfring_set_application_name`.
    pub fn set_application_name(&mut self, name: &str) -> Result<(), String> {
        let name = c_string(name)?;
        // SAFETY: libpfring copies the name.
        let rc = unsafe {
            (self.lib.set_application_name)(self.handle.as_ptr(), name.as_ptr() as *mut c_char)
        };
        Self::ok(rc, "pfring_set_application_name")
    }

    /// `pfring_set_direction`.
    pub fn set_direction(&mut self, direction: c_int) -> Result<(), String> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.set_direction)(self.handle.as_ptr(), direction) };
        Self::ok(rc, "pfring_set_direction")
    }

    /// `pfring_set_socket_mode`.
    pub fn set_socket_mode(&mut self, mode: c_int) -> Result<(), String> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.set_socket_mode)(self.handle.as_ptr(), mode) };
        Self::ok(rc, "pfring_set_socket_mode")
    }

    /// `pfring_set_cluster`.
    pub fn set_cluster(&mut self, id: u32, kind: i32) -> Result<(), String> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.set_cluster)(self.handle.as_ptr(), id, kind) };
        Self::ok(rc, "pfring_set_cluster")
    }

    /// `pfring_set_bpf_filter`.
    pub fn set_bpf_filter(&mut self, filter: &str) -> Result<(), String> {
        let filter = c_string(filter)?;
        // SAFETY: libpfring compiles the string and keeps no pointer to it.
        let rc = unsafe {
            (self.lib.set_bpf_filter)(self.handle.as_ptr(), filter.as_ptr() as *mut c_char)
        };
        Self::ok(rc, "pfring_set_bpf_filter")
    }

    /// `pfring_set_poll_watermark`.
    pub fn set_poll_watermark(&mut self, watermark: u16) -> Result<(), String> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.set_poll_watermark)(self.handle.as_ptr(), watermark) };
        Self::ok(rc, "pfring_set_poll_watermark")
    }

    /// `pfring_set_poll_duration` (milliseconds).
    pub fn set_poll_duration(&mut self, millis: u32) -> Result<(), String> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.set_poll_duration)(self.handle.as_ptr(), millis) };
        Self::ok(rc, "pfring_set_poll_duration")
    }

    /// `pfring_enable_ring`: packets start arriving.
    pub fn enable(&mut self) -> Result<(), String> {
        // SAFETY: a live handle.
        let rc = unsafe { (self.lib.enable_ring)(self.handle.as_ptr()) };
        Self::ok(rc, "pfring_enable_ring")
    }

    /// Zero-copy, non-blocking `pfring_recv`.
    pub fn recv(&mut self) -> Recv<'_> {
        let mut buffer: *mut u8 = std::ptr::null_mut();
        // SAFETY: buffer_len 0 asks for zero-copy: libpfring points `buffer` into the ring, valid
        // until the next call on this ring, which the borrow of `self` guarantees.
        let rc =
            unsafe { (self.lib.recv)(self.handle.as_ptr(), &mut buffer, 0, &mut *self.hdr, 0) };
        match rc {
            0 => Recv::Empty,
            rc if rc < 0 => Recv::Error(rc),
            _ if buffer.is_null() => Recv::Error(-1),
            _ => {
                let hdr = &*self.hdr;
                // SAFETY: libpfring returned `caplen` readable bytes at `buffer`.
                let data = unsafe { std::slice::from_raw_parts(buffer, hdr.caplen as usize) };
                // time_t and suseconds_t are 32 bits wide on some targets.
                #[allow(clippy::useless_conversion)]
                let ts_ns = i64::from(hdr.ts.tv_sec)
                    .saturating_mul(1_000_000_000)
                    .saturating_add(i64::from(hdr.ts.tv_usec) * 1000);
                Recv::Packet {
                    data,
                    wire_len: (hdr.len as usize).max(data.len()),
                    ts_ns,
                }
            }
        }
    }

    /// `pfring_stats`.
    pub fn stats(&mut self) -> Option<PfringStat> {
        let mut stats = PfringStat::default();
        // SAFETY: writes one pfring_stat.
        let rc = unsafe { (self.lib.stats)(self.handle.as_ptr(), &mut stats) };
        (rc >= 0).then_some(stats)
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        // SAFETY: the handle is live and not used after this.
        unsafe { (self.lib.close)(self.handle.as_ptr()) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_prefix_is_pcap_like() {
        assert_eq!(std::mem::offset_of!(PfringPkthdr, caplen), 16);
        assert_eq!(std::mem::offset_of!(PfringPkthdr, len), 20);
        assert_eq!(std::mem::size_of::<PfringStat>(), 24);
    }

    #[test]
    fn missing_library_lists_what_was_tried() {
        let Err(LoadError::NotFound(tried)) = Lib::load(&["/nonexistent/libpfring.so".into()])
        else {
            panic!("loaded a library that does not exist");
        };
        assert_eq!(tried.len(), 1);
        assert!(tried[0].1.contains("nonexistent"), "{tried:?}");
    }
}
