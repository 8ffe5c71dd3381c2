//! What the tool knows it did: every acknowledged write, and every write whose outcome stayed
//! unknown (transport failure or `5xx` even after retrying with the same id). Verification
//! compares this against what the query API answers.

use std::collections::HashSet;

use crate::api::Step;
use crate::catalog::Catalog;
use crate::verify::{Expected, ExpectedOrder, ExpectedPosition};

/// A quantity the server acknowledged, plus a quantity that may or may not have been applied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bounds {
    /// Acknowledged units.
    pub acked: u64,
    /// Units whose write has an unknown outcome.
    pub unknown: u64,
}

impl Bounds {
    /// Exact bounds (nothing unknown).
    pub fn exact(acked: u64) -> Self {
        Bounds { acked, unknown: 0 }
    }

    /// The most that may have been applied.
    pub fn max(&self) -> u64 {
        self.acked + self.unknown
    }

    fn add(&mut self, o: &Bounds) {
        self.acked += o.acked;
        self.unknown += o.unknown;
    }
}

/// Whether the tool cancelled an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelState {
    /// Never asked (or the request was refused with a `4xx`).
    NotRequested,
    /// The cancel was acknowledged.
    Acknowledged,
    /// Asked, outcome unknown.
    Unknown,
}

/// A fulfillment the tool walked through the warehouse steps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkRecord {
    /// Fulfillment id.
    pub fulfillment: String,
    /// Highest step acknowledged.
    pub acked: Option<Step>,
    /// Highest step sent (acknowledged or not).
    pub attempted: Option<Step>,
}

/// An acknowledged order, as the tool placed it.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    /// Order id.
    pub id: String,
    /// Index into [`Catalog::channels`].
    pub channel: usize,
    /// `(sku index, quantity)` as placed.
    pub lines: Vec<(usize, u32)>,
    /// Whether the tool cancelled it.
    pub cancel: CancelState,
    /// Its fulfillments the tool walked.
    pub walks: Vec<WalkRecord>,
}

/// One worker's (or, merged, the whole run's) record of writes.
#[derive(Debug, Clone, Default)]
pub struct RunLog {
    /// Acknowledged orders.
    pub orders: Vec<OrderRecord>,
    /// Orders whose placement outcome stayed unknown: they may exist.
    pub unresolved_orders: Vec<String>,
    /// Orders refused with a `4xx` (they must not exist).
    pub rejected_orders: u64,
    /// Units received per slot ([`Catalog::slot`]).
    pub received: Vec<Bounds>,
    /// Units shipped per slot.
    pub shipped: Vec<Bounds>,
}

impl RunLog {
    /// An empty log for a catalog with `slots` SKU-locations.
    pub fn new(slots: usize) -> Self {
        RunLog {
            received: vec![Bounds::default(); slots],
            shipped: vec![Bounds::default(); slots],
            ..RunLog::default()
        }
    }

    /// Appends `other` (another worker's log) to `self`.
    pub fn merge(&mut self, other: RunLog) {
        self.orders.extend(other.orders);
        self.unresolved_orders.extend(other.unresolved_orders);
        self.rejected_orders += other.rejected_orders;
        for (a, b) in self.received.iter_mut().zip(&other.received) {
            a.add(b);
        }
        for (a, b) in self.shipped.iter_mut().zip(&other.shipped) {
            a.add(b);
        }
    }

    /// Units ordered (in acknowledged orders) of the SKUs whose index satisfies `is`.
    pub fn demand(&self, is: impl Fn(usize) -> bool) -> u64 {
        self.orders
            .iter()
            .flat_map(|o| &o.lines)
            .filter(|(sku, _)| is(*sku))
            .map(|&(_, q)| q as u64)
            .sum()
    }

    /// The verifier's input: every SKU-location of `catalog`, and the orders at indexes `sample`.
    pub fn expected(&self, catalog: &Catalog, sample: &[usize]) -> Expected {
        let positions = (0..catalog.slots())
            .map(|slot| {
                let (sku, loc) = catalog.unslot(slot);
                ExpectedPosition {
                    sku: catalog.skus[sku].clone(),
                    location: catalog.locations[loc].id.clone(),
                    received: self.received[slot],
                    shipped: self.shipped[slot],
                }
            })
            .collect();
        let orders = sample
            .iter()
            .map(|&i| {
                let o = &self.orders[i];
                ExpectedOrder {
                    id: o.id.clone(),
                    locations: catalog.channels[o.channel].location_ids.clone(),
                    lines: o
                        .lines
                        .iter()
                        .map(|&(sku, q)| (catalog.skus[sku].clone(), q as u64))
                        .collect(),
                    cancel: o.cancel,
                    walks: o.walks.clone(),
                }
            })
            .collect();
        let known_orders: HashSet<String> = self
            .orders
            .iter()
            .map(|o| o.id.clone())
            .chain(self.unresolved_orders.iter().cloned())
            .collect();
        Expected {
            positions,
            orders,
            orders_acknowledged: self.orders.len(),
            known_orders,
            unresolved_orders: self.unresolved_orders.len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(id: &str, lines: Vec<(usize, u32)>) -> OrderRecord {
        OrderRecord {
            id: id.into(),
            channel: 1,
            lines,
            cancel: CancelState::NotRequested,
            walks: Vec::new(),
        }
    }

    #[test]
    fn merge_and_expected() {
        let cat = Catalog::new("t", 2, 1);
        let mut a = RunLog::new(cat.slots());
        let mut b = RunLog::new(cat.slots());
        a.received[cat.slot(0, 0)] = Bounds::exact(10);
        b.received[cat.slot(0, 0)] = Bounds {
            acked: 5,
            unknown: 3,
        };
        a.orders.push(order("o-1", vec![(0, 2), (2, 1)]));
        b.orders.push(order("o-2", vec![(2, 4)]));
        b.unresolved_orders.push("o-3".into());
        a.merge(b);
        assert_eq!(
            a.received[0],
            Bounds {
                acked: 15,
                unknown: 3
            }
        );
        assert_eq!(a.received[0].max(), 18);
        assert_eq!(a.demand(|s| s == 2), 5);

        let exp = a.expected(&cat, &[1]);
        assert_eq!(exp.positions.len(), 9);
        assert_eq!(exp.positions[0].sku, "t-S00000");
        assert_eq!(exp.positions[0].location, "t-east");
        assert_eq!(exp.orders.len(), 1);
        assert_eq!(exp.orders[0].id, "o-2");
        assert_eq!(exp.orders[0].lines, [("t-P000".to_string(), 4)]);
        assert_eq!(exp.orders[0].locations, ["t-east", "t-central"]);
        assert_eq!(exp.orders_acknowledged, 2);
        assert!(exp.known_orders.contains("o-3"));
    }
}
