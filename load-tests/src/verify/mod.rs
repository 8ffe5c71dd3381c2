//! End-of-run verification: a pure function from what the tool did ([`Expected`]) and what the
//! query API answered ([`Observed`]) to a list of violations.
//!
//! The run's catalog is private (every id carries the run's prefix), so the tool knows every
//! movement of every SKU-location it verifies: its receipts add to `on_hand`, its `shipped`
//! confirmations take units out, reservations only move units between buckets. Writes whose
//! outcome stayed unknown widen the expected value into a range instead of being guessed.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use serde::Serialize;

mod orders;
mod positions;

use crate::api::{Ledger, Order, Position};
use crate::runlog::{Bounds, CancelState, WalkRecord};

/// At most this many violation messages are kept (all are counted).
pub const MAX_VIOLATIONS: usize = 1000;

/// What the checks are, in words (reported with the counts).
pub const CHECKS: &[&str] = &[
    "position: no bucket negative",
    "position: allocated + held <= on_hand",
    "position: available == max(0, on_hand - allocated - held - safety_stock)",
    "position: on_hand == acknowledged receipts - acknowledged shipments (a range when some writes stayed ambiguous)",
    "position: reservations add up to allocated; every reservation/backorder is positive and belongs to an order this run placed",
    "position: the backorder queue head never waits while available >= its quantity",
    "ledger: the position equals the sum of its ledger deltas; seq increases; movements are known",
    "ledger: receipt entries add up to the acknowledged receipts, shipment entries to the acknowledged shipments",
    "order: every acknowledged order is present with a known status (not `received`) and the lines as placed",
    "order: cancelled exactly when the run cancelled it",
    "order line: allocated + backordered == quantity (cancelled: backordered == 0, allocated == shipped); 0 <= shipped <= allocated",
    "order line: allocated == its units in non-cancelled fulfillments; shipped == its units in shipped/delivered ones",
    "fulfillment: id {order}-F{n}, location serves the order's channel, known status, SKUs of the order",
    "fulfillment: status between the highest acknowledged and the highest sent warehouse step (released when never walked)",
    "order x position: its released/picked/packed units per SKU-location == its reservations there; line backordered == its backorder entries",
];

/// What the tool expects of one SKU-location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedPosition {
    /// SKU id.
    pub sku: String,
    /// Location id.
    pub location: String,
    /// Units received through the run's receipts.
    pub received: Bounds,
    /// Units shipped through the run's `shipped` confirmations.
    pub shipped: Bounds,
}

/// What the tool knows of one acknowledged order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedOrder {
    /// Order id.
    pub id: String,
    /// Ids of the locations serving its channel.
    pub locations: Vec<String>,
    /// `(sku, quantity)` as placed.
    pub lines: Vec<(String, u64)>,
    /// Whether the tool cancelled it.
    pub cancel: CancelState,
    /// Fulfillments the tool walked.
    pub walks: Vec<WalkRecord>,
}

/// Everything the tool knows it did.
#[derive(Debug, Clone, Default)]
pub struct Expected {
    /// Every SKU-location of the run's catalog.
    pub positions: Vec<ExpectedPosition>,
    /// The acknowledged orders to check (all, or a sample).
    pub orders: Vec<ExpectedOrder>,
    /// How many orders were acknowledged in total.
    pub orders_acknowledged: usize,
    /// Ids of all orders that may exist: acknowledged plus unresolved.
    pub known_orders: HashSet<String>,
    /// Orders whose placement stayed ambiguous.
    pub unresolved_orders: usize,
}

/// The answer to one query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fetched<T> {
    /// The resource.
    Ok(T),
    /// `404`: it does not exist.
    Missing,
    /// Some other failure.
    Failed(String),
}

/// One SKU-location as the query API answered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPosition {
    /// SKU id.
    pub sku: String,
    /// Location id.
    pub location: String,
    /// `GET /v1/inventory/{sku}/{location}`.
    pub position: Fetched<Position>,
    /// `GET /v1/inventory/{sku}/{location}/ledger`.
    pub ledger: Fetched<Ledger>,
}

/// What the query API answered at the end of the run.
#[derive(Debug, Clone, Default)]
pub struct Observed {
    /// The SKU-locations.
    pub positions: Vec<ObservedPosition>,
    /// The orders of [`Expected::orders`] by id.
    pub orders: HashMap<String, Fetched<Order>>,
    /// Whether positions read before and after the orders were identical.
    pub stable: bool,
    /// How many snapshot attempts it took.
    pub rounds: usize,
}

impl Observed {
    /// Whether every read got an answer (a resource or a `404`).
    pub fn complete(&self) -> bool {
        self.positions
            .iter()
            .all(|p| !p.position.is_failed() && !p.ledger.is_failed())
            && self.orders.values().all(|o| !o.is_failed())
    }
}

impl<T> Fetched<T> {
    /// Whether the read got no usable answer.
    pub fn is_failed(&self) -> bool {
        matches!(self, Fetched::Failed(_))
    }
}

/// What was checked, with counts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verified {
    /// The checks, in words.
    pub checks: Vec<&'static str>,
    /// SKU-locations checked (all of the run's catalog).
    pub sku_locations: usize,
    /// Ledger entries summed.
    pub ledger_entries: usize,
    /// Reservation entries checked.
    pub reservations: usize,
    /// Backorder entries checked.
    pub backorders: usize,
    /// Orders acknowledged during the run.
    pub orders_acknowledged: usize,
    /// Orders read back and checked.
    pub orders_checked: usize,
    /// Whether the checked orders are a sample.
    pub orders_sampled: bool,
    /// Fulfillments checked.
    pub fulfillments_checked: usize,
    /// Of those, fulfillments the run walked.
    pub walked_fulfillments_checked: usize,
    /// Orders whose placement stayed ambiguous (they may or may not exist).
    pub unresolved_orders: usize,
    /// Whether the state stood still while it was read.
    pub snapshot_stable: bool,
    /// Snapshot attempts (of the last verification attempt).
    pub snapshot_rounds: usize,
    /// Read-and-verify attempts (repeated while the violations decrease).
    pub attempts: usize,
    /// Violations found by the first attempt.
    pub first_read_violations: usize,
}

/// The verdict.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    /// Violations (at most [`MAX_VIOLATIONS`] messages).
    pub violations: Vec<String>,
    /// All violations, including those not kept.
    pub violations_total: usize,
    /// What was checked.
    pub verified: Verified,
    /// Status of the checked orders as read back.
    pub final_statuses: BTreeMap<String, u64>,
}

impl Verification {
    pub(crate) fn add(&mut self, args: fmt::Arguments<'_>) {
        self.violations_total += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(args.to_string());
        }
    }
}

/// Reservation or backorder entries of one order: `(sku, location) -> units`.
pub(crate) type Holdings<'a> = HashMap<&'a str, BTreeMap<(&'a str, &'a str), i64>>;

/// Checks everything; see [`CHECKS`].
pub fn verify(exp: &Expected, obs: &Observed) -> Verification {
    let mut v = Verification::default();
    v.verified.checks = CHECKS.to_vec();
    v.verified.orders_acknowledged = exp.orders_acknowledged;
    v.verified.orders_sampled = exp.orders.len() < exp.orders_acknowledged;
    v.verified.unresolved_orders = exp.unresolved_orders;
    v.verified.snapshot_stable = obs.stable;
    v.verified.snapshot_rounds = obs.rounds;

    let observed: HashMap<(&str, &str), &ObservedPosition> = obs
        .positions
        .iter()
        .map(|p| ((p.sku.as_str(), p.location.as_str()), p))
        .collect();
    let mut readable: HashSet<(&str, &str)> = HashSet::new();
    let mut reservations: Holdings<'_> = HashMap::new();
    let mut backorders: Holdings<'_> = HashMap::new();

    for e in &exp.positions {
        let key = (e.sku.as_str(), e.location.as_str());
        v.verified.sku_locations += 1;
        let Some(o) = observed.get(&key) else {
            v.add(format_args!("{}@{}: not read", e.sku, e.location));
            continue;
        };
        match &o.position {
            Fetched::Ok(p) => {
                readable.insert(key);
                positions::check_position(e, p, exp, &mut v);
                for (list, index) in [
                    (&p.reservations, &mut reservations),
                    (&p.backorders, &mut backorders),
                ] {
                    for h in list {
                        *index
                            .entry(h.order.as_str())
                            .or_default()
                            .entry(key)
                            .or_default() += h.quantity;
                    }
                }
                match &o.ledger {
                    Fetched::Ok(l) => positions::check_ledger(e, p, l, &mut v),
                    other => v.add(format_args!(
                        "{}@{}: ledger unreadable: {}",
                        e.sku,
                        e.location,
                        describe(other)
                    )),
                }
            }
            other => v.add(format_args!(
                "{}@{}: position unreadable: {}",
                e.sku,
                e.location,
                describe(other)
            )),
        }
    }

    let holdings = (&reservations, &backorders, &readable);
    for e in &exp.orders {
        v.verified.orders_checked += 1;
        match obs.orders.get(&e.id) {
            Some(Fetched::Ok(o)) => {
                crate::stats::bump(&mut v.final_statuses, &o.status);
                orders::check_order(e, o, holdings, &mut v);
            }
            Some(Fetched::Missing) => v.add(format_args!(
                "order {}: acknowledged but GET /v1/orders/{} answers unknown_order",
                e.id, e.id
            )),
            Some(other) => v.add(format_args!(
                "order {}: unreadable: {}",
                e.id,
                describe(other)
            )),
            None => v.add(format_args!("order {}: not read", e.id)),
        }
    }
    v
}

fn describe<T>(f: &Fetched<T>) -> &str {
    match f {
        Fetched::Ok(_) => "ok",
        Fetched::Missing => "not found",
        Fetched::Failed(e) => e,
    }
}

#[cfg(test)]
mod tests;
