//! Checks of one order: as placed, the contract's line identities, its fulfillments, and its
//! reservations and backorders at the positions.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{ExpectedOrder, Holdings, Verification};
use crate::api::{fulfillment_rank, Order, Step, FULFILLMENT_STATUSES, ORDER_STATUSES};
use crate::runlog::CancelState;

/// Checks one order against how it was placed, the contract's line identities, and the
/// reservations/backorders of the positions.
pub(super) fn check_order(
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
