//! The connection limit and memory budget of one listener.

use shadowtap_api::Reason;
use std::sync::{Arc, Mutex};

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// As many connections as allowed are open.
    Connections,
    /// The memory budget cannot cover another connection.
    Memory,
}

impl Refusal {
    /// The ledger reason a refused connection is counted under.
    pub fn reason(self) -> Reason {
        match self {
            Refusal::Connections => Reason::ConnectionLimit,
            Refusal::Memory => Reason::MemoryBudget,
        }
    }
}

#[derive(Debug, Default)]
struct InUse {
    connections: usize,
    bytes: u64,
}

/// Admits connections while both the connection limit and the memory budget allow.
#[derive(Debug, Clone)]
pub struct Admission {
    max_connections: usize,
    max_memory: u64,
    in_use: Arc<Mutex<InUse>>,
}

impl Admission {
    /// At most `max_connections` connections holding `max_memory` bytes in all.
    pub fn new(max_connections: usize, max_memory: u64) -> Self {
        Admission {
            max_connections,
            max_memory,
            in_use: Arc::default(),
        }
    }

    /// Reserves one connection costing `bytes` at most, released when the ticket drops.
    pub fn admit(&self, bytes: u64) -> Result<Ticket, Refusal> {
        let mut in_use = self.in_use.lock().expect("admission lock");
        if in_use.connections >= self.max_connections {
            return Err(Refusal::Connections);
        }
        if in_use.bytes.saturating_add(bytes) > self.max_memory {
            return Err(Refusal::Memory);
        }
        in_use.connections += 1;
        in_use.bytes += bytes;
        Ok(Ticket {
            bytes,
            in_use: self.in_use.clone(),
        })
    }

    /// A usage error's message when `max_memory` cannot hold even one connection of `cost`.
    pub fn check_budget(max_memory: u64, cost: u64) -> Result<(), String> {
        if cost > max_memory {
            return Err(format!(
                "{max_memory} bytes cannot hold one connection ({cost} bytes: twice \
                 --copy-buffer-size and the read buffers); raise it or lower --copy-buffer-size"
            ));
        }
        Ok(())
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.in_use.lock().expect("admission lock").connections
    }
}

/// One admitted connection's reservation.
#[derive(Debug)]
pub struct Ticket {
    bytes: u64,
    in_use: Arc<Mutex<InUse>>,
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock().expect("admission lock");
        in_use.connections -= 1;
        in_use.bytes -= self.bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_connections_and_memory_and_releases() {
        let admission = Admission::new(2, 100);
        let a = admission.admit(60).unwrap();
        assert_eq!(admission.admit(60).unwrap_err(), Refusal::Memory);
        let b = admission.admit(40).unwrap();
        assert_eq!(admission.admit(0).unwrap_err(), Refusal::Connections);
        drop(a);
        drop(b);
        assert_eq!(admission.connections(), 0);
        assert!(admission.admit(100).is_ok());
        assert!(Admission::check_budget(10, 11).is_err());
        assert!(Admission::check_budget(11, 11).is_ok());
    }
}
