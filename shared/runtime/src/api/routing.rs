//! Where a request is handled. A request about one entity (an order, a fulfillment, a
//! SKU-location, a catalog entry being created) is handled by the node serving the entity's
//! partition: here, or forwarded to `keel.v1.fwd.{partition}.<subject>`, which only that node
//! subscribes to. Everything else (catalog reads, a SKU over all its locations) is answered
//! here, asking the serving nodes for what lives elsewhere.

use super::handlers;
use crate::actors::Hosts;
use crate::forward::{forward, Reply};
use crate::Error;
use keel_domain::{ErrorCode, FulfillmentId, HoldId, LocationId, OrderId, SkuId};
use keel_protocol::subjects as s;
use serde_json::Value;
use std::sync::Arc;

/// Handles a request here or on the node serving its entity.
pub(crate) async fn dispatch(hosts: &Arc<Hosts>, subject: &str, payload: &[u8]) -> Reply {
    let Some(key) = entity_key(subject, payload) else {
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

/// The entity a request is about, if it is about one (a request this cannot read is handled
/// here, where it gets its error).
fn entity_key(subject: &str, payload: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(payload).ok()?;
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    match subject {
        s::ORDERS_PLACE | s::ORDERS_GET | s::ORDERS_CANCEL => {
            Some(crate::keys::order(&OrderId::parse(text("id")?).ok()?))
        }
        s::HOLDS_PLACE | s::HOLDS_GET | s::HOLDS_RELEASE => {
            Some(crate::keys::hold(&HoldId::parse(text("id")?).ok()?))
        }
        s::FULFILLMENTS_GET | s::FULFILLMENTS_CONFIRM => {
            let (_, order) = FulfillmentId::parse(text("id")?).ok()?;
            Some(crate::keys::order(&order))
        }
        s::INVENTORY_RECEIPT
        | s::INVENTORY_ADJUST
        | s::INVENTORY_POSITION
        | s::INVENTORY_LEDGER
        | s::INVENTORY_RESERVATIONS
        | s::INVENTORY_BACKORDERS => Some(crate::keys::sku_location(
            &SkuId::parse(text("sku")?).ok()?,
            &LocationId::parse(text("location")?).ok()?,
        )),
        // One writer per catalog entry: the same id created twice at once gets one answer.
        s::LOCATIONS_CREATE | s::CHANNELS_CREATE | s::SKUS_CREATE => {
            Some(format!("catalog/{subject}/{}", text("id")?))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_about_one_entity_are_keyed_by_it() {
        let key = |subject, body: &str| entity_key(subject, body.as_bytes());
        assert_eq!(key(s::ORDERS_GET, r#"{"id":"o-1"}"#), Some("o/o-1".into()));
        let fulfillment = key(
            s::FULFILLMENTS_CONFIRM,
            r#"{"id":"o-1-F1","step":"picked"}"#,
        );
        assert_eq!(fulfillment, key(s::ORDERS_CANCEL, r#"{"id":"o-1"}"#));
        assert!(fulfillment.is_some(), "a fulfillment lives with its order");
        assert_eq!(
            key(
                s::INVENTORY_RECEIPT,
                r#"{"sku":"A","location":"L","quantity":1}"#
            ),
            Some(crate::keys::sku_location(
                &SkuId::parse("A").unwrap(),
                &LocationId::parse("L").unwrap()
            ))
        );
        assert!(key(s::SKUS_CREATE, r#"{"id":"A","name":"a"}"#).is_some());
        assert_eq!(key(s::SKUS_LIST, "{}"), None, "answered where it arrives");
        assert_eq!(key(s::INVENTORY_GET, r#"{"sku":"A"}"#), None, "fanned out");
        assert_eq!(key(s::ORDERS_GET, "not json"), None, "gets its error here");
        assert_eq!(key(s::ORDERS_GET, r#"{"id":""}"#), None);
    }
}
