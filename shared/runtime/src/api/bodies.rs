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

/// `{"id","step"}`.
#[derive(Deserialize)]
pub(crate) struct Confirmation {
    pub id: String,
    pub step: String,
}
