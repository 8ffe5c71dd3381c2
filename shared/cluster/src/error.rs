use crate::partition::Partition;

/// What can go wrong in the cluster layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// NATS or JetStream could not be reached or refused a request.
    #[error("cluster store unavailable: {0}")]
    Unavailable(String),
    /// The partition's lease is no longer this node's (it expired, or another node holds it).
    #[error("lease of partition {0} lost")]
    Lost(Partition),
    /// This node's settings disagree with the cluster's (e.g. the partition count).
    #[error("cluster configuration: {0}")]
    Config(String),
    /// Another writer added to a lane after what this node restored: restore the rest first.
    #[error("{lane:?} moved past sequence {head} while this node restored it")]
    Stale { lane: keel_store::Lane, head: u64 },
    /// A changelog record could not be applied to the local store.
    #[error("restoring from the changelog: {0}")]
    Restore(String),
    /// The node's local disk failed (its id, the record of a clean stop).
    #[error("{0}")]
    Disk(String),
    /// The node could not start or stop serving a partition.
    #[error("the node: {0}")]
    Node(String),
    /// A record in the cluster store could not be read.
    #[error("corrupt cluster record {key}: {reason}")]
    Corrupt { key: String, reason: String },
}

impl Error {
    pub(crate) fn disk(what: &str, path: &std::path::Path, e: std::io::Error) -> Error {
        Error::Disk(format!("{what} {}: {e}", path.display()))
    }

    pub(crate) fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
        Error::Unavailable(format!("{what}: {e}"))
    }
}
