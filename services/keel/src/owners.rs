//! Where the HTTP gateway sends a request about one entity: straight to the subject of the
//! node serving the entity's partition (`keel.v1.fwd.{partition}.<subject>`), one hop instead
//! of a node picked by the queue group forwarding it there.

use keel_cluster::{Coordinator, Partitioning};
use keel_gateway::Owner;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// How often a gateway that started before its cluster looks for it again.
const OBSERVE_EVERY: Duration = Duration::from_secs(2);

/// Owners by `partition_of` (a node knows its cluster's partitioning).
pub fn by(partition_of: impl Fn(&str) -> u32 + Send + Sync + 'static) -> Owner {
    Arc::new(move |subject: &str, body: &[u8]| owner(subject, body, &partition_of))
}

/// The owner's subject for a request about one entity.
fn owner(subject: &str, body: &[u8], partition_of: impl Fn(&str) -> u32) -> Option<String> {
    let key = keel_protocol::entities::of_request(subject, body)?;
    Some(keel_protocol::forwarded_subject(
        partition_of(&key),
        subject,
    ))
}

/// Whether the partitioning is known yet.
pub type Known = Arc<dyn Fn() -> bool + Send + Sync>;

/// Owners once the cluster's partitioning is known, read from the cluster on this NATS
/// system (a gateway may start before any node created it: until then, requests go on the API
/// subjects), and whether it is known. Must run inside a tokio runtime.
pub fn observed(client: async_nats::Client) -> (Owner, Known) {
    let known: Arc<OnceLock<Partitioning>> = Arc::new(OnceLock::new());
    let learning = Arc::clone(&known);
    tokio::spawn(async move {
        let js = async_nats::jetstream::new(client);
        loop {
            match Coordinator::observe(&js).await {
                Ok(coordinator) => {
                    let partitioning = coordinator.partitioning();
                    tracing::info!(
                        partitions = partitioning.count(),
                        "requests go straight to their partition's node"
                    );
                    let _ = learning.set(partitioning);
                    return;
                }
                Err(e) => tracing::debug!(error = %e, "no cluster to route by yet"),
            }
            tokio::time::sleep(OBSERVE_EVERY).await;
        }
    });
    let is_known: Known = {
        let known = Arc::clone(&known);
        Arc::new(move || known.get().is_some())
    };
    let owners: Owner = Arc::new(move |subject: &str, body: &[u8]| {
        let partitioning = known.get()?;
        owner(subject, body, |key| partitioning.of(key))
    });
    (owners, is_known)
}
