//! Keys of entities in the store; they also name actors in the directories.

use keel_domain::{LocationId, OrderId, SkuId};

/// The store key of an order.
pub fn order(id: &OrderId) -> String {
    format!("o/{id}")
}

/// The store key of a SKU-location (`@` cannot occur in ids).
pub fn sku_location(sku: &SkuId, location: &LocationId) -> String {
    format!("s/{sku}@{location}")
}

/// The store key of a cart hold.
pub fn hold(id: &keel_domain::HoldId) -> String {
    format!("h/{id}")
}

/// The store key of a warehouse node.
pub fn warehouse(location: &LocationId) -> String {
    format!("w/{location}")
}

/// Marker keys of orders whose allocation was interrupted, scanned at start-up.
pub const ALLOCATING_PREFIX: &str = "allocating/";

/// The marker key of an order being allocated.
pub fn allocating(id: &OrderId) -> String {
    format!("{ALLOCATING_PREFIX}{id}")
}

/// Milliseconds since the Unix epoch: the time stamped on ledger entries and orders.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
