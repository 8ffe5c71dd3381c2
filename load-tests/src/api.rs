//! Wire types of Keel's public contract (`docs/http-api.md`).
//!
//! Request bodies borrow their strings so that a worker can build one per operation without
//! allocating; replies own theirs. Quantities in replies are `i64` on purpose: a buggy server
//! answering a negative bucket must show up as a verification violation, not as a decode error.

use serde::{Deserialize, Serialize};

/// `POST /v1/locations` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewLocation<'a> {
    /// Location id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Region used by sourcing ties (`east`, `west`, `central`).
    pub region: &'a str,
    /// Lower is preferred (0–1000).
    pub priority: u32,
}

/// `POST /v1/channels` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewChannel<'a> {
    /// Channel id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
    /// Ids of the locations serving the channel.
    pub locations: &'a [&'a str],
}

/// `POST /v1/skus` body.
#[derive(Debug, Clone, Serialize)]
pub struct NewSku<'a> {
    /// SKU id.
    pub id: &'a str,
    /// Display name.
    pub name: &'a str,
}

/// `POST /v1/inventory/receipts` body.
#[derive(Debug, Clone, Serialize)]
pub struct Receipt<'a> {
    /// Idempotency key of the receipt.
    pub receipt_id: &'a str,
    /// SKU id.
    pub sku: &'a str,
    /// Location id.
    pub location: &'a str,
    /// Units received.
    pub quantity: u64,
}

/// `POST /v1/orders` body.
#[derive(Debug, Clone, Serialize)]
pub struct PlaceOrder<'a> {
    /// Order id (idempotency key).
    pub id: &'a str,
    /// Channel id.
    pub channel: &'a str,
    /// Destination, used by sourcing ties.
    pub ship_to: ShipTo<'a>,
    /// Order lines; SKUs are distinct.
    pub lines: &'a [LineRequest<'a>],
}

/// The `ship_to` object of an order.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct ShipTo<'a> {
    /// Region of the destination.
    pub region: &'a str,
}

/// One requested order line.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct LineRequest<'a> {
    /// SKU id.
    pub sku: &'a str,
    /// Units ordered.
    pub quantity: u64,
}

/// An order as Keel answers it (`POST /v1/orders`, `GET /v1/orders/{id}`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Order {
    /// Order id.
    pub id: String,
    /// Channel id.
    #[serde(default)]
    pub channel: String,
    /// Derived order status (see [`ORDER_STATUSES`]).
    pub status: String,
    /// Lines with their allocation state.
    pub lines: Vec<OrderLine>,
    /// Fulfillments released for the order (including cancelled ones).
    #[serde(default)]
    pub fulfillments: Vec<Fulfillment>,
}

/// One line of an [`Order`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct OrderLine {
    /// SKU id.
    pub sku: String,
    /// Units ordered.
    pub quantity: i64,
    /// Units in active (not cancelled) fulfillments, shipped ones included.
    #[serde(default)]
    pub allocated: i64,
    /// Units still waiting for stock.
    #[serde(default)]
    pub backordered: i64,
    /// Units that left a warehouse.
    #[serde(default)]
    pub shipped: i64,
}

/// A fulfillment: the part of an order one location ships.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Fulfillment {
    /// `{order_id}-F{n}`.
    pub id: String,
    /// Location id.
    pub location: String,
    /// One of [`FULFILLMENT_STATUSES`].
    pub status: String,
    /// Units per SKU.
    pub lines: Vec<FulfillmentLine>,
}

/// One line of a [`Fulfillment`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct FulfillmentLine {
    /// SKU id.
    pub sku: String,
    /// Units.
    pub quantity: i64,
}

/// `GET /v1/inventory/{sku}/{location}`: a position with its reservations and backorders.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Position {
    /// SKU id.
    pub sku: String,
    /// Location id.
    pub location: String,
    /// Units physically present.
    pub on_hand: i64,
    /// Units reserved for released, not yet shipped fulfillments.
    pub allocated: i64,
    /// Units kept aside for cart holds (0 from a node without holds).
    #[serde(default)]
    pub held: i64,
    /// `max(0, on_hand − allocated − held − safety_stock)`.
    pub available: i64,
    /// Units in transit.
    #[serde(default)]
    pub in_transit: i64,
    /// Units in quarantine.
    #[serde(default)]
    pub quarantined: i64,
    /// Units awaiting return processing.
    #[serde(default)]
    pub return_pending: i64,
    /// Units kept back from `available`.
    #[serde(default)]
    pub safety_stock: i64,
    /// Reservations by order (the first page; see `reservations_next`).
    #[serde(default)]
    pub reservations: Vec<Holding>,
    /// The order to continue the reservations after, when there are more.
    #[serde(default)]
    pub reservations_next: Option<String>,
    /// Backorders by order, in queue order (the first page; see `backorders_next`).
    #[serde(default)]
    pub backorders: Vec<Holding>,
    /// The queue ticket to continue the backorders after, when there are more.
    #[serde(default)]
    pub backorders_next: Option<u64>,
}

/// A reservation or a backorder entry of a [`Position`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Holding {
    /// Order id.
    pub order: String,
    /// Units.
    pub quantity: i64,
}

/// One page of a paged list: the ledger (`?from=` a sequence number), a position's
/// reservations (`?after=` an order id) or its backorder queue (`?after=` a queue ticket).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Page<T, N> {
    /// Entries in the list's order.
    pub entries: Vec<T>,
    /// Where the next page starts, when there is one.
    #[serde(default = "Option::default")]
    pub next: Option<N>,
}

/// `GET /v1/inventory/{sku}/{location}/ledger`, all pages: entries oldest first.
pub type Ledger = Page<LedgerEntry, u64>;

/// One ledger entry (only the fields the verifier uses are decoded).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct LedgerEntry {
    /// Sequence number, increasing.
    pub seq: u64,
    /// One of [`LEDGER_MOVEMENTS`].
    pub movement: String,
    /// Change of `on_hand`.
    pub on_hand_delta: i64,
    /// Change of `allocated`.
    pub allocated_delta: i64,
    /// Change of `held` (0 from a node without holds).
    #[serde(default)]
    pub held_delta: i64,
}

/// The JSON error body every non-2xx reply carries.
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Inside [`ErrorBody`].
#[derive(Debug, Clone, Deserialize)]
pub struct ErrorDetail {
    /// Stable machine code, e.g. `unknown_sku`.
    pub code: String,
    /// Human message.
    #[serde(default)]
    pub message: String,
}

/// Every order status the contract defines.
pub const ORDER_STATUSES: &[&str] = &[
    "received",
    "allocated",
    "partially_allocated",
    "backordered",
    "on_hold",
    "released",
    "picking",
    "packed",
    "shipped",
    "delivered",
    "cancelled",
    "exception",
];

/// Every fulfillment status the contract defines.
pub const FULFILLMENT_STATUSES: &[&str] = &[
    "released",
    "picked",
    "packed",
    "shipped",
    "delivered",
    "cancelled",
];

/// Every ledger movement the contract defines.
pub const LEDGER_MOVEMENTS: &[&str] = &[
    "receipt",
    "adjustment",
    "reservation",
    "backorder_allocation",
    "release",
    "shipment",
    "hold",
    "hold_release",
    "hold_conversion",
];

/// A warehouse confirmation step (`POST /v1/fulfillments/{id}/{step}`), in contract order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// `picked`.
    Picked,
    /// `packed`.
    Packed,
    /// `shipped`: takes the units out of `on_hand` and `allocated`.
    Shipped,
    /// `delivered`.
    Delivered,
}

impl Step {
    /// The path segment and status name of the step.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Picked => "picked",
            Step::Packed => "packed",
            Step::Shipped => "shipped",
            Step::Delivered => "delivered",
        }
    }

    /// The step after this one, `None` after `delivered`.
    pub fn next(self) -> Option<Step> {
        match self {
            Step::Picked => Some(Step::Packed),
            Step::Packed => Some(Step::Shipped),
            Step::Shipped => Some(Step::Delivered),
            Step::Delivered => None,
        }
    }

    /// Progress rank of the step: `released` is 0, `picked` 1 … `delivered` 4.
    pub fn rank(self) -> u8 {
        self as u8 + 1
    }
}

/// Progress rank of a fulfillment status (`released` 0 … `delivered` 4); `None` for
/// `cancelled` and unknown statuses.
pub fn fulfillment_rank(status: &str) -> Option<u8> {
    match status {
        "released" => Some(0),
        "picked" => Some(1),
        "packed" => Some(2),
        "shipped" => Some(3),
        "delivered" => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_follow_the_contract_order() {
        let mut step = Some(Step::Picked);
        let mut seen = Vec::new();
        while let Some(s) = step {
            assert_eq!(fulfillment_rank(s.as_str()), Some(s.rank()));
            seen.push(s.as_str());
            step = s.next();
        }
        assert_eq!(seen, ["picked", "packed", "shipped", "delivered"]);
        assert_eq!(fulfillment_rank("released"), Some(0));
        assert_eq!(fulfillment_rank("cancelled"), None);
    }

    #[test]
    fn position_decodes_the_documented_shape() {
        let json = r#"{"sku":"S","location":"L","on_hand":5,"allocated":2,"available":3,
            "in_transit":0,"quarantined":0,"return_pending":0,"safety_stock":0,
            "reservations":[{"order":"o-1","quantity":2}],"backorders":[]}"#;
        let p: Position = serde_json::from_str(json).unwrap();
        assert_eq!((p.on_hand, p.allocated, p.available), (5, 2, 3));
        assert_eq!(p.reservations[0].order, "o-1");
    }
}
