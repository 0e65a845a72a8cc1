//! The live capture loop shared by both engines: frames from the kernel into a capture worker,
//! kernel counters into the ledger, idle messages expired on the wall clock.

use crate::afpacket::Ring;
use shadowtap_api::{now_ns, Input, InputContext, PluginError, Reason};
use shadowtap_capture::TrackerConfig;
use shadowtap_capture_input::guard::LoadGuard;
use shadowtap_capture_input::Worker;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How long one wait for packets may last before the loop checks shutdown and expiry.
const POLL: Duration = Duration::from_millis(100);
/// How often kernel counters are read.
const STATS_EVERY: Duration = Duration::from_secs(1);

/// Where packets come from.
pub enum Source {
    /// An AF_PACKET ring; `skip_outgoing` drops loopback's second copy of every packet.
    Ring { ring: Ring, skip_outgoing: bool },
    /// A libpcap handle.
    Pcap(pcap::Capture<pcap::Active>),
}

/// One capture thread: a source, a worker with its own flow table, a load guard.
pub struct LiveInput {
    /// The packet source (opened at start-up, so privileges can be dropped before the run).
    pub source: Source,
    /// Tracker settings.
    pub tracker: TrackerConfig,
    /// `--input-raw-realip-header`.
    pub realip_header: Option<String>,
    /// The shared load guard, if configured.
    pub guard: Option<LoadGuard>,
    /// libpcap's cumulative drop count at the last read.
    pub kernel_drops_seen: u64,
}

impl Input for LiveInput {
    fn run(mut self: Box<Self>, mut cx: InputContext) -> Result<(), PluginError> {
        let mut worker = Worker::live(
            self.tracker.clone(),
            cx.counters().clone(),
            self.realip_header.take(),
        );
        let mut next_stats = Instant::now() + STATS_EVERY;
        let result = loop {
            if cx.is_stopping() || worker.is_stopped() {
                break Ok(());
            }
            if let Err(e) = self.read_some(&mut worker, &mut cx) {
                break Err(PluginError::Runtime(e));
            }
            worker.tick(now_ns(), &mut cx);
            worker.flush(&mut cx);
            if Instant::now() >= next_stats {
                next_stats += STATS_EVERY;
                self.record_kernel_stats(&cx);
            }
        };
        self.record_kernel_stats(&cx);
        worker.finish(&mut cx);
        result
    }
}

impl LiveInput {
    fn read_some(&mut self, worker: &mut Worker, cx: &mut InputContext) -> Result<(), String> {
        let guard = self.guard.clone();
        match &mut self.source {
            Source::Ring {
                ring,
                skip_outgoing,
            } => {
                let skip_outgoing = *skip_outgoing;
                ring.next_block(POLL, |frame| {
                    if skip_outgoing && frame.packet_type == libc::PACKET_OUTGOING {
                        return;
                    }
                    if paused(&guard, cx) {
                        return;
                    }
                    let _ = worker.frame(1, frame.data, frame.wire_len, frame.ts_ns, cx);
                })?;
                Ok(())
            }
            Source::Pcap(capture) => {
                let linktype = capture.get_datalink().0 as u32;
                for _ in 0..1024 {
                    match capture.next_packet() {
                        Ok(packet) => {
                            if paused(&guard, cx) {
                                continue;
                            }
                            let ts = packet.header.ts;
                            let ts_ns = ts.tv_sec * 1_000_000_000 + ts.tv_usec * 1000;
                            let _ = worker.frame(
                                linktype,
                                packet.data,
                                packet.header.len as usize,
                                ts_ns,
                                cx,
                            );
                        }
                        Err(pcap::Error::TimeoutExpired) => {
                            wait_readable(capture, POLL);
                            return Ok(());
                        }
                        Err(e) => return Err(format!("libpcap: {e}")),
                    }
                }
                Ok(())
            }
        }
    }

    fn record_kernel_stats(&mut self, cx: &InputContext) {
        let counters = cx.counters();
        match &mut self.source {
            Source::Ring { ring, .. } => {
                let stats = ring.stats();
                counters
                    .extra("kernel packets")
                    .fetch_add(stats.packets, Relaxed);
                counters.add_refused(Reason::KernelDrop, stats.drops);
            }
            Source::Pcap(capture) => {
                if let Ok(stats) = capture.stats() {
                    let total = u64::from(stats.dropped) + u64::from(stats.if_dropped);
                    counters.add_refused(
                        Reason::KernelDrop,
                        total.saturating_sub(self.kernel_drops_seen),
                    );
                    self.kernel_drops_seen = total;
                }
            }
        }
    }
}

/// Waits until a non-blocking libpcap handle has packets, at most `timeout`.
fn wait_readable(capture: &pcap::Capture<pcap::Active>, timeout: Duration) {
    use std::os::fd::AsRawFd;
    let mut poll = libc::pollfd {
        fd: capture.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one valid pollfd for the handle's descriptor.
    unsafe { libc::poll(&mut poll, 1, timeout.as_millis() as i32) };
}

/// True (and counted) when the load guard pauses capture.
pub(crate) fn paused(guard: &Option<LoadGuard>, cx: &InputContext) -> bool {
    let Some(why) = guard.as_ref().and_then(LoadGuard::paused) else {
        return false;
    };
    cx.counters().add_refused(Reason::Paused, 1);
    cx.counters()
        .extra(&format!("paused: {why}"))
        .fetch_add(1, Relaxed);
    true
}
