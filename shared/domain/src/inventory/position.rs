use serde::{Deserialize, Serialize};

/// The stock of one SKU at one location, in disjoint buckets.
///
/// `allocated` is the part of `on_hand` reserved for orders and `held` the part kept aside for
/// cart holds, so `allocated + held <= on_hand` always holds; the buckets are unsigned, so none
/// can go negative.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Sellable units physically on hand (including allocated ones).
    pub on_hand: u64,
    /// Units of `on_hand` reserved for orders.
    pub allocated: u64,
    /// Units of `on_hand` kept aside for cart holds (until they expire, are released or become
    /// an order's). Positions stored before holds existed read as 0.
    #[serde(default)]
    pub held: u64,
    /// Inbound units not yet received.
    pub in_transit: u64,
    /// Damaged or held for quality control: not sellable.
    pub quarantined: u64,
    /// Returned by customers, awaiting inspection.
    pub return_pending: u64,
    /// Units kept back from what channels may promise.
    pub safety_stock: u64,
}

impl Position {
    /// Available to promise: `on_hand − allocated − held − safety_stock`, never below zero.
    pub fn available(&self) -> u64 {
        // The deliberately broken build (tests/run) forgets the units already reserved, so
        // every reservation check passes while on_hand lasts: the verifiers must catch it.
        let reserved = if cfg!(feature = "fault-injection-oversell") {
            0
        } else {
            self.allocated
        };
        self.on_hand
            .saturating_sub(reserved)
            .saturating_sub(self.held)
            .saturating_sub(self.safety_stock)
    }
}
