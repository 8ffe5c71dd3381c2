//! What the request-reply API answers (the HTTP gateway returns the same bodies).

use super::rules;
use super::status::{FulfillmentStatus, OrderStatus};
use crate::ErrorCode;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The stock of one SKU at one location. Also the payload of
/// `keel.v1.evt.inventory.{location}.{sku}`, published after every change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Position {
    /// The SKU id.
    pub sku: String,
    /// The location id.
    pub location: String,
    /// Sellable units physically on hand, allocated ones included.
    pub on_hand: u64,
    /// Units of `on_hand` reserved for orders.
    pub allocated: u64,
    /// Units of `on_hand` kept aside for cart holds (`allocated + held` never exceeds
    /// `on_hand`).
    pub held: u64,
    /// Available to promise: `max(0, on_hand − allocated − held − safety_stock)`.
    pub available: u64,
    /// Inbound units not yet received.
    pub in_transit: u64,
    /// Damaged or held for quality control: not sellable.
    pub quarantined: u64,
    /// Returned by customers, awaiting inspection.
    pub return_pending: u64,
    /// Units kept back from what channels may promise.
    pub safety_stock: u64,
}

/// Units of a position reserved for one order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Reservation {
    /// The order holding them.
    pub order: String,
    /// How many units.
    pub quantity: u64,
}

/// Units one order waits for at a position, first come first served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Backorder {
    /// The order waiting.
    pub order: String,
    /// How many units it still waits for.
    pub quantity: u64,
    /// Its place in the queue (lower is served first).
    pub ticket: u64,
}

/// A SKU and a number of units of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FulfillmentLine {
    /// The SKU id.
    pub sku: String,
    /// How many units.
    pub quantity: u64,
}

/// The part of an order one location ships (`keel.v1.api.fulfillments.get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Fulfillment {
    /// The fulfillment id, `{order}-F{n}`.
    pub id: String,
    /// The order it belongs to.
    pub order: String,
    /// The location that ships it.
    pub location: String,
    /// Its status.
    pub status: FulfillmentStatus,
    /// What it ships.
    pub lines: Vec<FulfillmentLine>,
}

/// An order with its derived status and per-line quantities (`keel.v1.api.orders.place`,
/// `.get`, `.cancel`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    /// The order id.
    pub id: String,
    /// The channel that captured it.
    pub channel: String,
    /// Its status.
    pub status: OrderStatus,
    /// Where it ships to.
    pub ship_to: super::requests::ShipTo,
    /// One per requested SKU, in request order.
    pub lines: Vec<OrderLine>,
    /// Its fulfillments, in the order they were created.
    pub fulfillments: Vec<OrderFulfillment>,
    /// When it was placed, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// One line of an order and where its units stand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderLine {
    /// The SKU id.
    pub sku: String,
    /// Units ordered.
    pub quantity: u64,
    /// Units in active (not cancelled) fulfillments.
    pub allocated: u64,
    /// Units still waiting for stock.
    pub backordered: u64,
    /// Units that have left a warehouse.
    pub shipped: u64,
}

/// A fulfillment as its order shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct OrderFulfillment {
    /// The fulfillment id, `{order}-F{n}`.
    pub id: String,
    /// The location that ships it.
    pub location: String,
    /// Its status.
    pub status: FulfillmentStatus,
    /// What it ships.
    pub lines: Vec<FulfillmentLine>,
}

/// A cart hold (`keel.v1.api.holds.place`, `.get`, `.release`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Hold {
    /// The hold id.
    pub id: String,
    /// The channel the cart belongs to.
    pub channel: String,
    /// Where it stands.
    pub status: super::status::HoldStatus,
    /// When it expires (or expired), in milliseconds since the Unix epoch.
    pub expires_at: u64,
    /// One per requested SKU, in request order.
    pub lines: Vec<HoldLine>,
    /// The order that took its units, once converted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
    /// When it was placed, in milliseconds since the Unix epoch.
    pub created_at: u64,
}

/// One line of a hold and what is kept aside for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HoldLine {
    /// The SKU id.
    pub sku: String,
    /// Units requested.
    pub quantity: u64,
    /// Units kept aside (less than `quantity` when stock was short; 0 once released or
    /// expired; for a converted hold, what it had kept for its order).
    pub held: u64,
}

/// The body of every error reply (`Keel-Status: error`), HTTP and bus alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// A stable machine code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    /// The code clients match on (the set only grows; HTTP statuses: docs/http-api.md).
    #[schemars(schema_with = "rules::error_code")]
    pub code: ErrorCode,
    /// For humans; its wording may change.
    pub message: String,
}
