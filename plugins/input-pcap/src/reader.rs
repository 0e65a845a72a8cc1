//! Reading capture files: classic pcap (micro- or nanosecond), pcapng, either gzip'd.

use flate2::read::MultiGzDecoder;
use pcap_file::pcapng::blocks::interface_description::{
    InterfaceDescriptionBlock, InterfaceDescriptionOption,
};
use pcap_file::pcapng::{Block, PcapNgReader};
use shadowtap_api::PluginError;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

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
        reader: PcapNgReader<Stream>,
        interfaces: Vec<Interface>,
        packet: Vec<u8>,
    },
}

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
    let (head, stream) =
        open_stream(path).map_err(|e| PluginError::io(path.display().to_string(), e))?;
    if head.is_empty() {
        tracing::warn!("{}: file is empty", path.display());
        return Ok(None);
    }
    let stream: Stream = Box::new(stream);
    let bad = |e: pcap_file::PcapError| PluginError::Runtime(format!("{}: {e}", path.display()));
    if head[..] == PCAPNG_MAGIC {
        let reader = PcapNgReader::new(stream).map_err(bad)?;
        let interfaces = reader.interfaces().iter().map(Interface::of).collect();
        return Ok(Some(CaptureFile::PcapNg {
            reader,
            interfaces,
            packet: Vec::new(),
        }));
    }
    let reader = ClassicPcap::open(stream)
        .map_err(|e| PluginError::Runtime(format!("{}: {e}", path.display())))?;
    Ok(Some(CaptureFile::Pcap(reader)))
}

impl CaptureFile {
    /// The next packet, `Ok(None)` at the end, or why the file cannot be read further.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        match self {
            CaptureFile::Pcap(reader) => reader.next_frame(),
            CaptureFile::PcapNg {
                reader,
                interfaces,
                packet,
            } => Ok(next_pcapng_packet(reader, interfaces, packet)?.map(
                |(ts_ns, linktype, wire_len)| Frame {
                    ts_ns,
                    linktype,
                    wire_len,
                    data: packet,
                },
            )),
        }
    }
}

/// Reads blocks up to the next packet, copied into `packet`; returns its time, link type
/// and wire length.
fn next_pcapng_packet(
    reader: &mut PcapNgReader<Stream>,
    interfaces: &mut Vec<Interface>,
    packet: &mut Vec<u8>,
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
/// length are read (up to a sanity bound) instead of ending the file.
pub struct ClassicPcap {
    stream: Stream,
    big_endian: bool,
    nanoseconds: bool,
    linktype: u32,
    max_record: usize,
    packet: Vec<u8>,
}

/// libpcap's bound on one record (it allows larger snapshot lengths for some link types).
const MAX_RECORD: usize = 256 << 10;

impl ClassicPcap {
    fn open(mut stream: Stream) -> Result<Self, String> {
        let mut header = [0u8; 24];
        stream
            .read_exact(&mut header)
            .map_err(|_| "the file ends inside the pcap file header".to_string())?;
        let magic: [u8; 4] = header[..4].try_into().expect("4 bytes");
        let big_endian = magic == PCAP_MAGICS[1] || magic == PCAP_MAGICS[3];
        let nanoseconds = magic == PCAP_MAGICS[2] || magic == PCAP_MAGICS[3];
        let word = |at: usize| {
            let bytes: [u8; 4] = header[at..at + 4].try_into().expect("4 bytes");
            if big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        let snaplen = word(16) as usize;
        Ok(ClassicPcap {
            stream,
            big_endian,
            nanoseconds,
            linktype: word(20) & 0xffff,
            max_record: snaplen.max(MAX_RECORD),
            packet: Vec::new(),
        })
    }

    fn next_frame(&mut self) -> Result<Option<Frame<'_>>, String> {
        let mut record = [0u8; 16];
        match read_full(&mut self.stream, &mut record) {
            Ok(0) => return Ok(None),
            Ok(16) => {}
            Ok(_) => return Err("the file ends inside a packet record header".into()),
            Err(e) => return Err(e.to_string()),
        }
        let word = |at: usize| {
            let bytes: [u8; 4] = record[at..at + 4].try_into().expect("4 bytes");
            if self.big_endian {
                u32::from_be_bytes(bytes)
            } else {
                u32::from_le_bytes(bytes)
            }
        };
        let (seconds, fraction, captured, wire) =
            (word(0), word(4), word(8) as usize, word(12) as usize);
        if captured > self.max_record {
            return Err(format!(
                "record length {captured} is larger than any capture allows"
            ));
        }
        self.packet.resize(captured, 0);
        match read_full(&mut self.stream, &mut self.packet) {
            Ok(n) if n == captured => {}
            Ok(n) => {
                return Err(format!(
                    "the file ends inside the packet ({n} of {captured} bytes)"
                ))
            }
            Err(e) => return Err(e.to_string()),
        }
        let scale = if self.nanoseconds { 1 } else { 1000 };
        Ok(Some(Frame {
            ts_ns: i64::from(seconds) * 1_000_000_000 + i64::from(fraction) * scale,
            linktype: self.linktype,
            wire_len: wire.max(captured),
            data: &self.packet,
        }))
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
