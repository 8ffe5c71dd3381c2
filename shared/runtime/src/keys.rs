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
