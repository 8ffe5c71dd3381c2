//! Keyed shards: unbounded queues, each drained in order by one task on an actor thread, and
//! an item goes to the shard its key hashes to, so the items of one key are handled in the
//! order they were queued while different keys proceed side by side.

use std::future::Future;
use std::hash::{BuildHasher, Hash, RandomState};
use tokio::sync::mpsc;

/// Shards per actor thread: enough work in flight to hide a flush (or a publish) each.
const SHARDS_PER_WORKER: usize = 16;

pub(crate) struct Shards<T> {
    queues: Vec<mpsc::UnboundedSender<T>>,
    hasher: RandomState,
}

impl<T: Send + 'static> Shards<T> {
    /// Starts [`SHARDS_PER_WORKER`] shards per actor thread; `drain` makes the task that
    /// empties one queue.
    pub(crate) fn start<F>(
        arbiters: &[actix::ArbiterHandle],
        mut drain: impl FnMut(mpsc::UnboundedReceiver<T>) -> F,
    ) -> Shards<T>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let queues = arbiters
            .iter()
            .cycle()
            .take(arbiters.len() * SHARDS_PER_WORKER)
            .map(|arbiter| {
                let (tx, rx) = mpsc::unbounded_channel();
                arbiter.spawn(drain(rx));
                tx
            })
            .collect();
        Shards {
            queues,
            hasher: RandomState::new(),
        }
    }

    /// Queues `item` on the shard of `key`; gives it back when the shard has stopped (the
    /// node is stopping).
    pub(crate) fn send(&self, key: &(impl Hash + ?Sized), item: T) -> Result<(), T> {
        let shard = self.hasher.hash_one(key) as usize % self.queues.len();
        self.queues[shard].send(item).map_err(|e| e.0)
    }
}
