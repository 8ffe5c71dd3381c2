//! Request bodies as clients send them: raw strings and signed numbers, so that every rule is
//! checked by the domain and reported with its own code (not as a JSON type error).

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Number;

/// Parses a request body; anything that is not the expected JSON is `malformed_request`.
pub(crate) fn parse<T: DeserializeOwned>(payload: &[u8]) -> Result<T, keel_domain::Error> {
    serde_json::from_slice(payload).map_err(|e| keel_domain::Error::Malformed(e.to_string()))
}

/// A quantity as sent: any JSON number, so that `1.5` or `1e30` is `invalid_quantity` (a rule
/// of quantities), not `malformed_request` (a type error).
pub(crate) fn whole(n: &Number) -> Result<i64, keel_domain::Error> {
    n.as_i64().ok_or_else(|| {
        keel_domain::Error::InvalidQuantity(format!("{n} is not a whole number in range"))
    })
}

#[derive(Deserialize)]
pub(crate) struct Location {
    pub id: String,
    pub name: String,
    pub region: String,
    pub priority: i64,
}

#[derive(Deserialize)]
pub(crate) struct Channel {
    pub id: String,
    pub name: String,
    pub locations: Vec<String>,
}

#[derive(Deserialize)]
pub(crate) struct Sku {
    pub id: String,
    pub name: String,
}

#[derive(Deserialize)]
pub(crate) struct Receipt {
    pub receipt_id: String,
    pub sku: String,
    pub location: String,
    pub quantity: Number,
}

#[derive(Deserialize)]
pub(crate) struct Adjustment {
    pub adjustment_id: String,
    pub sku: String,
    pub location: String,
    pub delta: Number,
    pub reason: String,
}

#[derive(Deserialize)]
pub(crate) struct OrderLine {
    pub sku: String,
    pub quantity: Number,
}

#[derive(Deserialize)]
pub(crate) struct ShipTo {
    pub region: String,
}

#[derive(Deserialize)]
pub(crate) struct Order {
    pub id: String,
    pub channel: String,
    pub lines: Vec<OrderLine>,
    pub ship_to: ShipTo,
}

/// `{"id"}`: gets, cancels.
#[derive(Deserialize)]
pub(crate) struct ById {
    pub id: String,
}

/// `{"sku"}`.
#[derive(Deserialize)]
pub(crate) struct BySku {
    pub sku: String,
}

/// `{"sku","location"}`.
#[derive(Deserialize)]
pub(crate) struct BySkuLocation {
    pub sku: String,
    pub location: String,
}

/// `{"sku","location","from"?,"after"?,"limit"?}`: a page of a SKU-location's ledger (`from` a
/// sequence number), reservations (`after` an order id) or backorder queue (`after` a queue
/// ticket). Numbers may come as decimal strings (the gateway passes query parameters so).
#[derive(Deserialize)]
pub(crate) struct Page {
    pub sku: String,
    pub location: String,
    #[serde(default)]
    pub from: Option<serde_json::Value>,
    #[serde(default)]
    pub after: Option<serde_json::Value>,
    #[serde(default)]
    pub limit: Option<serde_json::Value>,
}

/// Reads an optional whole number given as a JSON number or a decimal string.
pub(crate) fn opt_u64(
    value: Option<&serde_json::Value>,
    name: &str,
) -> Result<Option<u64>, keel_domain::Error> {
    let parsed = match value {
        None | Some(serde_json::Value::Null) => return Ok(None),
        Some(serde_json::Value::Number(n)) => n.as_u64(),
        Some(serde_json::Value::String(s)) => s.parse().ok(),
        Some(_) => None,
    };
    parsed
        .map(Some)
        .ok_or_else(|| keel_domain::Error::Malformed(format!("{name} must be a whole number")))
}

/// `{"id","step"}`.
#[derive(Deserialize)]
pub(crate) struct Confirmation {
    pub id: String,
    pub step: String,
}
