//! Request bodies as clients send them: the typed messages of `keel_protocol::wire::requests`
//! (raw strings and any JSON number), so that every rule is checked by the domain and reported
//! with its own code (not as a JSON type error).

use serde::de::DeserializeOwned;
use serde_json::Number;

pub(crate) use keel_protocol::wire::requests::{
    Adjustment, ById, BySku, BySkuLocation, Confirmation, CreateChannel as Channel,
    CreateLocation as Location, CreateSku as Sku, Page, PlaceHold as Hold, PlaceOrder as Order,
    PlaceOrderLine, Receipt,
};

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

/// Lines as sent, with their quantities read as whole numbers.
pub(crate) fn lines(lines: &[PlaceOrderLine]) -> Result<Vec<(&str, i64)>, keel_domain::Error> {
    lines
        .iter()
        .map(|l| Ok((l.sku.as_str(), whole(&l.quantity)?)))
        .collect()
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
