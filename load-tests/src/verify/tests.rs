//! Tests of the verifier: a consistent world, then one broken invariant at a time.

use super::*;
use crate::api::{Fulfillment, FulfillmentLine, Holding, LedgerEntry, OrderLine, Step};

const S: &str = "S1";
const L: &str = "east";

fn position(on_hand: i64, allocated: i64) -> Position {
    Position {
        sku: S.into(),
        location: L.into(),
        on_hand,
        allocated,
        held: 0,
        available: (on_hand - allocated).max(0),
        in_transit: 0,
        quarantined: 0,
        return_pending: 0,
        safety_stock: 0,
        reservations: Vec::new(),
        reservations_next: None,
        backorders: Vec::new(),
        backorders_next: None,
    }
}

fn entry(seq: u64, movement: &str, on_hand_delta: i64, allocated_delta: i64) -> LedgerEntry {
    LedgerEntry {
        seq,
        movement: movement.into(),
        on_hand_delta,
        allocated_delta,
        held_delta: 0,
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
        next: None,
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
    assert_one(&exp, &obs, "allocated 8 + held 0 > on_hand 7");
    assert_one(&exp, &obs, "available is negative");
    assert_one(&exp, &obs, "reservations add up to 7, allocated is 8");
}

#[test]
fn held_units_count_against_on_hand_and_available() {
    let (exp, mut obs) = world();
    let p = position_mut(&mut obs);
    p.held = 1;
    assert_one(&exp, &obs, "allocated 7 + held 1 > on_hand 7");
    assert_one(&exp, &obs, "held 0, position says 7 / 7 / 1");
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
fn failed_reads_are_violations_and_make_the_read_incomplete() {
    let (exp, mut obs) = world();
    assert!(obs.complete());
    obs.positions[0].ledger = Fetched::Failed("transport: reset".into());
    assert!(!obs.complete());
    assert_one(&exp, &obs, "ledger unreadable: transport: reset");
    obs.orders.remove("o-1");
    assert_one(&exp, &obs, "order o-1: not read");
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
