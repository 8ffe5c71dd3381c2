//! Keel's cluster layer.
//!
//! - [`Partitioning`]: every entity maps by a stable hash of its key to one of a fixed number
//!   of partitions; partitions, not actors, are placed on nodes.
//! - [`placement::plan`]: the moves that spread partitions evenly over the members, a bounded
//!   number per round (pure, the same on every node).
//! - [`Coordinator`]: partition leases with epochs and member heartbeats in JetStream KV,
//!   written with revision compare-and-set; the epoch rises at every change of owner, so a
//!   stale owner's messages can be told apart and refused.
//! - [`changelog`]: every partition's durable copy in JetStream, written with a fencing
//!   sequence chain and replayed by a new owner.
//! - [`membership::Membership`]: a node's place in the cluster: it takes the partitions the
//!   plan gives it (restoring and claiming each, [`takeover`]), hands off the ones it moves
//!   away, renews its leases, and is fenced out when another node owns its partitions.
//! - [`ClusterStatus`]: what `keel cluster status` shows.

pub mod changelog;
mod error;
mod leases;
pub mod membership;
mod partition;
pub mod placement;
mod status;
pub mod takeover;

pub use error::Error;
pub use leases::{
    Coordinator, Held, JoinOptions, Lease, Member, Settings, EPOCHS_BUCKET, LEASES_BUCKET,
    MEMBERS_BUCKET,
};
pub use partition::{Partition, Partitioning, DEFAULT_PARTITIONS};
pub use status::{ClusterStatus, MOVES_PER_ROUND};
