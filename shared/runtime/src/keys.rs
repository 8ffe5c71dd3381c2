//! Keys of entities in the store; they also name actors in the directories.

use keel_domain::OrderId;

/// The keys of entities, which place them in partitions (shared with whoever routes requests).
pub use keel_protocol::entities::{hold, order, sku_location, warehouse};

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
