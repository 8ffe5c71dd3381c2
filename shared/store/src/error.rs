/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// sled failed (I/O, corruption).
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    /// The entity was written by someone else since it was loaded: a stale writer.
    #[error("version conflict on {key}: expected {expected}, found {found}")]
    VersionConflict {
        key: String,
        expected: u64,
        found: u64,
    },
    /// A command id is already recorded (handled concurrently by another entity).
    #[error("command {0} was already handled")]
    AlreadyHandled(String),
    /// The fsync failed; nothing is known to be durable.
    #[error("flush failed: {0}")]
    Flush(String),
    /// Stored bytes the store wrote cannot be read back.
    #[error("corrupt store: {0}")]
    Corrupt(String),
    /// The replica could not make the commits durable (fenced out, or away).
    #[error("replica: {0}")]
    Replica(String),
    /// This node may not write the entity's partition (it is owned elsewhere, or moving):
    /// nothing was written; the caller may retry where the partition lives now.
    #[error("not written: {0}")]
    NotOwner(String),
    /// Compacting the store's files failed (see [`crate::compact`]); the store is unchanged.
    #[error("compaction: {0}")]
    Compaction(String),
    /// sled's settings file in the store's directory could not be read.
    #[error("store settings: {0}")]
    Conf(String),
    /// The store is closing.
    #[error("the store's flusher has stopped")]
    Closed,
}
