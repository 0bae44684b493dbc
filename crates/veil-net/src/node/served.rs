//! The request ids a node is done with, so that a request id is never served twice in one
//! plan epoch.
//!
//! Why: masks are fixed by (epoch keys, request id, stage, map) (`crate::mask`). If a node
//! forgot a request and then served the same id again, a peer that replayed that request's
//! input would receive two masked contributions under the same mask, whose difference is the
//! difference of two plain partial sums. A node therefore refuses to open state for an id it
//! has dropped ([`Served`]).
//!
//! Request ids are the source's attempt ids, increasing within an epoch (a node, and its
//! [`Served`], live for one epoch). The set keeps the last [`SERVED_WINDOW`] ids it was given;
//! an id at or below the largest one it has let go of counts as served too, so memory stays
//! bounded. A legitimate request that old cannot still be in flight: at least
//! [`SERVED_WINDOW`] later requests have finished here meanwhile, far beyond
//! [`super::MAX_LIVE_REQUESTS`].

use std::collections::BTreeSet;

/// Request ids remembered one by one; older ones count as served wholesale.
pub const SERVED_WINDOW: usize = 16 * super::MAX_LIVE_REQUESTS;

/// Request ids a node has dropped the state of.
#[derive(Clone, Debug, Default)]
pub struct Served {
    /// The last [`SERVED_WINDOW`] ids dropped.
    ids: BTreeSet<u64>,
    /// Every id at or below this one counts as served (`None`: nothing let go of yet).
    floor: Option<u64>,
}

impl Served {
    /// Records that request `id`'s state was dropped.
    pub fn insert(&mut self, id: u64) {
        if self.floor.is_some_and(|f| id <= f) {
            return;
        }
        self.ids.insert(id);
        while self.ids.len() > SERVED_WINDOW {
            self.floor = self.ids.pop_first().max(self.floor);
        }
    }

    /// Whether request `id` was served here (or is older than the window).
    pub fn contains(&self, id: u64) -> bool {
        self.floor.is_some_and(|f| id <= f) || self.ids.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn served_ids_stay_served_and_memory_stays_bounded() {
        let mut s = Served::default();
        assert!(!s.contains(0) && !s.contains(7));
        s.insert(7);
        assert!(s.contains(7) && !s.contains(6) && !s.contains(8));
        for id in 100..100 + SERVED_WINDOW as u64 + 10 {
            s.insert(id);
        }
        assert_eq!(s.ids.len(), SERVED_WINDOW);
        // 7 and the ten oldest of the run left the window and count as served wholesale;
        // ids in between that were never served count too (they are that old).
        assert!(s.contains(7) && s.contains(50) && s.contains(109));
        assert!(s.contains(100 + SERVED_WINDOW as u64 + 9));
        assert!(!s.contains(100 + SERVED_WINDOW as u64 + 10));
    }
}
