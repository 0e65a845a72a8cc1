//! Reporting the ledger: the summary line at exit and the periodic `--stats` line.

use shadowtap_api::Ledger;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// Prints `[stats] <summary>` to stderr every `interval` until `stop` is dropped.
pub fn start_stats(
    ledger: Arc<Ledger>,
    interval: Duration,
) -> (crossbeam_channel::Sender<()>, JoinHandle<()>) {
    let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
    let handle = thread::Builder::new()
        .name("stats".into())
        .spawn(move || {
            while let Err(crossbeam_channel::RecvTimeoutError::Timeout) =
                stop_rx.recv_timeout(interval)
            {
                eprintln!("[stats] {}", ledger.summary());
            }
        })
        .expect("spawn stats thread");
    (stop_tx, handle)
}

/// The final line printed to stderr at exit.
pub fn final_summary(ledger: &Ledger) -> String {
    format!("shadowtap: {}", ledger.summary())
}
