//! Where a request is handled. A request about one entity (an order, a fulfillment, a
//! SKU-location, a catalog entry being created) is handled by the node serving the entity's
//! partition: here, or forwarded to `keel.v1.fwd.{partition}.<subject>`, which only that node
//! subscribes to. Everything else (catalog reads, a SKU over all its locations) is answered
//! here, asking the serving nodes for what lives elsewhere.

use super::handlers;
use crate::actors::Hosts;
use crate::forward::{forward, Reply};
use crate::Error;
use keel_protocol::ErrorCode;
use std::sync::Arc;

/// Handles a request here or on the node serving its entity.
pub(crate) async fn dispatch(hosts: &Arc<Hosts>, subject: &str, payload: &[u8]) -> Reply {
    let Some(key) = keel_protocol::entities::of_request(subject, payload) else {
        return handle(hosts, subject, payload).await;
    };
    let partition = hosts.mesh.partitions.of(&key);
    match hosts.mesh.partitions.enter(partition) {
        Some(_work) => handle(hosts, subject, payload).await,
        None => {
            forward(
                &hosts.mesh.bus,
                partition,
                subject,
                keel_bus::Headers::new(),
                payload,
            )
            .await
        }
    }
}

/// Handles a request another node forwarded for `partition`.
pub(crate) async fn forwarded(
    hosts: &Arc<Hosts>,
    partition: u32,
    subject: &str,
    payload: &[u8],
) -> Reply {
    match hosts.mesh.partitions.enter(partition) {
        Some(_work) => handle(hosts, subject, payload).await,
        None => Err(Error::Moved(format!(
            "partition {partition} is not served by this node now"
        ))),
    }
}

/// Handles a request here. One that names a catalog entry this node has not heard of yet is
/// tried once more after catching up with the cluster's catalog (another node may just have
/// added it).
async fn handle(hosts: &Arc<Hosts>, subject: &str, payload: &[u8]) -> Reply {
    let first = handlers::dispatch(hosts, subject, payload).await;
    let catalog_miss = matches!(&first, Err(e) if matches!(
        e.code(),
        ErrorCode::UnknownSku | ErrorCode::UnknownLocation | ErrorCode::UnknownChannel
    ));
    match hosts.mesh.partitions.sharding() {
        Some(sharding) if catalog_miss => {
            sharding.catalog_caught_up().await;
            handlers::dispatch(hosts, subject, payload).await
        }
        _ => first,
    }
}
