//! The policy every veil server applies to incoming connections before a peer is
//! authenticated, shared by the MPC servers and the runtime's gRPC servers:
//! - a TLS handshake must finish within [`HANDSHAKE_DEADLINE`];
//! - at most [`MAX_PENDING_HANDSHAKES`] handshakes run at once; a connection beyond them is
//!   closed at once (an unauthenticated flood costs a bounded amount of memory and tasks);
//! - an error of `accept` never stops a server: per-connection errors are skipped, anything
//!   else (out of file descriptors, out of memory) backs off for [`ACCEPT_BACKOFF`] and retries;
//! - refusals are counted per peer address and reported at the 1st, 2nd, 4th, 8th, ...
//!   ([`RefusalLog`]), so a flood cannot fill a log either.
//!
//! Key items: [`RefusalLog`], [`accept_error_is_per_connection`], [`HANDSHAKE_DEADLINE`],
//! [`MAX_PENDING_HANDSHAKES`], [`ACCEPT_BACKOFF`].

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

/// The longest an incoming connection may take to finish its TLS handshake.
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Most TLS handshakes a server runs at once.
pub const MAX_PENDING_HANDSHAKES: usize = 256;

/// Pause after an `accept` error that is not about one connection (e.g. no file descriptor
/// left) before accepting again.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Distinct peer addresses [`RefusalLog`] keeps counts for; beyond them every refusal is
/// counted under one overflow entry.
pub const TRACKED_PEERS: usize = 4096;

/// Whether an `accept` error concerns one connection only (skip it and accept the next at
/// once); any other error is answered with [`ACCEPT_BACKOFF`], never by stopping.
pub fn accept_error_is_per_connection(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    matches!(
        e.kind(),
        ConnectionAborted | ConnectionReset | BrokenPipe | Interrupted | WouldBlock | TimedOut
    )
}

/// Counts refusals per peer address and says which ones to report: the first of each
/// address, then the 2nd, 4th, 8th, ... (with the count so far). At most [`TRACKED_PEERS`]
/// addresses are tracked; the rest share one count, so memory stays bounded.
#[derive(Debug, Default)]
pub struct RefusalLog {
    counts: HashMap<IpAddr, u64>,
    overflow: u64,
}

impl RefusalLog {
    /// Counts one refusal from `from`; `Some(count)` when this one should be reported.
    pub fn count(&mut self, from: IpAddr) -> Option<u64> {
        let n = if let Some(n) = self.counts.get_mut(&from) {
            *n += 1;
            *n
        } else if self.counts.len() < TRACKED_PEERS {
            self.counts.insert(from, 1);
            1
        } else {
            self.overflow += 1;
            self.overflow
        };
        n.is_power_of_two().then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_reported_at_powers_of_two_per_peer() {
        let mut log = RefusalLog::default();
        let a: IpAddr = "10.0.0.1".parse().expect("ip");
        let b: IpAddr = "10.0.0.2".parse().expect("ip");
        let logged: Vec<u64> = (0..20).filter_map(|_| log.count(a)).collect();
        assert_eq!(logged, [1, 2, 4, 8, 16]);
        assert_eq!(log.count(b), Some(1));
    }

    #[test]
    fn the_log_tracks_a_bounded_number_of_peers() {
        let mut log = RefusalLog::default();
        for i in 0..(TRACKED_PEERS as u32 + 100) {
            log.count(IpAddr::from(i.to_be_bytes()));
        }
        assert_eq!(log.counts.len(), TRACKED_PEERS);
        assert_eq!(log.overflow, 100);
    }
}
