//! What each SKU-location could promise when its actor last changed.
//!
//! The reservation saga plans with these numbers instead of asking every (SKU, location) actor
//! of an order's channel for its position: one message per pair per attempt was the largest
//! share of an order's thread hand-offs. A number here is only a hint: the SKU-location actor
//! (the single writer of its stock) still decides every reservation, and a plan built on a stale
//! hint is settled by the saga like any plan that met a competing order.

use parking_lot::RwLock;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

const SHARDS: usize = 64;

/// Available units by SKU-location key, written by the SKU-location actors.
pub(crate) struct Availability {
    shards: Vec<RwLock<HashMap<String, u64>>>,
    hasher: RandomState,
}

impl Availability {
    pub(crate) fn new() -> Self {
        Availability {
            shards: (0..SHARDS).map(|_| RwLock::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &str) -> &RwLock<HashMap<String, u64>> {
        // Truncation is fine: the hash only picks a shard.
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// The last number the actor of `key` reported, if it has been active since the start.
    pub(crate) fn get(&self, key: &str) -> Option<u64> {
        self.shard(key).read().get(key).copied()
    }

    /// Records what the actor of `key` can promise now. Only that actor writes its stock, so
    /// the number stays true after it is passivated.
    pub(crate) fn set(&self, key: &str, available: u64) {
        let mut shard = self.shard(key).write();
        match shard.get_mut(key) {
            Some(known) => *known = available,
            None => {
                shard.insert(key.to_owned(), available);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_report_wins_and_unknown_keys_are_absent() {
        let a = Availability::new();
        assert_eq!(a.get("s/A@L"), None);
        a.set("s/A@L", 5);
        a.set("s/A@L", 3);
        assert_eq!(a.get("s/A@L"), Some(3));
        assert_eq!(a.get("s/B@L"), None);
    }
}
