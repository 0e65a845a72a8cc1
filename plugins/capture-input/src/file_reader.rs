//! Reading capture files: classic pcap (micro- or nanosecond), pcapng, either gzip'd.

use flate2::read::MultiGzDecoder;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use shadowtap_api::PluginError;
use shadowtap_capture::tls::KeyStore;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::Arc;

/// One packet as read from the file.
pub struct Frame<'a> {
    /// Capture time, nanoseconds since the epoch.
    pub ts_ns: i64,
    /// Its link type (pcap LINKTYPE_* number).
    pub linktype: u32,
    /// The captured bytes.
    pub data: &'a [u8],
    /// Its length on the wire.
    pub wire_len: usize,
}

type Stream = Box<dyn Read + Send>;

/// An open capture file of either format.
pub enum CaptureFile {
    /// Classic pcap.
    Pcap(ClassicPcap),
    /// pcapng, with the link type of each interface seen so far and a copy of the last packet.
    PcapNg {
        /// The block reader.
        reader: PcapNgReader<Stream>,
        /// Each interface description seen so far.
        interfaces: Vec<Interface>,
        /// The last packet's bytes.
        packet: Vec<u8>,
        /// Where the secrets of Decryption Secrets Blocks go (TLS key log text).
        secrets: Option<Arc<KeyStore>>,
    },
}

/// pcapng's Decryption Secrets Block type.
const DECRYPTION_SECRETS_BLOCK: u32 = 0x0000_000a;
/// The secrets type of a TLS key log in a Decryption Secrets Block ("TLSK").
const TLS_KEY_LOG: u32 = 0x544c_534b;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const PCAPNG_MAGIC: [u8; 4] = [0x0a, 0x0d, 0x0d, 0x0a];
const PCAP_MAGICS: [[u8; 4]; 4] = [
    [0xd4, 0xc3, 0xb2, 0xa1],
    [0xa1, 0xb2, 0xc3, 0xd4],
    [0x4d, 0x3c, 0xb2, 0xa1],
    [0xa1, 0xb2, 0x3c, 0x4d],
];

/// The first bytes of the (decompressed) file, and the stream positioned at its start.
fn open_stream(path: &Path) -> std::io::Result<(Vec<u8>, BufReader<Stream>)> {
    let mut file = BufReader::new(File::open(path)?);
    let gzipped = file.fill_buf()?.starts_with(&GZIP_MAGIC);
    let inner: Stream = if gzipped {
        Box::new(MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    let mut stream = BufReader::with_capacity(256 << 10, inner);
    let head = stream.fill_buf()?.iter().take(4).copied().collect();
    Ok((head, stream))
}

/// Checks at start-up that `path` is a readable capture file (an empty file is allowed).
pub fn check(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err(format!(
            "{} is a directory, not a capture file",
            path.display()
        ));
    }
    let (head, _) = open_stream(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if head.is_empty() || head[..] == PCAPNG_MAGIC || PCAP_MAGICS.iter().any(|m| head[..] == m[..])
    {
        return Ok(());
    }
    let hex: String = head.iter().map(|b| format!("{b:02x}")).collect();
    Err(format!(
        "{} is not a pcap or pcapng file (it starts with 0x{hex})",
        path.display()
    ))
}

/// Opens a capture file; `Ok(None)` for an empty file (reported).
pub fn open_capture(path: &Path) -> Result<Option<CaptureFile>, PluginError> {
    let runtime = |e: String| PluginError::Runtime(format!("{}: {e}", path.display()));
    if let Some(map) = map_classic_pcap(path) {
        let map = Arc::new(map);
        let reader = ClassicPcap::open(Records::Mapped { map, at: 0 }).map_err(runtime)?;
        return Ok(Some(CaptureFile::Pcap(reader)));
    }
    let (head, stream) =
        open_stream(path).map_err(|e| PluginError::io(path.display().to_string(), e))?;
    if head.is_empty() {
        tracing::warn!("{}: file is empty", path.display());
        return Ok(None);
    }
    if head[..] == PCAPNG_MAGIC {
        let stream: Stream = Box::new(stream);
        let reader = PcapNgReader::new(stream).map_err(|e| runtime(e.to_string()))?;
        let interfaces = reader.interfaces().iter().map(Interface::of).collect();
        return Ok(Some(CaptureFile::PcapNg {
            reader,
            interfaces,
            packet: Vec::new(),
            secrets: None,
        }));
    }
    let records = Records::Streamed {
        stream: Box::new(stream),
        packet: Vec::new(),
    };
    let reader = ClassicPcap::open(records).map_err(runtime)?;
    Ok(Some(CaptureFile::Pcap(reader)))
}

/// An uncompressed classic pcap in a regular file, mapped: its records are then read in
/// place, without copying. `None` (read it as a stream) for pcapng, gzip, pipes and anything
/// that cannot be mapped.
fn map_classic_pcap(path: &Path) -> Option<memmap2::Mmap> {
    let mut file = File::open(path).ok()?;
    let metadata = file.metadata().ok()?;
    let mut magic = [0u8; 4];
    if !metadata.is_file() || file.read_exact(&mut magic).is_err() || !PCAP_MAGICS.contains(&magic)
    {
        return None;
    }
    // SAFETY: the map is read-only and private to this reader. A capture file that another
    // process truncates while we read it is outside what any pcap reader can survive.
    let mut options = memmap2::MmapOptions::new();
    if metadata.len() <= POPULATE_UP_TO {
        // One call that maps every page beats a page fault per few pages.
        options.populate();
    }
    let map = unsafe { options.map(&file) }.ok()?;
    let _ = map.advise(memmap2::Advice::Sequential);
    Some(map)
}

impl CaptureFile {
    /// The mapped file, when it is read in place: each frame's `data` then lies inside it
    /// (so that a frame can be handed to another thread as an offset).
    pub fn mapped(&self) -> Option<&Arc<memmap2::Mmap>> {
        match self {
            CaptureFile::Pcap(ClassicPcap {
                records: Records::Mapped { map, .. },
                ..
            }) => Some(map),
            _ => None,
        }
    }

    /// Sends the TLS key log text of the file's Decryption Secrets Blocks to `store` as they are
    /// read; false when the format has no such blocks (classic pcap).
    pub fn use_decryption_secrets(&mut self, store: Arc<KeyStore>) -> bool {
        match self {
            CaptureFile::Pcap(_) => false,
            CaptureFile::PcapNg { secrets, .. } => {
                *secrets = Some(store);
                true
            }
        }
    }

    /// The next packet, `Ok(None)` at the end, or why the file cannot be read further.
    #[inline]
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        match self {
            CaptureFile::Pcap(reader) => reader.next_frame(),
            CaptureFile::PcapNg {
                reader,
                interfaces,
                packet,
                secrets,
            } => Ok(
                next_pcapng_packet(reader, interfaces, packet, secrets.as_deref())?.map(
                    |(ts_ns, linktype, wire_len)| Frame {
                        ts_ns,
                        linktype,
                        wire_len,
                        data: packet,
                    },
                ),
            ),
        }
    }
}

/// Reads blocks up to the next packet, copied into `packet`; returns its time, link type
/// and wire length.
fn next_pcapng_packet(
    reader: &mut PcapNgReader<Stream>,
    interfaces: &mut Vec<Interface>,
    packet: &mut Vec<u8>,
    secrets: Option<&KeyStore>,
) -> Result<Option<(i64, u32, usize)>, String> {
    loop {
        let block = match reader.next_block() {
            None => return Ok(None),
            Some(Err(e)) => return Err(e.to_string()),
            Some(Ok(block)) => block,
        };
        let (ticks, index, wire_len, data) = match block {
            Block::InterfaceDescription(interface) => {
                interfaces.push(Interface::of(&interface));
                continue;
            }
            Block::EnhancedPacket(p) => (
                p.timestamp.as_nanos() as u64,
                p.interface_id as usize,
                p.original_len,
                p.data,
            ),
            Block::SimplePacket(p) => (0, 0, p.original_len, p.data),
            Block::Unknown(block) if block.type_ == DECRYPTION_SECRETS_BLOCK => {
                if let (Some(store), Some(text)) = (secrets, tls_key_log(&block.value)) {
                    store.add_text(text);
                }
                continue;
            }
            _ => continue,
        };
        packet.clear();
        packet.extend_from_slice(&data);
        let interface = interfaces.get(index).copied().unwrap_or(Interface::UNKNOWN);
        return Ok(Some((
            interface.nanoseconds(ticks),
            interface.linktype,
            wire_len as usize,
        )));
    }
}

/// The TLS key log text of a Decryption Secrets Block's body (either byte order), if it holds
/// one.
fn tls_key_log(body: &[u8]) -> Option<&[u8]> {
    if body.len() < 8 {
        return None;
    }
    let kind = &body[..4];
    let big_endian = match u32::from_be_bytes(kind.try_into().ok()?) {
        TLS_KEY_LOG => true,
        other if other.swap_bytes() == TLS_KEY_LOG => false,
        _ => return None,
    };
    let len = read_u32(body, 4, big_endian) as usize;
    body.get(8..8usize.checked_add(len)?)
}

/// A pcapng interface: its link type and timestamp resolution.
#[derive(Clone, Copy, Debug)]
pub struct Interface {
    linktype: u32,
    ticks_per_second: u64,
}

impl Interface {
    const UNKNOWN: Interface = Interface {
        linktype: u32::MAX,
        ticks_per_second: 1_000_000,
    };

    fn of(block: &InterfaceDescriptionBlock<'_>) -> Self {
        let resolution = block.options.iter().find_map(|option| match option {
            InterfaceDescriptionOption::IfTsResol(r) => Some(*r),
            _ => None,
        });
        Interface {
            linktype: u32::from(block.linktype),
            ticks_per_second: ticks_per_second(resolution.unwrap_or(6)),
        }
    }

    /// pcap-file hands the raw timestamp ticks over as if they were nanoseconds; scale them.
    fn nanoseconds(self, ticks: u64) -> i64 {
        let ns = u128::from(ticks) * 1_000_000_000 / u128::from(self.ticks_per_second.max(1));
        i64::try_from(ns).unwrap_or(i64::MAX)
    }
}

/// `if_tsresol`: a power of ten, or of two when the high bit is set.
fn ticks_per_second(resolution: u8) -> u64 {
    let exponent = u32::from(resolution & 0x7f);
    if resolution & 0x80 != 0 {
        1u64.checked_shl(exponent).unwrap_or(u64::MAX)
    } else {
        10u64.checked_pow(exponent).unwrap_or(u64::MAX)
    }
}

/// A classic pcap reader as tolerant as libpcap: records longer than the header's snapshot
/// length are read (up to [`MAX_STREAMED_RECORD`], or a mapped file's size) instead of
/// ending the file.
pub struct ClassicPcap {
    records: Records,
    big_endian: bool,
    nanoseconds: bool,
    linktype: u32,
    max_record: usize,
}

/// Where classic pcap records come from.
enum Records {
    /// A mapped file, read in place from offset `at`.
    Mapped { map: Arc<memmap2::Mmap>, at: usize },
    /// A stream (gzip, pipe), each record copied into `packet`.
    Streamed { stream: Stream, packet: Vec<u8> },
}

/// Why the next bytes could not be read.
enum Short {
    /// The file ends after `got` of the bytes asked for.
    Ends { got: usize },
    /// Reading failed.
    Failed(std::io::Error),
}

/// Files up to this size are mapped in full up front (larger ones page by page, so that a
/// huge capture does not have to be read before its first packet is processed).
const POPULATE_UP_TO: u64 = 1 << 30;

/// How much of a record is prefetched ahead of its turn: its record header, the packet
/// headers and the start of an HTTP message. Large response bodies are skipped, so the
/// hardware prefetcher cannot guess where records start; without this, reading each record
/// header is a cache (and TLB) miss.
const PREFETCH_RECORD: usize = 256;

impl Records {
    /// The next `len` bytes; `Short::Ends` when fewer remain.
    #[inline]
    fn take(&mut self, len: usize) -> Result<&[u8], Short> {
        match self {
            Records::Mapped { map, at } => {
                let start = *at;
                let available = map.len() - start;
                if available < len {
                    *at = map.len();
                    return Err(Short::Ends { got: available });
                }
                *at += len;
                Ok(&map[start..start + len])
            }
            Records::Streamed { stream, packet } => {
                packet.resize(len, 0);
                match read_full(stream, packet) {
                    Ok(got) if got == len => Ok(&packet[..]),
                    Ok(got) => Err(Short::Ends { got }),
                    Err(e) => Err(Short::Failed(e)),
                }
            }
        }
    }

    /// Hints the CPU to load the start of the record after the next one, whose data is the
    /// `len` bytes from here (mapped files only). That record's header is in cache by now: it
    /// was prefetched one record ago, so the load has a whole record's work to complete in.
    fn prefetch_ahead(&self, len: usize, big_endian: bool) {
        let Records::Mapped { map, at } = self else {
            return;
        };
        let next = at + len;
        let Some(next_header) = map.get(next..next + 16) else {
            return;
        };
        let next_len = read_u32(next_header, 8, big_endian) as usize;
        let after_next = next + 16 + next_len;
        for line in (0..PREFETCH_RECORD).step_by(64) {
            prefetch(map, after_next + line);
        }
    }
}

/// Hints the CPU to load the cache line at `offset` of `map` (nothing past its end).
#[inline]
fn prefetch(map: &[u8], offset: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(byte) = map.get(offset) {
        // SAFETY: prefetching is a hint with no effect on memory; the address is in bounds.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(
                (byte as *const u8).cast(),
            )
        };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (map, offset);
}

/// The largest record read from a stream (gzip, pipe), whose bytes must be copied: libpcap's
/// bound for all but a few link types. The header's snapshot length cannot raise it, since the
/// file chooses both. A mapped file's record is bounded by the file's real size instead (it is
/// read in place, nothing is allocated for it).
const MAX_STREAMED_RECORD: usize = 256 << 10;

impl ClassicPcap {
    fn open(mut records: Records) -> Result<Self, String> {
        let header: [u8; 24] = match records.take(24) {
            Ok(bytes) => bytes.try_into().expect("24 bytes"),
            Err(_) => return Err("the file ends inside the pcap file header".into()),
        };
        let magic: [u8; 4] = header[..4].try_into().expect("4 bytes");
        let big_endian = magic == PCAP_MAGICS[1] || magic == PCAP_MAGICS[3];
        let nanoseconds = magic == PCAP_MAGICS[2] || magic == PCAP_MAGICS[3];
        let word = |at: usize| read_u32(&header, at, big_endian);
        let max_record = match records {
            Records::Mapped { .. } => usize::MAX,
            Records::Streamed { .. } => MAX_STREAMED_RECORD,
        };
        Ok(ClassicPcap {
            records,
            big_endian,
            nanoseconds,
            linktype: word(20) & 0xffff,
            max_record,
        })
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        let record: [u8; 16] = match self.records.take(16) {
            Ok(bytes) => bytes.try_into().expect("16 bytes"),
            Err(Short::Ends { got: 0 }) => return Ok(None),
            Err(Short::Ends { .. }) => {
                return Err("the file ends inside a packet record header".into())
            }
            Err(Short::Failed(e)) => return Err(e.to_string()),
        };
        let word = |at: usize| read_u32(&record, at, self.big_endian);
        let (seconds, fraction, captured, wire) =
            (word(0), word(4), word(8) as usize, word(12) as usize);
        if captured > self.max_record {
            return Err(format!(
                "record length {captured} is over the {} KiB cap on a streamed record",
                MAX_STREAMED_RECORD >> 10
            ));
        }
        let scale = if self.nanoseconds { 1 } else { 1000 };
        let ts_ns = i64::from(seconds) * 1_000_000_000 + i64::from(fraction) * scale;
        let linktype = self.linktype;
        self.records.prefetch_ahead(captured, self.big_endian);
        let data = match self.records.take(captured) {
            Ok(data) => data,
            Err(Short::Ends { got }) => {
                return Err(format!(
                    "the file ends inside the packet ({got} of {captured} bytes)"
                ))
            }
            Err(Short::Failed(e)) => return Err(e.to_string()),
        };
        Ok(Some(Frame {
            ts_ns,
            linktype,
            wire_len: wire.max(captured),
            data,
        }))
    }
}

fn read_u32(bytes: &[u8], at: usize, big_endian: bool) -> u32 {
    let word: [u8; 4] = bytes[at..at + 4].try_into().expect("4 bytes");
    if big_endian {
        u32::from_be_bytes(word)
    } else {
        u32::from_le_bytes(word)
    }
}

/// Reads until `buf` is full or the stream ends; returns the bytes read.
fn read_full(stream: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match stream.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}
