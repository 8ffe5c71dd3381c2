//! Keys of entities in the store; they also name actors in the directories.

/// The keys of entities, which place them in partitions (shared with whoever routes requests).
/// Markers (which live in their order's partition) too.
pub use keel_protocol::entities::{
    allocating, archive_due, hold, order, sku_location, warehouse, ALLOCATING_PREFIX,
    ARCHIVE_DUE_PREFIX,
};
