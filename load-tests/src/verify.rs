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

use crate::api::{
    fulfillment_rank, Ledger, Order, Position, Step, FULFILLMENT_STATUSES, LEDGER_MOVEMENTS,
    ORDER_STATUSES,
};
use crate::runlog::{Bounds, CancelState, WalkRecord};

/// At most this many violation messages are kept (all are counted).
pub const MAX_VIOLATIONS: usize = 1000;

/// What the checks are, in words (reported with the counts).
pub const CHECKS: &[&str] = &[
    "position: no bucket negative",
    "position: allocated <= on_hand",
    "position: available == max(0, on_hand - allocated - safety_stock)",
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
    /// Verification attempts: violations are re-read (up to 3 times) before being reported.
    pub attempts: usize,
    /// Violations of the first attempt when a later one was needed (0 otherwise).
    pub transient_violations: usize,
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
    fn add(&mut self, args: fmt::Arguments<'_>) {
        self.violations_total += 1;
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(args.to_string());
        }
    }
}

/// Reservation or backorder entries of one order: `(sku, location) -> units`.
type Holdings<'a> = HashMap<&'a str, BTreeMap<(&'a str, &'a str), i64>>;

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
                check_position(e, p, exp, &mut v);
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
                    Fetched::Ok(l) => check_ledger(e, p, l, &mut v),
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
                check_order(e, o, holdings, &mut v);
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

/// Checks one position against the contract and the tool's own writes.
fn check_position(e: &ExpectedPosition, p: &Position, exp: &Expected, v: &mut Verification) {
    let at = format_args!("{}@{}", e.sku, e.location).to_string();

    // No bucket may ever be negative.
    for (name, value) in [
        ("on_hand", p.on_hand),
        ("allocated", p.allocated),
        ("available", p.available),
        ("in_transit", p.in_transit),
        ("quarantined", p.quarantined),
        ("return_pending", p.return_pending),
        ("safety_stock", p.safety_stock),
    ] {
        if value < 0 {
            v.add(format_args!("{at}: {name} is negative ({value})"));
        }
    }

    // No oversell: every reserved unit must physically be there.
    if p.allocated > p.on_hand {
        v.add(format_args!(
            "{at}: allocated {} > on_hand {}",
            p.allocated, p.on_hand
        ));
    }

    // The contract's formula for `available`.
    let available = (p.on_hand - p.allocated - p.safety_stock).max(0);
    if p.available != available {
        v.add(format_args!(
            "{at}: available {} != max(0, on_hand {} - allocated {} - safety_stock {}) = {available}",
            p.available, p.on_hand, p.allocated, p.safety_stock
        ));
    }

    // Conservation: units enter only through the run's receipts and leave only through its
    // `shipped` confirmations (the run makes no adjustments). Ambiguous writes give a range.
    let lo = e.received.acked as i64 - e.shipped.max() as i64;
    let hi = e.received.max() as i64 - e.shipped.acked as i64;
    if p.on_hand < lo || p.on_hand > hi {
        let expected = if lo == hi {
            lo.to_string()
        } else {
            format!("{lo}..={hi}")
        };
        v.add(format_args!(
            "{at}: on_hand {} but received {} - shipped {} gives {expected}",
            p.on_hand,
            show(e.received),
            show(e.shipped)
        ));
    }

    // `allocated` is exactly the units reserved for orders; every holding is for a real order
    // of this run (the catalog is the run's own) and holds at least one unit.
    let reserved: i64 = p.reservations.iter().map(|r| r.quantity).sum();
    if reserved != p.allocated {
        v.add(format_args!(
            "{at}: reservations add up to {reserved}, allocated is {}",
            p.allocated
        ));
    }
    for (kind, list) in [
        ("reservation", &p.reservations),
        ("backorder", &p.backorders),
    ] {
        for h in list {
            if h.quantity <= 0 {
                v.add(format_args!(
                    "{at}: {kind} of order {} has quantity {}",
                    h.order, h.quantity
                ));
            }
            if !exp.known_orders.contains(&h.order) {
                v.add(format_args!(
                    "{at}: {kind} for order {} which this run never got acknowledged",
                    h.order
                ));
            }
        }
    }
    v.verified.reservations += p.reservations.len();
    v.verified.backorders += p.backorders.len();

    // Arriving stock fills waiting backorders first come first served, so the queue head cannot
    // still be waiting while the location has enough available for it.
    if let Some(head) = p.backorders.first() {
        if p.available >= head.quantity {
            v.add(format_args!(
                "{at}: backorder of order {} ({} units) waits although {} are available",
                head.order, head.quantity, p.available
            ));
        }
    }
}

fn show(b: Bounds) -> String {
    if b.unknown == 0 {
        b.acked.to_string()
    } else {
        format!("{}(+{} unknown)", b.acked, b.unknown)
    }
}

/// Checks the ledger of one position: it must explain the position exactly.
fn check_ledger(e: &ExpectedPosition, p: &Position, ledger: &Ledger, v: &mut Verification) {
    let at = format_args!("{}@{}", e.sku, e.location).to_string();
    let (mut on_hand, mut allocated, mut received, mut shipped) = (0i64, 0i64, 0i64, 0i64);
    let mut last_seq = None;
    for entry in &ledger.entries {
        on_hand += entry.on_hand_delta;
        allocated += entry.allocated_delta;
        match entry.movement.as_str() {
            "receipt" => received += entry.on_hand_delta,
            "shipment" => shipped -= entry.on_hand_delta,
            m if !LEDGER_MOVEMENTS.contains(&m) => {
                v.add(format_args!(
                    "{at}: ledger seq {} has unknown movement {m}",
                    entry.seq
                ));
            }
            _ => {}
        }
        if last_seq.is_some_and(|s| entry.seq <= s) {
            v.add(format_args!(
                "{at}: ledger seq {} does not increase (after {})",
                entry.seq,
                last_seq.unwrap_or_default()
            ));
        }
        last_seq = Some(entry.seq);
    }
    v.verified.ledger_entries += ledger.entries.len();
    if (on_hand, allocated) != (p.on_hand, p.allocated) {
        v.add(format_args!(
            "{at}: ledger sums to on_hand {on_hand} / allocated {allocated}, position says {} / {}",
            p.on_hand, p.allocated
        ));
    }
    // A 2xx means durable: every acknowledged receipt/shipment is in the ledger, and nothing
    // else of that kind is.
    for (what, sum, b) in [
        ("receipt", received, e.received),
        ("shipment", shipped, e.shipped),
    ] {
        if sum < b.acked as i64 || sum > b.max() as i64 {
            v.add(format_args!(
                "{at}: ledger {what} entries total {sum}, the run's acknowledged {what}s total {}",
                show(b)
            ));
        }
    }
}

/// Checks one order against how it was placed, the contract's line identities, and the
/// reservations/backorders of the positions.
fn check_order(
    e: &ExpectedOrder,
    o: &Order,
    (reservations, backorders, readable): (&Holdings<'_>, &Holdings<'_>, &HashSet<(&str, &str)>),
    v: &mut Verification,
) {
    let id = &e.id;

    // A known status; `received` (allocation in progress) cannot outlive the placement reply,
    // which Keel sends once the allocation is decided and durable.
    if !ORDER_STATUSES.contains(&o.status.as_str()) || o.status == "received" {
        v.add(format_args!("order {id}: status {}", o.status));
    }

    // The lines as placed.
    let mut placed: Vec<(&str, i64)> = e
        .lines
        .iter()
        .map(|(s, q)| (s.as_str(), *q as i64))
        .collect();
    let mut read: Vec<(&str, i64)> = o
        .lines
        .iter()
        .map(|l| (l.sku.as_str(), l.quantity))
        .collect();
    placed.sort_unstable();
    read.sort_unstable();
    if placed != read {
        v.add(format_args!(
            "order {id}: lines {read:?}, placed {placed:?}"
        ));
    }

    // Cancelled exactly when the run cancelled it (a cancel that shipped nothing leaves every
    // fulfillment cancelled, so the derived status is `cancelled`).
    let shipped_any = o.lines.iter().any(|l| l.shipped > 0);
    match e.cancel {
        CancelState::Acknowledged if o.status != "cancelled" && !shipped_any => v.add(
            format_args!("order {id}: cancel acknowledged, status {}", o.status),
        ),
        CancelState::NotRequested if o.status == "cancelled" => {
            v.add(format_args!(
                "order {id}: cancelled, but the run never cancelled it"
            ));
        }
        _ => {}
    }
    let cancelled = o.status == "cancelled" || e.cancel == CancelState::Acknowledged;

    // Fulfillments: well-formed, sourced from the channel's locations.
    let mut active: HashMap<&str, i64> = HashMap::new();
    let mut shipped: HashMap<&str, i64> = HashMap::new();
    let mut reserved: BTreeMap<(&str, &str), i64> = BTreeMap::new();
    for f in &o.fulfillments {
        v.verified.fulfillments_checked += 1;
        let numbered =
            f.id.strip_prefix(id.as_str())
                .and_then(|r| r.strip_prefix("-F"))
                .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
        if !numbered {
            v.add(format_args!(
                "order {id}: fulfillment id {} is not {id}-F<n>",
                f.id
            ));
        }
        if !e.locations.contains(&f.location) {
            v.add(format_args!(
                "order {id}: fulfillment {} at {}, which does not serve the order's channel",
                f.id, f.location
            ));
        }
        if !FULFILLMENT_STATUSES.contains(&f.status.as_str()) {
            v.add(format_args!(
                "order {id}: fulfillment {} has status {}",
                f.id, f.status
            ));
        }
        check_walk(e, f.id.as_str(), f.status.as_str(), v);
        let rank = fulfillment_rank(&f.status);
        for l in &f.lines {
            if l.quantity <= 0 || !e.lines.iter().any(|(s, _)| *s == l.sku) {
                v.add(format_args!(
                    "order {id}: fulfillment {} line {} x{} is not part of the order",
                    f.id, l.sku, l.quantity
                ));
            }
            if let Some(rank) = rank {
                *active.entry(&l.sku).or_default() += l.quantity;
                if rank >= 3 {
                    *shipped.entry(&l.sku).or_default() += l.quantity;
                } else {
                    *reserved.entry((&l.sku, &f.location)).or_default() += l.quantity;
                }
            }
        }
    }
    for w in &e.walks {
        if !o.fulfillments.iter().any(|f| f.id == w.fulfillment) {
            v.add(format_args!(
                "order {id}: walked fulfillment {} is gone",
                w.fulfillment
            ));
        }
    }

    // Line identities of the contract.
    for l in &o.lines {
        let sku = l.sku.as_str();
        if l.allocated < 0 || l.backordered < 0 || l.shipped < 0 || l.shipped > l.allocated {
            v.add(format_args!(
                "order {id} line {sku}: allocated {} backordered {} shipped {}",
                l.allocated, l.backordered, l.shipped
            ));
        }
        if cancelled {
            // Cancelling withdraws backorders and cancels every unshipped fulfillment.
            if l.backordered != 0 || l.allocated != l.shipped {
                v.add(format_args!(
                    "order {id} line {sku}: cancelled but backordered {} and allocated {} != shipped {}",
                    l.backordered, l.allocated, l.shipped
                ));
            }
        } else if l.allocated + l.backordered != l.quantity {
            v.add(format_args!(
                "order {id} line {sku}: allocated {} + backordered {} != quantity {}",
                l.allocated, l.backordered, l.quantity
            ));
        }
        let (in_active, in_shipped) = (
            active.get(sku).copied().unwrap_or(0),
            shipped.get(sku).copied().unwrap_or(0),
        );
        if in_active != l.allocated || in_shipped != l.shipped {
            v.add(format_args!(
                "order {id} line {sku}: allocated {} / shipped {} but its fulfillments hold {in_active} / {in_shipped}",
                l.allocated, l.shipped
            ));
        }
        // Backorders wait at some location of the channel; together they are the line's.
        let queued: i64 = backorders.get(id.as_str()).map_or(0, |m| {
            m.iter()
                .filter(|((s, _), _)| *s == sku)
                .map(|(_, q)| q)
                .sum()
        });
        if queued != l.backordered {
            v.add(format_args!(
                "order {id} line {sku}: backordered {} but backorder queues hold {queued}",
                l.backordered
            ));
        }
    }

    // Unshipped units of active fulfillments are exactly the order's reservations (shipping
    // takes them out of `allocated`, cancelling releases them).
    let held = reservations.get(id.as_str());
    let keys: HashSet<(&str, &str)> = reserved
        .keys()
        .copied()
        .chain(held.into_iter().flat_map(|m| m.keys().copied()))
        .filter(|k| readable.contains(k))
        .collect();
    for key in keys {
        let want = reserved.get(&key).copied().unwrap_or(0);
        let have = held.and_then(|m| m.get(&key)).copied().unwrap_or(0);
        if want != have {
            v.add(format_args!(
                "order {id}: {}@{}: unshipped fulfillment units {want}, reservations {have}",
                key.0, key.1
            ));
        }
    }
}

/// A fulfillment's status must lie between the highest acknowledged and the highest sent step
/// (nobody but the run confirms its fulfillments); only a cancel can cancel it.
fn check_walk(e: &ExpectedOrder, fulfillment: &str, status: &str, v: &mut Verification) {
    let walk = e.walks.iter().find(|w| w.fulfillment == fulfillment);
    if walk.is_some() {
        v.verified.walked_fulfillments_checked += 1;
    }
    let acked = walk.and_then(|w| w.acked);
    let attempted = walk.and_then(|w| w.attempted);
    let shipped = acked.is_some_and(|s| s >= Step::Shipped);
    match fulfillment_rank(status) {
        // Only the run's cancel cancels a fulfillment, and never a shipped one.
        None if status == "cancelled" && (e.cancel == CancelState::NotRequested || shipped) => {
            v.add(format_args!(
                "order {}: fulfillment {fulfillment} cancelled (cancel {:?}, acknowledged step {:?})",
                e.id, e.cancel, acked
            ));
        }
        None => {}
        Some(rank) => {
            let lo = acked.map_or(0, |s| s.rank());
            let hi = attempted.map_or(0, |s| s.rank());
            if rank < lo || rank > hi {
                v.add(format_args!(
                    "order {}: fulfillment {fulfillment} is {status}, but the run's confirmations were acknowledged up to {} and sent up to {}",
                    e.id,
                    acked.map_or("released", |s| s.as_str()),
                    attempted.map_or("released", |s| s.as_str())
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::{Fulfillment, FulfillmentLine, Holding, LedgerEntry, OrderLine};

    const S: &str = "S1";
    const L: &str = "east";

    fn position(on_hand: i64, allocated: i64) -> Position {
        Position {
            sku: S.into(),
            location: L.into(),
            on_hand,
            allocated,
            available: (on_hand - allocated).max(0),
            in_transit: 0,
            quarantined: 0,
            return_pending: 0,
            safety_stock: 0,
            reservations: Vec::new(),
            backorders: Vec::new(),
        }
    }

    fn entry(seq: u64, movement: &str, on_hand_delta: i64, allocated_delta: i64) -> LedgerEntry {
        LedgerEntry {
            seq,
            movement: movement.into(),
            on_hand_delta,
            allocated_delta,
        }
    }

    fn hold(order: &str, quantity: i64) -> Holding {
        Holding {
            order: order.into(),
            quantity,
        }
    }

    /// A consistent world at one SKU-location: 10 received; order o-1 (3 units) walked to
    /// shipped; order o-2 (4 units) reserved; order o-3 wants 5 of the 3 left: 3 reserved,
    /// 2 backordered.
    fn world() -> (Expected, Observed) {
        let mut p = position(7, 7);
        p.reservations = vec![hold("o-2", 4), hold("o-3", 3)];
        p.backorders = vec![hold("o-3", 2)];
        let ledger = Ledger {
            entries: vec![
                entry(1, "receipt", 10, 0),
                entry(2, "reservation", 0, 3),
                entry(3, "reservation", 0, 4),
                entry(4, "shipment", -3, -3),
                entry(5, "reservation", 0, 3),
            ],
        };
        let ful = |n: u32, order: &str, status: &str, q: i64| Fulfillment {
            id: format!("{order}-F{n}"),
            location: L.into(),
            status: status.into(),
            lines: vec![FulfillmentLine {
                sku: S.into(),
                quantity: q,
            }],
        };
        let line = |q, a, b, s| OrderLine {
            sku: S.into(),
            quantity: q,
            allocated: a,
            backordered: b,
            shipped: s,
        };
        let order = |id: &str, status: &str, l: OrderLine, f: Vec<Fulfillment>| Order {
            id: id.into(),
            channel: "web".into(),
            status: status.into(),
            lines: vec![l],
            fulfillments: f,
        };
        let orders = vec![
            order(
                "o-1",
                "shipped",
                line(3, 3, 0, 3),
                vec![ful(1, "o-1", "shipped", 3)],
            ),
            order(
                "o-2",
                "released",
                line(4, 4, 0, 0),
                vec![ful(1, "o-2", "released", 4)],
            ),
            order(
                "o-3",
                "partially_allocated",
                line(5, 3, 2, 0),
                vec![ful(1, "o-3", "released", 3)],
            ),
        ];
        let expected_order = |id: &str, q: u64| ExpectedOrder {
            id: id.into(),
            locations: vec![L.into(), "west".into()],
            lines: vec![(S.into(), q)],
            cancel: CancelState::NotRequested,
            walks: Vec::new(),
        };
        let mut o1 = expected_order("o-1", 3);
        o1.walks.push(WalkRecord {
            fulfillment: "o-1-F1".into(),
            acked: Some(Step::Shipped),
            attempted: Some(Step::Delivered),
        });
        let exp = Expected {
            positions: vec![ExpectedPosition {
                sku: S.into(),
                location: L.into(),
                received: Bounds::exact(10),
                shipped: Bounds::exact(3),
            }],
            orders: vec![o1, expected_order("o-2", 4), expected_order("o-3", 5)],
            orders_acknowledged: 3,
            known_orders: ["o-1", "o-2", "o-3"].map(String::from).into(),
            unresolved_orders: 0,
        };
        let obs = Observed {
            positions: vec![ObservedPosition {
                sku: S.into(),
                location: L.into(),
                position: Fetched::Ok(p),
                ledger: Fetched::Ok(ledger),
            }],
            orders: orders
                .into_iter()
                .map(|o| (o.id.clone(), Fetched::Ok(o)))
                .collect(),
            stable: true,
            rounds: 1,
        };
        (exp, obs)
    }

    fn position_mut(obs: &mut Observed) -> &mut Position {
        match &mut obs.positions[0].position {
            Fetched::Ok(p) => p,
            _ => unreachable!(),
        }
    }

    fn order_mut<'a>(obs: &'a mut Observed, id: &str) -> &'a mut Order {
        match obs.orders.get_mut(id) {
            Some(Fetched::Ok(o)) => o,
            _ => unreachable!(),
        }
    }

    fn violations(exp: &Expected, obs: &Observed) -> Vec<String> {
        verify(exp, obs).violations
    }

    fn assert_one(exp: &Expected, obs: &Observed, needle: &str) {
        let v = violations(exp, obs);
        assert!(
            v.iter().any(|m| m.contains(needle)),
            "expected a violation containing {needle:?}, got {v:#?}"
        );
    }

    #[test]
    fn consistent_world_has_no_violation() {
        let (exp, obs) = world();
        let v = verify(&exp, &obs);
        assert_eq!(v.violations, Vec::<String>::new());
        assert_eq!(v.verified.sku_locations, 1);
        assert_eq!(v.verified.ledger_entries, 5);
        assert_eq!(v.verified.orders_checked, 3);
        assert_eq!(v.verified.walked_fulfillments_checked, 1);
        assert!(!v.verified.orders_sampled);
        assert_eq!(v.final_statuses["released"], 1);
    }

    #[test]
    fn oversell_and_negative_buckets() {
        let (exp, mut obs) = world();
        let p = position_mut(&mut obs);
        p.allocated = 8;
        p.available = -1;
        assert_one(&exp, &obs, "allocated 8 > on_hand 7");
        assert_one(&exp, &obs, "available is negative");
        assert_one(&exp, &obs, "reservations add up to 7, allocated is 8");
    }

    #[test]
    fn conservation_uses_acknowledged_writes_and_ranges() {
        let (mut exp, mut obs) = world();
        position_mut(&mut obs).on_hand = 8;
        assert_one(&exp, &obs, "on_hand 8 but received 10 - shipped 3 gives 7");
        // An ambiguous receipt of 1 unit makes 7..=8 acceptable (ledger receipts too).
        exp.positions[0].received.unknown = 1;
        let v = violations(&exp, &obs);
        assert!(!v.iter().any(|m| m.contains("gives")), "{v:#?}");
    }

    #[test]
    fn ledger_must_explain_the_position() {
        let (exp, mut obs) = world();
        if let Fetched::Ok(l) = &mut obs.positions[0].ledger {
            l.entries.push(entry(5, "receipt", 1, 0));
        }
        assert_one(&exp, &obs, "ledger sums to on_hand 8");
        assert_one(&exp, &obs, "seq 5 does not increase");
        assert_one(&exp, &obs, "ledger receipt entries total 11");
    }

    #[test]
    fn missing_and_unknown_orders() {
        let (mut exp, mut obs) = world();
        obs.orders.insert("o-2".into(), Fetched::Missing);
        assert_one(&exp, &obs, "order o-2: acknowledged but");
        exp.known_orders.remove("o-3");
        assert_one(&exp, &obs, "reservation for order o-3 which this run never");
    }

    #[test]
    fn line_identities_and_fulfillment_sums() {
        let (exp, mut obs) = world();
        order_mut(&mut obs, "o-3").lines[0].backordered = 1;
        assert_one(&exp, &obs, "allocated 3 + backordered 1 != quantity 5");
        assert_one(&exp, &obs, "backordered 1 but backorder queues hold 2");

        let (exp, mut obs) = world();
        order_mut(&mut obs, "o-2").fulfillments[0].lines[0].quantity = 3;
        assert_one(
            &exp,
            &obs,
            "allocated 4 / shipped 0 but its fulfillments hold 3 / 0",
        );
        assert_one(&exp, &obs, "unshipped fulfillment units 3, reservations 4");
    }

    #[test]
    fn sourcing_outside_the_channel_and_bad_ids() {
        let (exp, mut obs) = world();
        let f = &mut order_mut(&mut obs, "o-2").fulfillments[0];
        f.location = "central".into();
        f.id = "o-2-X".into();
        assert_one(&exp, &obs, "at central, which does not serve");
        assert_one(&exp, &obs, "is not o-2-F<n>");
    }

    #[test]
    fn walked_status_must_match_confirmations() {
        let (exp, mut obs) = world();
        order_mut(&mut obs, "o-1").fulfillments[0].status = "packed".into();
        assert_one(&exp, &obs, "is packed, but the run's confirmations");
        let (exp, mut obs) = world();
        order_mut(&mut obs, "o-2").fulfillments[0].status = "picked".into();
        assert_one(&exp, &obs, "o-2-F1 is picked");
    }

    #[test]
    fn cancellation_rules() {
        let (mut exp, mut obs) = world();
        // The run cancelled o-2: it must be cancelled, with nothing allocated or reserved.
        exp.orders[1].cancel = CancelState::Acknowledged;
        assert_one(
            &exp,
            &obs,
            "order o-2: cancel acknowledged, status released",
        );
        assert_one(
            &exp,
            &obs,
            "cancelled but backordered 0 and allocated 4 != shipped 0",
        );
        // The consistent cancelled state.
        let o = order_mut(&mut obs, "o-2");
        o.status = "cancelled".into();
        o.lines[0].allocated = 0;
        o.fulfillments[0].status = "cancelled".into();
        let p = position_mut(&mut obs);
        p.reservations.retain(|r| r.order != "o-2");
        p.allocated = 3;
        p.available = 4;
        if let Fetched::Ok(l) = &mut obs.positions[0].ledger {
            l.entries.push(entry(6, "release", 0, -4));
        }
        // Available 4 now covers the backordered 2 of o-3: stock must have gone to it.
        assert_one(
            &exp,
            &obs,
            "backorder of order o-3 (2 units) waits although 4",
        );
        // Once allocated to o-3 everything is consistent again.
        let p = position_mut(&mut obs);
        p.backorders.clear();
        p.reservations = vec![hold("o-3", 5)];
        p.allocated = 5;
        p.available = 2;
        if let Fetched::Ok(l) = &mut obs.positions[0].ledger {
            l.entries.push(entry(7, "backorder_allocation", 0, 2));
        }
        let o3 = order_mut(&mut obs, "o-3");
        o3.status = "released".into();
        o3.lines[0].allocated = 5;
        o3.lines[0].backordered = 0;
        o3.fulfillments.push(Fulfillment {
            id: "o-3-F2".into(),
            location: L.into(),
            status: "released".into(),
            lines: vec![FulfillmentLine {
                sku: S.into(),
                quantity: 2,
            }],
        });
        assert_eq!(violations(&exp, &obs), Vec::<String>::new());
        // Cancelled without the run asking.
        exp.orders[1].cancel = CancelState::NotRequested;
        assert_one(&exp, &obs, "cancelled, but the run never cancelled it");
    }

    #[test]
    fn received_status_and_lines_as_placed() {
        let (exp, mut obs) = world();
        let o = order_mut(&mut obs, "o-2");
        o.status = "received".into();
        o.lines[0].sku = "S9".into();
        assert_one(&exp, &obs, "order o-2: status received");
        assert_one(&exp, &obs, "order o-2: lines");
    }

    #[test]
    fn sampling_and_cap_are_reported() {
        let (mut exp, mut obs) = world();
        exp.orders_acknowledged = 10;
        position_mut(&mut obs).on_hand = 1000;
        let v = verify(&exp, &obs);
        assert!(v.verified.orders_sampled);
        assert!(v.violations_total >= 1 && v.violations.len() <= MAX_VIOLATIONS);
    }
}
