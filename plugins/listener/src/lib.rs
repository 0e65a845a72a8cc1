//! `shadowtap-listener`: what input-tcp and input-http share to stay safe against any peer.
//!
//! * [`Admission`]: a connection limit and a memory budget across a listener's connections.
//!   Each connection reserves its worst case (read buffer, largest head, a record growing to
//!   twice `--copy-buffer-size` while it fills) for as long as it is open; a connection that
//!   the limit or the budget cannot take is refused at once (input-http answers `503`) and
//!   counted as one message dropped for `connection limit` or `memory budget`. Refusing is
//!   the chosen policy: a refused output-tcp peer reconnects with back-off, so memory stays
//!   bounded and nothing is allocated for a peer that was not admitted.
//! * [`Secret`]: a token from a flag, an environment variable or a file, compared in constant
//!   time, never printed (its `Debug` shows `***`); [`redact_url`] hides the password of a
//!   `user:pass@` URL wherever one is logged.
//! * [`Warnings`]: one warning line, then at most one "N more like this" line per interval.
#![deny(missing_docs)]

mod admission;
mod secret;
mod warnings;

pub use admission::{Admission, Refusal, Ticket};
pub use secret::{redact_url, Secret, SecretError};
pub use warnings::Warnings;

/// Whether a read error only means "nothing yet": the poll timeout a listener's connections
/// read with (so they can notice a stop or an idle peer), or an interrupted call.
pub fn is_poll_timeout(error: &std::io::Error) -> bool {
    matches!(
        error.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

/// Counts a refused connection as one message in and dropped for the refusal's reason, and
/// warns (rate-limited), naming the peer.
pub fn refuse(
    counters: &shadowtap_api::Counters,
    warnings: &Warnings,
    peer: std::net::SocketAddr,
    refusal: Refusal,
) {
    counters.add_refused(refusal.reason(), 1);
    warnings.warn(|| format!("refused {peer}: {}", refusal.reason().as_str()));
}
