//! The JSON shapes clients see (HTTP and NATS alike); see docs/http-api.md.

use keel_domain::inventory::{Backorder, Position};
use keel_domain::order::{Fulfillment, Order};
use keel_domain::{LocationId, OrderId, SkuId};
use serde_json::{json, Value};

/// A position with its derived `available`.
pub fn position(sku: &SkuId, location: &LocationId, p: &Position) -> Value {
    json!({
        "sku": sku,
        "location": location,
        "on_hand": p.on_hand,
        "allocated": p.allocated,
        "available": p.available(),
        "in_transit": p.in_transit,
        "quarantined": p.quarantined,
        "return_pending": p.return_pending,
        "safety_stock": p.safety_stock,
    })
}

/// Reservations as `{"order","quantity"}` entries.
pub fn reservations(page: &[(OrderId, u64)]) -> Value {
    page.iter()
        .map(|(order, quantity)| json!({ "order": order, "quantity": quantity }))
        .collect()
}

/// Backorders as `{"order","quantity","ticket"}` entries, in queue order (the ticket is the
/// place in the queue).
pub fn backorders(queue: &[Backorder]) -> Value {
    queue
        .iter()
        .map(|b| json!({ "order": b.order, "quantity": b.quantity, "ticket": b.ticket }))
        .collect()
}

/// A fulfillment, naming its order.
pub fn fulfillment(order: &Order, f: &Fulfillment) -> Value {
    json!({
        "id": f.id,
        "order": order.request.id,
        "location": f.location,
        "status": f.status,
        "lines": f.lines,
    })
}

/// What `keel.v1.evt.order.{channel}.{order}` carries after every change of an order: its
/// status, its version (one more per change, so a subscriber can tell order and gaps) and its
/// fulfillments' statuses.
pub fn order_event(o: &Order) -> Value {
    let fulfillments: Vec<Value> = o
        .fulfillments
        .iter()
        .map(|f| json!({ "id": f.id, "location": f.location, "status": f.status }))
        .collect();
    json!({
        "id": o.request.id,
        "channel": o.request.channel,
        "status": o.status(),
        "version": o.version,
        "fulfillments": fulfillments,
    })
}

/// What `keel.v1.evt.fulfillment.{location}.{fulfillment}` carries when a fulfillment is
/// released, accepted by its warehouse node, confirmed a step on, or cancelled.
pub fn fulfillment_event(order: &Order, f: &Fulfillment) -> Value {
    let mut view = fulfillment(order, f);
    view["accepted"] = json!(f.accepted);
    view["order_version"] = json!(order.version);
    view
}

/// An order with its derived status and per-line quantities.
pub fn order(o: &Order) -> Value {
    let lines: Vec<Value> = o
        .request
        .lines
        .iter()
        .map(|l| {
            json!({
                "sku": l.sku,
                "quantity": l.quantity,
                "allocated": o.allocated(&l.sku),
                "backordered": o.backordered(&l.sku),
                "shipped": o.shipped(&l.sku),
            })
        })
        .collect();
    let fulfillments: Vec<Value> = o
        .fulfillments
        .iter()
        .map(
            |f| json!({ "id": f.id, "location": f.location, "status": f.status, "lines": f.lines }),
        )
        .collect();
    json!({
        "id": o.request.id,
        "channel": o.request.channel,
        "status": o.status(),
        "ship_to": o.request.ship_to,
        "lines": lines,
        "fulfillments": fulfillments,
        "created_at": o.created_at,
    })
}
