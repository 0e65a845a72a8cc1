//! Entry point for the fuzz targets (`plugins/fuzz`): a capture file's bytes through the
//! reader every input-pcap run uses. Not part of the plugin's interface.

use crate::file_reader::open_capture;
use std::path::Path;

/// Reads every frame of `path` (mapped, streamed or gzip'd, as input-pcap would) until the
/// end or the first error; returns the number of frames read.
pub fn read_frames(path: &Path) -> usize {
    let mut frames = 0;
    if let Ok(Some(mut file)) = open_capture(path) {
        while let Ok(Some(frame)) = file.next_frame() {
            assert!(frame.data.len() <= frame.wire_len.max(frame.data.len()));
            frames += 1;
        }
    }
    frames
}
