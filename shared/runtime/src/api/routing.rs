//! Where a request is handled. A request about one entity (an order, a fulfillment, a
//! SKU-location, a catalog entry being created) is handled by the node serving the entity's
//! partition: here, or forwarded to `keel.v1.fwd.{partition}.<subject>`, which only that node
//! subscribes to. Everything else (catalog reads, a SKU over all its locations) is answered
//! here, asking the serving nodes for what lives elsewhere.

use super::handlers::{self, Reply};
use crate::router::Router;
use crate::Error;
use keel_domain::{ErrorCode, FulfillmentId, HoldId, LocationId, OrderId, SkuId};
use keel_protocol::{subjects as s, ReplyStatus};
use serde_json::Value;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a forwarded request keeps trying while its partition has no serving node (a
/// hand-off, or a lost node whose lease has yet to lapse), before it answers `unavailable`.
const FORWARD_BUDGET: Duration = Duration::from_secs(8);
/// The longest pause between two tries.
const FORWARD_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Handles a request here or on the node serving its entity.
pub(crate) async fn dispatch(router: &Arc<Router>, subject: &str, payload: &[u8]) -> Reply {
    let Some(key) = entity_key(subject, payload) else {
        return handle(router, subject, payload).await;
    };
    let partition = router.partitions.of(&key);
    match router.partitions.enter(partition) {
        Some(_work) => handle(router, subject, payload).await,
        None => forward(router, partition, subject, payload).await,
    }
}

/// Handles a request another node forwarded for `partition`.
pub(crate) async fn forwarded(
    router: &Arc<Router>,
    partition: u32,
    subject: &str,
    payload: &[u8],
) -> Reply {
    match router.partitions.enter(partition) {
        Some(_work) => handle(router, subject, payload).await,
        None => Err(Error::Moved(format!(
            "partition {partition} is not served by this node now"
        ))),
    }
}

/// Handles a request here. One that names a catalog entry this node has not heard of yet is
/// tried once more after catching up with the cluster's catalog (another node may just have
/// added it).
async fn handle(router: &Arc<Router>, subject: &str, payload: &[u8]) -> Reply {
    let first = handlers::dispatch(router, subject, payload).await;
    let catalog_miss = matches!(&first, Err(e) if matches!(
        e.code(),
        ErrorCode::UnknownSku | ErrorCode::UnknownLocation | ErrorCode::UnknownChannel
    ));
    match router.partitions.sharding() {
        Some(sharding) if catalog_miss => {
            sharding.catalog_caught_up().await;
            handlers::dispatch(router, subject, payload).await
        }
        _ => first,
    }
}

/// Sends a request to the node serving `partition` and answers its reply, trying again
/// while nobody serves the partition (for up to [`FORWARD_BUDGET`]): every write is
/// idempotent, so a repeat is harmless.
pub(crate) async fn forward(
    router: &Router,
    partition: u32,
    subject: &str,
    payload: &[u8],
) -> Reply {
    let to = format!("{}{subject}", keel_protocol::forward_prefix(partition));
    let deadline = Instant::now() + FORWARD_BUDGET;
    let mut backoff = Duration::from_millis(5);
    loop {
        let mut headers = keel_bus::Headers::new();
        keel_telemetry::inject(&tracing::Span::current(), &mut headers);
        let left = deadline.saturating_duration_since(Instant::now());
        let answered = router
            .bus
            .request(&to, headers, payload.to_vec().into(), left.max(backoff))
            .await;
        let outcome = match answered {
            Ok(reply) => decode(&reply),
            Err(keel_bus::Error::NoResponders(_)) => Err(Error::Moved(format!(
                "no node serves partition {partition} now"
            ))),
            Err(e) => Err(Error::from(e)),
        };
        let retry = match &outcome {
            Err(Error::Remote { code, .. }) => *code == ErrorCode::Unavailable,
            Err(Error::Moved(_)) => true,
            _ => false,
        };
        if !retry || Instant::now() + backoff >= deadline {
            return outcome;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(FORWARD_BACKOFF_MAX);
    }
}

/// A reply from another node, as this node would have answered it.
fn decode(reply: &keel_bus::Message) -> Reply {
    let body: Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| Error::Internal(format!("a node answered something that is not JSON: {e}")))?;
    match ReplyStatus::from_headers(&reply.headers) {
        ReplyStatus::Error(code) => Err(Error::Remote {
            code,
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("the serving node failed")
                .to_owned(),
        }),
        status => Ok((status, body)),
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
