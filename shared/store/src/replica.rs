//! The store's copy outside the node: every commit is also handed, as the record of
//! its writes, to a [`Replica`] that keeps it durably elsewhere (in a cluster, a JetStream
//! changelog per partition). sled then stays a cache the node can lose with its disk: a new
//! owner rebuilds a partition from the replica with [`crate::Store::apply_record`].

use std::future::Future;
use std::pin::Pin;

/// Which of the replica's logs a record belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    /// The partition of the entity that committed.
    Partition(u32),
    /// Reference data (SKUs, locations, channels), shared by every partition.
    Catalog,
}

/// What [`Replica::durable`] resolves to: `Err` with the reason when the records cannot be
/// made durable (this node is fenced out, or the replica is away).
pub type Durable = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;

/// A durable copy of the store's commits, kept outside the node.
pub trait Replica: Send + Sync + std::fmt::Debug + 'static {
    /// The partition an entity's state key belongs to (a marker key: its entity's).
    fn partition_of(&self, key: &str) -> u32;
    /// Queues a record (encoded writes, `record.rs`) on `lane`, keeping the order of the calls.
    /// It is called while the commit holds its entity's lock and before the commit touches
    /// the local copy, so it must not block.
    ///
    /// # Errors
    /// The reason, when this node may not write `lane` (it does not own the partition, or
    /// gave it away): the commit is then refused and changes nothing.
    fn append(&self, lane: Lane, record: Vec<u8>) -> Result<(), String>;
    /// Queues a record that nobody will wait for (the delivery of an outbox entry), which the
    /// replica may send later, with other records, or drop when the lane has moved on (a new
    /// owner then delivers the entry once more; receivers drop the repeat).
    fn append_unwaited(&self, lane: Lane, record: Vec<u8>) {
        let _ = self.append(lane, record);
    }
    /// Resolves once every record appended before the call is durable in the replica.
    fn durable(&self) -> Durable;
    /// Resolves once every record appended to `lane` before the call is durable (what one
    /// entity's commits so far need; other lanes may still be on their way).
    fn durable_on(&self, lane: Lane) -> Durable {
        let _ = lane;
        self.durable()
    }
}
