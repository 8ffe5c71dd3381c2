//! What the node publishes on `keel.v1.evt.*` after every change. Each message is a snapshot of
//! the entity after the change, not a delta: a repeated message changes nothing, and the latest
//! one is the truth.

use super::replies::FulfillmentLine;
use super::status::{FulfillmentStatus, OrderStatus};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The payload of `keel.v1.evt.inventory.{location}.{sku}`: the position after the change.
pub use super::replies::Position as InventoryEvent;

/// The payload of `keel.v1.evt.order.{channel}.{order}`, published after every change of an
/// order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderEvent {
    /// The order id.
    pub id: String,
    /// The channel that captured it.
    pub channel: String,
    /// Its status after the change.
    pub status: OrderStatus,
    /// One more per change of the order, so that a subscriber can tell order and gaps.
    pub version: u64,
    /// Its fulfillments' statuses.
    pub fulfillments: Vec<OrderEventFulfillment>,
}

/// A fulfillment as an order event shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderEventFulfillment {
    /// The fulfillment id, `{order}-F{n}`.
    pub id: String,
    /// The location that ships it.
    pub location: String,
    /// Its status.
    pub status: FulfillmentStatus,
}

/// The payload of `keel.v1.evt.fulfillment.{location}.{fulfillment}`, published when a
/// fulfillment is released, accepted by its warehouse node, confirmed a step on, or cancelled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FulfillmentEvent {
    /// The fulfillment id, `{order}-F{n}`.
    pub id: String,
    /// The order it belongs to.
    pub order: String,
    /// The location that ships it.
    pub location: String,
    /// Its status after the change.
    pub status: FulfillmentStatus,
    /// What it ships.
    pub lines: Vec<FulfillmentLine>,
    /// Whether its warehouse node has accepted it.
    pub accepted: bool,
    /// The order's `version` after the change (see the order event).
    pub order_version: u64,
}
