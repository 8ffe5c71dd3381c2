//! The statuses messages carry, in their wire spelling (`snake_case`).

use keel_domain::order as domain;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An order's status, derived from its fulfillments (the least advanced active one) and its
/// backordered quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Allocation in progress.
    Received,
    /// Fully allocated, not yet accepted by every warehouse node.
    Allocated,
    /// Some units allocated, others still wait for stock.
    PartiallyAllocated,
    /// No active fulfillment: everything waits for stock.
    Backordered,
    /// Held (reserved: not produced yet).
    OnHold,
    /// Every fulfillment is accepted by its warehouse node, none picked yet.
    Released,
    /// The least advanced fulfillment is picked.
    Picking,
    /// The least advanced fulfillment is packed.
    Packed,
    /// Every active fulfillment has shipped (some may be delivered).
    Shipped,
    /// Every active fulfillment is delivered.
    Delivered,
    /// Cancelled, with nothing left to ship.
    Cancelled,
    /// Needs an operator (reserved: not produced yet).
    Exception,
}

impl From<domain::OrderStatus> for OrderStatus {
    fn from(status: domain::OrderStatus) -> Self {
        match status {
            domain::OrderStatus::Received => OrderStatus::Received,
            domain::OrderStatus::Allocated => OrderStatus::Allocated,
            domain::OrderStatus::PartiallyAllocated => OrderStatus::PartiallyAllocated,
            domain::OrderStatus::Backordered => OrderStatus::Backordered,
            domain::OrderStatus::OnHold => OrderStatus::OnHold,
            domain::OrderStatus::Released => OrderStatus::Released,
            domain::OrderStatus::Picking => OrderStatus::Picking,
            domain::OrderStatus::Packed => OrderStatus::Packed,
            domain::OrderStatus::Shipped => OrderStatus::Shipped,
            domain::OrderStatus::Delivered => OrderStatus::Delivered,
            domain::OrderStatus::Cancelled => OrderStatus::Cancelled,
            domain::OrderStatus::Exception => OrderStatus::Exception,
        }
    }
}

/// A fulfillment's status; warehouse confirmations move it released → picked → packed →
/// shipped → delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentStatus {
    /// Sent to its warehouse node, not yet picked.
    Released,
    /// Picked.
    Picked,
    /// Packed.
    Packed,
    /// Left the warehouse: the units are out of `on_hand` and `allocated`.
    Shipped,
    /// Delivered.
    Delivered,
    /// Cancelled before it shipped; its reservations are released.
    Cancelled,
}

impl From<domain::FulfillmentStatus> for FulfillmentStatus {
    fn from(status: domain::FulfillmentStatus) -> Self {
        match status {
            domain::FulfillmentStatus::Released => FulfillmentStatus::Released,
            domain::FulfillmentStatus::Picked => FulfillmentStatus::Picked,
            domain::FulfillmentStatus::Packed => FulfillmentStatus::Packed,
            domain::FulfillmentStatus::Shipped => FulfillmentStatus::Shipped,
            domain::FulfillmentStatus::Delivered => FulfillmentStatus::Delivered,
            domain::FulfillmentStatus::Cancelled => FulfillmentStatus::Cancelled,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The wire statuses spell every domain status exactly as the domain serializes it.
    #[test]
    fn statuses_keep_the_domain_spelling() {
        use domain::FulfillmentStatus as F;
        use domain::OrderStatus as O;
        for s in [
            O::Received,
            O::Allocated,
            O::PartiallyAllocated,
            O::Backordered,
            O::OnHold,
            O::Released,
            O::Picking,
            O::Packed,
            O::Shipped,
            O::Delivered,
            O::Cancelled,
            O::Exception,
        ] {
            let wire = serde_json::to_value(OrderStatus::from(s)).unwrap();
            assert_eq!(wire, serde_json::json!(s.as_str()));
        }
        for s in [
            F::Released,
            F::Picked,
            F::Packed,
            F::Shipped,
            F::Delivered,
            F::Cancelled,
        ] {
            let wire = serde_json::to_value(FulfillmentStatus::from(s)).unwrap();
            assert_eq!(wire, serde_json::json!(s.as_str()));
        }
    }
}

/// A cart hold's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Being placed: the SKU-locations are keeping units aside (a moment).
    Placing,
    /// Units are kept aside until `expires_at`.
    Active,
    /// Released on request: its units are available again.
    Released,
    /// Its time ran out: its units are available again.
    Expired,
    /// An order took its units.
    Converted,
}

impl From<keel_domain::hold::HoldStatus> for HoldStatus {
    fn from(status: keel_domain::hold::HoldStatus) -> Self {
        use keel_domain::hold::HoldStatus as S;
        match status {
            // A hold that was never placed is never shown; `placing` is the nearest truth.
            S::New | S::Placing => HoldStatus::Placing,
            S::Active => HoldStatus::Active,
            S::Released => HoldStatus::Released,
            S::Expired => HoldStatus::Expired,
            S::Converted => HoldStatus::Converted,
        }
    }
}
