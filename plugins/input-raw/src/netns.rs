//! Entering a named network namespace (`ip netns add NAME`) just long enough to open a socket.

use nix::sched::{setns, CloneFlags};
use std::fs::File;

/// While alive, the calling thread is inside the namespace; dropping it switches back.
pub struct Entered {
    original: File,
}

/// Switches the calling thread into `/var/run/netns/NAME`.
pub fn enter(name: &str) -> Result<Entered, String> {
    let original = File::open("/proc/thread-self/ns/net")
        .map_err(|e| format!("cannot open this thread's network namespace: {e}"))?;
    let path = format!("/var/run/netns/{name}");
    let target =
        File::open(&path).map_err(|e| format!("network namespace {name:?} ({path}): {e}"))?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("cannot enter network namespace {name:?}: {e} (needs CAP_SYS_ADMIN)")
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

/// Runs `f` inside `netns` (or right here when `None`).
pub fn within<T>(netns: Option<&str>, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let _entered = match netns {
        Some(name) => Some(enter(name)?),
        None => None,
    };
    f()
}
