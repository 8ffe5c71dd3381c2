//! Which partitions this node serves. In a cluster every entity key maps to a partition and
//! each partition is served by one node at a time (the cluster layer decides which, and tells
//! the node through [`crate::Node::serve_partition`] and [`crate::Node::hand_off`]); requests
//! and commands for a partition served elsewhere are routed there. A node outside a cluster
//! serves everything as partition 0.

use futures::future::{AbortHandle, BoxFuture};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How a cluster places entities, as the node needs to know it.
pub trait Sharding: Send + Sync + std::fmt::Debug + 'static {
    /// The partition of an entity key (stable, the same on every node).
    fn partition_of(&self, key: &str) -> u32;
    /// Resolves once this node's catalog holds every entry the cluster had when it was
    /// called (any node may add to the catalog; each follows the others' additions), or after
    /// a short bound.
    fn catalog_caught_up(&self) -> BoxFuture<'static, ()>;
    /// Whether this node's lease of `partition` is still valid by its own clock. A node that
    /// was paused past its lease must not act for the partition (publish what its decisions
    /// owe) until it renewed: another node may own it by now.
    fn lease_valid(&self, partition: u32) -> bool;
}

/// How long a hand-off waits for the work in flight on a partition.
pub(crate) const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A partition this node serves.
#[derive(Default)]
pub(crate) struct Served {
    /// Set when the hand-off starts: no new work is taken.
    draining: AtomicBool,
    in_flight: AtomicUsize,
    idle: Notify,
    /// What feeds the partition its work (request and command subscriptions), stopped at
    /// the hand-off.
    feeds: Mutex<Vec<AbortHandle>>,
    /// This node's lease epoch for the partition, which its command batches carry.
    epoch: AtomicU64,
}

/// One piece of work on a served partition (a request, a command, a resumed saga); the
/// hand-off waits for all of them.
pub(crate) struct Work(Option<Arc<Served>>);

impl Drop for Work {
    fn drop(&mut self) {
        if let Some(served) = &self.0 {
            if served.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
                served.idle.notify_waiters();
            }
        }
    }
}

/// The partitions this node serves.
pub(crate) struct Partitions {
    sharding: Option<Arc<dyn Sharding>>,
    served: RwLock<HashMap<u32, Arc<Served>>>,
}

impl Partitions {
    pub(crate) fn new(sharding: Option<Arc<dyn Sharding>>) -> Self {
        Partitions {
            sharding,
            served: RwLock::new(HashMap::new()),
        }
    }

    /// Whether partitions are spread over a cluster (else this node serves everything).
    pub(crate) fn clustered(&self) -> bool {
        self.sharding.is_some()
    }

    pub(crate) fn sharding(&self) -> Option<&Arc<dyn Sharding>> {
        self.sharding.as_ref()
    }

    /// The partition of an entity key (0 outside a cluster).
    pub(crate) fn of(&self, key: &str) -> u32 {
        self.sharding.as_ref().map_or(0, |s| s.partition_of(key))
    }

    /// Whether this node may act for `partition` by its own clock (always outside a cluster).
    pub(crate) fn lease_valid(&self, partition: u32) -> bool {
        self.sharding
            .as_ref()
            .is_none_or(|s| s.lease_valid(partition))
    }

    /// Whether this node takes work for `partition` now.
    pub(crate) fn serves(&self, partition: u32) -> bool {
        !self.clustered()
            || self
                .served
                .read()
                .get(&partition)
                .is_some_and(|s| !s.draining.load(Ordering::SeqCst))
    }

    /// Starts a piece of work on `partition`, if this node takes work for it now.
    pub(crate) fn enter(&self, partition: u32) -> Option<Work> {
        if !self.clustered() {
            return Some(Work(None));
        }
        let served = Arc::clone(self.served.read().get(&partition)?);
        served.in_flight.fetch_add(1, Ordering::SeqCst);
        // Checked after counting, so a hand-off that starts now waits for this work.
        if served.draining.load(Ordering::SeqCst) {
            drop(Work(Some(served)));
            return None;
        }
        Some(Work(Some(served)))
    }

    /// Starts serving `partition` at lease `epoch`; false when it is served already.
    pub(crate) fn add(&self, partition: u32, epoch: u64) -> bool {
        match self.served.write().entry(partition) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(free) => {
                let served = Served::default();
                served.epoch.store(epoch, Ordering::SeqCst);
                free.insert(Arc::new(served));
                true
            }
        }
    }

    /// This node took `partition`'s lease again, at `epoch`.
    pub(crate) fn set_epoch(&self, partition: u32, epoch: u64) {
        if let Some(served) = self.served.read().get(&partition) {
            served.epoch.store(epoch, Ordering::SeqCst);
        }
    }

    /// This node's epoch for `partition` while it serves it (draining included), else 0.
    pub(crate) fn epoch(&self, partition: u32) -> u64 {
        self.served
            .read()
            .get(&partition)
            .map_or(0, |served| served.epoch.load(Ordering::SeqCst))
    }

    /// Registers a task that feeds `partition` work, to stop at its hand-off.
    pub(crate) fn feed(&self, partition: u32, task: AbortHandle) {
        match self.served.read().get(&partition) {
            Some(served) => served.feeds.lock().push(task),
            None => task.abort(),
        }
    }

    /// Stops taking work for `partition`, stops its feeds and waits (up to
    /// [`DRAIN_TIMEOUT`]) for the work in flight; answers whether it all finished.
    pub(crate) async fn drain(&self, partition: u32) -> bool {
        let Some(served) = self.served.read().get(&partition).cloned() else {
            return true;
        };
        served.draining.store(true, Ordering::SeqCst);
        for feed in served.feeds.lock().drain(..) {
            feed.abort();
        }
        let finished = tokio::time::timeout(DRAIN_TIMEOUT, async {
            loop {
                let idle = served.idle.notified();
                if served.in_flight.load(Ordering::SeqCst) == 0 {
                    return;
                }
                idle.await;
            }
        })
        .await
        .is_ok();
        self.served.write().remove(&partition);
        finished
    }

    /// The partitions served now.
    pub(crate) fn served(&self) -> Vec<u32> {
        let mut served: Vec<u32> = self.served.read().keys().copied().collect();
        served.sort_unstable();
        served
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Mod4;
    impl Sharding for Mod4 {
        fn partition_of(&self, key: &str) -> u32 {
            u32::from(key.as_bytes()[0] % 4)
        }
        fn catalog_caught_up(&self) -> BoxFuture<'static, ()> {
            Box::pin(async {})
        }
        fn lease_valid(&self, _: u32) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn a_hand_off_waits_for_the_work_in_flight_and_takes_no_more() {
        let partitions = Arc::new(Partitions::new(Some(Arc::new(Mod4))));
        assert!(!partitions.serves(1) && partitions.enter(1).is_none());
        assert!(partitions.add(1, 3) && !partitions.add(1, 4), "served once");
        assert_eq!(partitions.epoch(1), 3);
        partitions.set_epoch(1, 5);
        assert_eq!(partitions.epoch(1), 5, "a lease taken again");
        let work = partitions.enter(1).expect("served");
        let draining = tokio::spawn({
            let partitions = Arc::clone(&partitions);
            async move { partitions.drain(1).await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!partitions.serves(1), "no new work once the hand-off began");
        assert!(partitions.enter(1).is_none());
        assert!(!draining.is_finished(), "it waits for the work in flight");
        drop(work);
        assert!(draining.await.unwrap(), "finished in time");
        assert!(partitions.served().is_empty());
        assert_eq!(partitions.epoch(1), 0, "not served: no epoch");
    }

    #[test]
    fn outside_a_cluster_everything_is_served() {
        let partitions = Partitions::new(None);
        assert!(partitions.serves(7) && partitions.enter(7).is_some());
        assert_eq!(partitions.of("o/x"), 0);
    }
}
