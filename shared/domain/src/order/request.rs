use crate::catalog::validate_name;
use crate::quantity::quantity;
use crate::{ChannelId, Error, HoldId, OrderId, SkuId};
use serde::{Deserialize, Serialize};

/// The most lines one order may have.
pub const MAX_ORDER_LINES: usize = 100;

/// Where an order ships to; the region steers sourcing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShipTo {
    pub region: String,
}

/// One requested line: a SKU and how many.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestedLine {
    pub sku: SkuId,
    pub quantity: u64,
}

/// A validated order as a channel captured it. Placing the same id again must carry an equal
/// request (idempotency); a different one is a conflict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderRequest {
    pub id: OrderId,
    pub channel: ChannelId,
    pub lines: Vec<RequestedLine>,
    pub ship_to: ShipTo,
    /// The cart hold whose units the order takes instead of reserving its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<HoldId>,
}

/// Validates requested lines: 1–[`MAX_ORDER_LINES`], each SKU once, positive quantities.
pub(crate) fn parse_lines(lines: &[(&str, i64)]) -> Result<Vec<RequestedLine>, Error> {
    if lines.is_empty() || lines.len() > MAX_ORDER_LINES {
        return Err(Error::Malformed(format!(
            "an order has 1-{MAX_ORDER_LINES} lines"
        )));
    }
    let mut parsed: Vec<RequestedLine> = Vec::with_capacity(lines.len());
    for (sku, qty) in lines {
        let sku = SkuId::parse(sku)?;
        if parsed.iter().any(|l| l.sku == sku) {
            return Err(Error::Malformed(format!("sku {sku} appears on two lines")));
        }
        parsed.push(RequestedLine {
            sku,
            quantity: quantity(*qty)?,
        });
    }
    Ok(parsed)
}

impl OrderRequest {
    /// Validates the raw fields of an order request.
    pub fn new(
        id: &str,
        channel: &str,
        lines: &[(&str, i64)],
        region: &str,
    ) -> Result<Self, Error> {
        let id = OrderId::parse(id)?;
        let channel = ChannelId::parse(channel)?;
        validate_name("ship_to.region", region)?;
        Ok(OrderRequest {
            id,
            channel,
            lines: parse_lines(lines)?,
            ship_to: ShipTo {
                region: region.to_owned(),
            },
            hold: None,
        })
    }

    /// The same request, placed on the units of `hold` (validated).
    pub fn on_hold(self, hold: &str) -> Result<Self, Error> {
        Ok(OrderRequest {
            hold: Some(HoldId::parse(hold)?),
            ..self
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_validated_field_by_field() {
        let ok = OrderRequest::new("o1", "web", &[("A", 1), ("B", 2)], "east").unwrap();
        assert_eq!(ok.lines.len(), 2);
        assert!(matches!(
            OrderRequest::new("o 1", "web", &[("A", 1)], "e"),
            Err(Error::InvalidId { .. })
        ));
        assert!(matches!(
            OrderRequest::new("o1", "web", &[], "e"),
            Err(Error::Malformed(_))
        ));
        let dup = OrderRequest::new("o1", "web", &[("A", 1), ("A", 1)], "e");
        assert!(matches!(dup, Err(Error::Malformed(_))));
        let zero = OrderRequest::new("o1", "web", &[("A", 0)], "e");
        assert!(matches!(zero, Err(Error::InvalidQuantity(_))));
    }
}
