//! Checks of one SKU-location: its position against the contract and the run's writes, and its
//! ledger against the position.

use super::{Expected, ExpectedPosition, Verification};
use crate::api::{Ledger, Position, LEDGER_MOVEMENTS};
use crate::runlog::Bounds;

/// Checks one position against the contract and the tool's own writes.
pub(super) fn check_position(
    e: &ExpectedPosition,
    p: &Position,
    exp: &Expected,
    v: &mut Verification,
) {
    let at = format_args!("{}@{}", e.sku, e.location).to_string();

    // No bucket may ever be negative.
    for (name, value) in [
        ("on_hand", p.on_hand),
        ("allocated", p.allocated),
        ("held", p.held),
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

    // No oversell: every reserved or held unit must physically be there.
    if p.allocated + p.held > p.on_hand {
        v.add(format_args!(
            "{at}: allocated {} + held {} > on_hand {}",
            p.allocated, p.held, p.on_hand
        ));
    }

    // The contract's formula for `available`.
    let available = (p.on_hand - p.allocated - p.held - p.safety_stock).max(0);
    if p.available != available {
        v.add(format_args!(
            "{at}: available {} != max(0, on_hand {} - allocated {} - held {} - safety_stock {}) = {available}",
            p.available, p.on_hand, p.allocated, p.held, p.safety_stock
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
pub(super) fn check_ledger(
    e: &ExpectedPosition,
    p: &Position,
    ledger: &Ledger,
    v: &mut Verification,
) {
    let at = format_args!("{}@{}", e.sku, e.location).to_string();
    let (mut on_hand, mut allocated, mut held) = (0i64, 0i64, 0i64);
    let (mut received, mut shipped) = (0i64, 0i64);
    let mut last_seq = None;
    for entry in &ledger.entries {
        on_hand += entry.on_hand_delta;
        allocated += entry.allocated_delta;
        held += entry.held_delta;
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
    if (on_hand, allocated, held) != (p.on_hand, p.allocated, p.held) {
        v.add(format_args!(
            "{at}: ledger sums to on_hand {on_hand} / allocated {allocated} / held {held}, position says {} / {} / {}",
            p.on_hand, p.allocated, p.held
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
