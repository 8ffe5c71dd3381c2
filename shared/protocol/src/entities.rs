//! The key of each entity, which places it in a partition (a stable hash of the key: see
//! `keel_cluster::Partitioning`), and the entity a request is about. A node routes a request
//! to the node serving the entity's partition with these, and so can a gateway, in one hop.

use crate::subjects as s;
use keel_domain::{FulfillmentId, HoldId, LocationId, OrderId, SkuId};
use serde_json::Value;

/// The key of an order (its fulfillments live with it).
pub fn order(id: &OrderId) -> String {
    format!("{ORDER}{id}")
}

/// What every order's key begins with.
const ORDER: &str = "o/";

/// The key of a SKU-location (`@` cannot occur in ids).
pub fn sku_location(sku: &SkuId, location: &LocationId) -> String {
    format!("s/{sku}@{location}")
}

/// The key of a cart hold.
pub fn hold(id: &HoldId) -> String {
    format!("h/{id}")
}

/// The key of a warehouse node.
pub fn warehouse(location: &LocationId) -> String {
    format!("w/{location}")
}

/// Marker keys of closed orders by the time they closed, scanned by the archiver.
pub const ARCHIVE_DUE_PREFIX: &str = "archive/";

/// The marker key of an order closed at `closed_at` (zero-padded: they sort by time).
pub fn archive_due(closed_at: u64, id: &OrderId) -> String {
    format!("{ARCHIVE_DUE_PREFIX}{closed_at:020}/{id}")
}

/// Marker keys of orders whose allocation was interrupted, scanned at start-up.
pub const ALLOCATING_PREFIX: &str = "allocating/";

/// The marker key of an order being allocated.
pub fn allocating(id: &OrderId) -> String {
    format!("{ALLOCATING_PREFIX}{id}")
}

/// The entity whose partition a stored state key belongs to: a marker's order, else the key
/// itself (an entity's own key).
pub fn owner_of(state_key: &str) -> std::borrow::Cow<'_, str> {
    let marked = state_key.strip_prefix(ALLOCATING_PREFIX).or_else(|| {
        let rest = state_key.strip_prefix(ARCHIVE_DUE_PREFIX)?;
        Some(rest.split_once('/')?.1)
    });
    match marked {
        Some(id) => format!("{ORDER}{id}").into(),
        None => state_key.into(),
    }
}

/// The entity the request `payload` on API `subject` is about, if it is about one (an
/// order, a fulfillment, a SKU-location, a hold, a catalog entry being created). `None` for
/// the rest (lists, catalog reads, a SKU over all its locations) and for a request that cannot
/// be read (it gets its error wherever it is handled).
pub fn of_request(subject: &str, payload: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(payload).ok()?;
    let text = |field: &str| body.get(field).and_then(Value::as_str);
    match subject {
        s::ORDERS_PLACE | s::ORDERS_GET | s::ORDERS_CANCEL => {
            Some(order(&OrderId::parse(text("id")?).ok()?))
        }
        s::HOLDS_PLACE | s::HOLDS_GET | s::HOLDS_RELEASE => {
            Some(hold(&HoldId::parse(text("id")?).ok()?))
        }
        s::FULFILLMENTS_GET | s::FULFILLMENTS_CONFIRM => {
            let (_, owner) = FulfillmentId::parse(text("id")?).ok()?;
            Some(order(&owner))
        }
        s::INVENTORY_RECEIPT
        | s::INVENTORY_ADJUST
        | s::INVENTORY_POSITION
        | s::INVENTORY_LEDGER
        | s::INVENTORY_RESERVATIONS
        | s::INVENTORY_BACKORDERS => Some(sku_location(
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
        let key = |subject, body: &str| of_request(subject, body.as_bytes());
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
            Some(sku_location(
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

    #[test]
    fn a_marker_belongs_to_its_order() {
        let id = OrderId::parse("o-1").unwrap();
        assert_eq!(owner_of(&allocating(&id)), order(&id));
        assert_eq!(owner_of(&archive_due(17, &id)), order(&id));
        assert_eq!(owner_of(&order(&id)), order(&id));
        assert_eq!(owner_of("s/A@L"), "s/A@L");
    }
}
