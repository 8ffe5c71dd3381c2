use super::Position;
use crate::OrderId;
use serde::{Deserialize, Serialize};

/// What kind of stock movement a ledger entry records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    Receipt,
    Adjustment,
    Reservation,
    BackorderAllocation,
    Release,
    Shipment,
    /// Units kept aside for a cart hold (`held` grew).
    Hold,
    /// A hold gave units back (released or expired).
    HoldRelease,
    /// A hold's units became an order's reservation (`held` to `allocated`).
    HoldConversion,
}

/// One append-only entry of a SKU-location's stock ledger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerEntry {
    /// Position in this SKU-location's ledger, from 0 with no gaps.
    pub seq: u64,
    pub movement: Movement,
    /// The movement's own quantity (signed for adjustments).
    pub quantity: i64,
    pub on_hand_delta: i64,
    pub allocated_delta: i64,
    /// The change of the `held` bucket (0 in entries written before holds existed).
    #[serde(default)]
    pub held_delta: i64,
    pub reason: String,
    /// The source document: receipt, adjustment, order or fulfillment id.
    pub document: String,
    pub order: Option<OrderId>,
    /// Milliseconds since the Unix epoch, as given by the command.
    pub at: u64,
}

/// The sums of a ledger's deltas.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerTotals {
    pub on_hand: i64,
    pub allocated: i64,
    pub held: i64,
}

impl LedgerTotals {
    /// Whether these totals equal the buckets of `position` they account for.
    pub fn matches(&self, position: &Position) -> bool {
        i64::try_from(position.on_hand) == Ok(self.on_hand)
            && i64::try_from(position.allocated) == Ok(self.allocated)
            && i64::try_from(position.held) == Ok(self.held)
    }
}

/// Folds a ledger into the bucket totals it implies (conservation: they equal the position).
pub fn fold<'a>(entries: impl IntoIterator<Item = &'a LedgerEntry>) -> LedgerTotals {
    entries
        .into_iter()
        .fold(LedgerTotals::default(), |acc, e| LedgerTotals {
            on_hand: acc.on_hand + e.on_hand_delta,
            allocated: acc.allocated + e.allocated_delta,
            held: acc.held + e.held_delta,
        })
}
