//! The JSON shapes clients see (HTTP and NATS alike), built from the typed messages of
//! `keel_protocol::wire` (whose schemas are committed under docs/schemas/); see also
//! docs/http-api.md.

use keel_domain::hold::Hold;
use keel_domain::inventory::{Backorder, Position};
use keel_domain::order::{Fulfillment, Order};
use keel_domain::{LocationId, OrderId, SkuId};
use keel_protocol::wire::{events, replies, requests};
use serde::Serialize;
use serde_json::Value;

/// Serializes a wire message: plain structs of strings, numbers and lists, which always
/// serialize.
fn to_json<T: Serialize>(message: &T) -> Value {
    serde_json::to_value(message).expect("wire messages serialize to JSON")
}

/// A position with its derived `available` ([`replies::Position`]).
pub fn position(sku: &SkuId, location: &LocationId, p: &Position) -> Value {
    to_json(&replies::Position {
        sku: sku.to_string(),
        location: location.to_string(),
        on_hand: p.on_hand,
        allocated: p.allocated,
        held: p.held,
        available: p.available(),
        in_transit: p.in_transit,
        quarantined: p.quarantined,
        return_pending: p.return_pending,
        safety_stock: p.safety_stock,
    })
}

/// Reservations as `{"order","quantity"}` entries ([`replies::Reservation`]).
pub fn reservations(page: &[(OrderId, u64)]) -> Value {
    let entries: Vec<replies::Reservation> = page
        .iter()
        .map(|(order, quantity)| replies::Reservation {
            order: order.to_string(),
            quantity: *quantity,
        })
        .collect();
    to_json(&entries)
}

/// Backorders as `{"order","quantity","ticket"}` entries, in queue order (the ticket is the
/// place in the queue) ([`replies::Backorder`]).
pub fn backorders(queue: &[Backorder]) -> Value {
    let entries: Vec<replies::Backorder> = queue
        .iter()
        .map(|b| replies::Backorder {
            order: b.order.to_string(),
            quantity: b.quantity,
            ticket: b.ticket,
        })
        .collect();
    to_json(&entries)
}

fn lines(f: &Fulfillment) -> Vec<replies::FulfillmentLine> {
    f.lines
        .iter()
        .map(|l| replies::FulfillmentLine {
            sku: l.sku.to_string(),
            quantity: l.quantity,
        })
        .collect()
}

/// A fulfillment, naming its order ([`replies::Fulfillment`]).
pub fn fulfillment(order: &Order, f: &Fulfillment) -> Value {
    to_json(&replies::Fulfillment {
        id: f.id.to_string(),
        order: order.request.id.to_string(),
        location: f.location.to_string(),
        status: f.status.into(),
        lines: lines(f),
    })
}

/// What `keel.v1.evt.order.{channel}.{order}` carries after every change of an order: its
/// status, its version (one more per change, so a subscriber can tell order and gaps) and its
/// fulfillments' statuses ([`events::OrderEvent`]).
pub fn order_event(o: &Order) -> Value {
    to_json(&events::OrderEvent {
        id: o.request.id.to_string(),
        channel: o.request.channel.to_string(),
        status: o.status().into(),
        version: o.version,
        fulfillments: o
            .fulfillments
            .iter()
            .map(|f| events::OrderEventFulfillment {
                id: f.id.to_string(),
                location: f.location.to_string(),
                status: f.status.into(),
            })
            .collect(),
    })
}

/// What `keel.v1.evt.fulfillment.{location}.{fulfillment}` carries when a fulfillment is
/// released, accepted by its warehouse node, confirmed a step on, or cancelled
/// ([`events::FulfillmentEvent`]).
pub fn fulfillment_event(order: &Order, f: &Fulfillment) -> Value {
    to_json(&events::FulfillmentEvent {
        id: f.id.to_string(),
        order: order.request.id.to_string(),
        location: f.location.to_string(),
        status: f.status.into(),
        lines: lines(f),
        accepted: f.accepted,
        order_version: order.version,
    })
}

/// An order with its derived status and per-line quantities ([`replies::Order`]).
pub fn order(o: &Order) -> Value {
    to_json(&replies::Order {
        id: o.request.id.to_string(),
        channel: o.request.channel.to_string(),
        status: o.status().into(),
        ship_to: requests::ShipTo {
            region: o.request.ship_to.region.clone(),
        },
        lines: o
            .request
            .lines
            .iter()
            .map(|l| replies::OrderLine {
                sku: l.sku.to_string(),
                quantity: l.quantity,
                allocated: o.allocated(&l.sku),
                backordered: o.backordered(&l.sku),
                shipped: o.shipped(&l.sku),
            })
            .collect(),
        fulfillments: o
            .fulfillments
            .iter()
            .map(|f| replies::OrderFulfillment {
                id: f.id.to_string(),
                location: f.location.to_string(),
                status: f.status.into(),
                lines: lines(f),
            })
            .collect(),
        created_at: o.created_at,
    })
}

/// A cart hold with what it keeps aside per line ([`replies::Hold`]); `None` for a hold that
/// was never placed.
pub fn hold(h: &Hold) -> Option<Value> {
    let request = h.request.as_ref()?;
    Some(to_json(&replies::Hold {
        id: request.id.to_string(),
        channel: request.channel.to_string(),
        status: h.status.into(),
        expires_at: h.expires_at,
        lines: request
            .lines
            .iter()
            .map(|l| replies::HoldLine {
                sku: l.sku.to_string(),
                quantity: l.quantity,
                held: h.held(&l.sku),
            })
            .collect(),
        order: h.order.as_ref().map(ToString::to_string),
        created_at: h.created_at,
    }))
}
