//! Opening rings inside a named network namespace (`ip netns add NAME`): the calling thread
//! switches into `/var/run/netns/NAME` only while the rings are opened, then switches back.

use nix::sched::{setns, CloneFlags};
use shadowtap_api::PluginError;
use std::fs::File;

/// While alive, the calling thread is inside the namespace; dropping it switches back.
struct Entered {
    original: File,
}

fn enter(name: &str) -> Result<Entered, String> {
    let original = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
    let path = format!("/var/run/netns/{name}");
    let target =
        File::open(&path).map_err(|e| format!("network namespace {name:?} ({path}): {e}"))?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("cannot enter network namespace {name:?}: {e} (needs root or CAP_SYS_ADMIN)")
    })?;
    Ok(Entered { original })
}

impl Drop for Entered {
    fn drop(&mut self) {
        if let Err(e) = setns(&self.original, CloneFlags::CLONE_NEWNET) {
            tracing::error!("cannot return to the original network namespace: {e}");
        }
    }
}

/// Runs `f` inside namespace `netns` (on a short-lived thread of its own, so that nothing else
/// ever runs in the namespace by accident), or right here when `None`.
pub fn within<T: Send>(
    netns: Option<&str>,
    f: impl FnOnce() -> Result<T, PluginError> + Send,
) -> Result<T, PluginError> {
    let Some(name) = netns else {
        return f();
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let _entered = enter(name).map_err(|e| PluginError::usage("--input-pfring", e))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(PluginError::Runtime(
                    "the thread opening the ring panicked".into(),
                ))
            })
    })
}
