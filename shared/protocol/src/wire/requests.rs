//! The bodies of the request-reply API, one per `keel.v1.api.<resource>.<verb>` subject (the
//! HTTP gateway sends the same bodies; see docs/http-api.md).
//!
//! Fields come raw (strings, any JSON number) so that the node checks every rule itself and
//! answers its own code: an id breaking the id rule is `invalid_id`, a quantity of `1.5` is
//! `invalid_quantity`, not a JSON type error. The schemas describe the rules.

use super::rules::{self, ID_PATTERN};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Number;

/// Creates a warehouse location (`keel.v1.api.locations.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateLocation {
    /// The location id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub id: String,
    /// A human-readable name, 1–200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The region it ships from; orders shipping to this region prefer it.
    #[schemars(length(min = 1, max = 200))]
    pub region: String,
    /// Sourcing preference among equally able locations: lower wins.
    #[schemars(range(min = 0, max = 1000))]
    pub priority: i64,
}

/// Creates a sales channel (`keel.v1.api.channels.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateChannel {
    /// The channel id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub id: String,
    /// A human-readable name, 1–200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// The locations that may serve it, in preference order; each must exist.
    #[schemars(length(min = 1), inner(regex(pattern = ID_PATTERN)))]
    pub locations: Vec<String>,
}

/// Creates a SKU (`keel.v1.api.skus.create`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateSku {
    /// The SKU id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub id: String,
    /// A human-readable name, 1–200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
}

/// Receives stock into `on_hand` (`keel.v1.api.inventory.receipt`); idempotent by
/// `receipt_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Receipt {
    /// The receipt's id, chosen by the client.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub receipt_id: String,
    /// The SKU received.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub sku: String,
    /// Where it was received.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub location: String,
    /// How many units: a whole number from 1 to 1,000,000,000.
    #[schemars(with = "i64", range(min = 1, max = 1_000_000_000))]
    pub quantity: Number,
}

/// Changes `on_hand` by a signed delta (`keel.v1.api.inventory.adjust`); idempotent by
/// `adjustment_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Adjustment {
    /// The adjustment's id, chosen by the client.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub adjustment_id: String,
    /// The SKU adjusted.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub sku: String,
    /// Where.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub location: String,
    /// The change: a non-zero whole number within ±1,000,000,000.
    #[schemars(with = "i64", range(min = -1_000_000_000, max = 1_000_000_000))]
    pub delta: Number,
    /// Why (e.g. `cycle count`), 1–200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub reason: String,
}

/// Places an order (`keel.v1.api.orders.place`); idempotent by `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceOrder {
    /// The order id, chosen by the channel.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub id: String,
    /// The channel that captured it.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub channel: String,
    /// 1–100 lines, each SKU at most once.
    #[schemars(length(min = 1, max = 100))]
    pub lines: Vec<PlaceOrderLine>,
    /// Where it ships to.
    pub ship_to: ShipTo,
    /// A cart hold whose units the order takes (its channel and lines must be the hold's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = ID_PATTERN))]
    pub hold: Option<String>,
}

/// Places a cart hold (`keel.v1.api.holds.place`); idempotent by `id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceHold {
    /// The hold id, chosen by the storefront.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub id: String,
    /// The channel the cart belongs to.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub channel: String,
    /// 1–100 lines, each SKU at most once.
    #[schemars(length(min = 1, max = 100))]
    pub lines: Vec<PlaceOrderLine>,
    /// Where the cart would ship to (steers sourcing as for an order).
    pub ship_to: ShipTo,
    /// How long the units stay aside: 1–86,400 seconds.
    #[schemars(with = "i64", range(min = 1, max = 86_400))]
    pub ttl_secs: Number,
}

/// One line of an order to place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct PlaceOrderLine {
    /// The SKU ordered.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub sku: String,
    /// How many units: a whole number from 1 to 1,000,000,000.
    #[schemars(with = "i64", range(min = 1, max = 1_000_000_000))]
    pub quantity: Number,
}

/// Where an order ships to; the region steers sourcing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ShipTo {
    /// The destination region, 1–200 characters.
    #[schemars(length(min = 1, max = 200))]
    pub region: String,
}

/// Names one resource by its id: gets (locations, channels, SKUs, orders, fulfillments) and
/// order cancels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ById {
    /// The resource's id (a fulfillment id is `{order}-F{n}`).
    pub id: String,
}

/// Names a SKU: its positions at every location (`keel.v1.api.inventory.get`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BySku {
    /// The SKU id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub sku: String,
}

/// Names one SKU-location: its position (`keel.v1.api.inventory.position`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct BySkuLocation {
    /// The SKU id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub sku: String,
    /// The location id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub location: String,
}

/// Asks for a page of one SKU-location's ledger (`from` a sequence number), reservations
/// (`after` an order id) or backorder queue (`after` a queue ticket). Numbers may come as
/// decimal strings, as the gateway passes query parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Page {
    /// The SKU id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub sku: String,
    /// The location id.
    #[schemars(regex(pattern = ID_PATTERN))]
    pub location: String,
    /// Ledger: the sequence number the page starts at (default 0).
    #[serde(default)]
    #[schemars(schema_with = "rules::optional_whole")]
    pub from: Option<serde_json::Value>,
    /// Reservations: the order id to continue after; backorders: the queue ticket to
    /// continue after (default: from the start).
    #[serde(default)]
    #[schemars(schema_with = "rules::optional_cursor")]
    pub after: Option<serde_json::Value>,
    /// At most this many entries (defaults and ceilings per subject: docs/http-api.md).
    #[serde(default)]
    #[schemars(schema_with = "rules::optional_whole")]
    pub limit: Option<serde_json::Value>,
}

/// Confirms a warehouse step of a fulfillment (`keel.v1.api.fulfillments.confirm`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Confirmation {
    /// The fulfillment id, `{order}-F{n}`.
    pub id: String,
    /// The step reached: steps follow picked → packed → shipped → delivered.
    #[schemars(extend("enum" = ["picked", "packed", "shipped", "delivered"]))]
    pub step: String,
}
