//! Entering a named network namespace (`ip netns add NAME`) just long enough to open capture
//! sockets: a short-lived thread of its own enters `/var/run/netns/NAME`, so nothing else ever
//! runs inside the namespace by accident. Sockets keep the namespace they were opened in.

use nix::sched::{setns, CloneFlags};
use std::fs::File;

/// Runs `f` inside namespace `netns` on a thread of its own (or right here when `None`);
/// `Err` when the namespace cannot be entered.
pub fn within<T: Send>(netns: Option<&str>, f: impl FnOnce() -> T + Send) -> Result<T, String> {
    let Some(name) = netns else {
        return Ok(f());
    };
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                enter(name)?;
                Ok(f())
            })
            .join()
            .unwrap_or_else(|_| Err(format!("the thread working in namespace {name:?} panicked")))
    })
}

/// Moves the calling thread into the namespace (for good: the thread ends after its work).
fn enter(name: &str) -> Result<(), String> {
    let path = format!("/var/run/netns/{name}");
    let target =
        File::open(&path).map_err(|e| format!("network namespace {name:?} ({path}): {e}"))?;
    setns(&target, CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("cannot enter network namespace {name:?}: {e} (needs root or CAP_SYS_ADMIN)")
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn without_a_namespace_runs_here_and_a_missing_one_is_named() {
        assert_eq!(super::within(None, || 7), Ok(7));
        let err = super::within(Some("no-such-namespace-st"), || 7).unwrap_err();
        assert!(err.contains("no-such-namespace-st"), "{err}");
    }
}
