//! What each event makes happen elsewhere: the messages one actor owes another.
//!
//! The runtime stores these in the sender's outbox in the same transaction as the event and
//! delivers them until acknowledged; the receiver's dedupe makes redelivery harmless. Keeping
//! the mapping here (pure) lets property tests run the same orchestration as the actors do.

use crate::hold::{HoldCommand, HoldEvent, HoldStatus};
use crate::inventory::{StockCommand, StockEvent};
use crate::order::{FulfillmentStatus, OrderCommand, OrderEvent};
use crate::warehouse::{WarehouseCommand, WarehouseEvent};
use crate::{HoldId, LocationId, OrderId, SkuId};
use serde::{Deserialize, Serialize};

/// A command one actor sends another as a consequence of an event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "to", rename_all = "snake_case")]
pub enum Effect {
    /// A command for the SKU-location `sku@location`.
    Stock {
        sku: SkuId,
        location: LocationId,
        command: StockCommand,
    },
    /// A command for an order.
    Order {
        order: OrderId,
        command: OrderCommand,
    },
    /// A command for a warehouse node.
    Warehouse {
        location: LocationId,
        command: WarehouseCommand,
    },
    /// A command for a cart hold.
    Hold { hold: HoldId, command: HoldCommand },
}

fn stock(sku: &SkuId, location: &LocationId, command: StockCommand) -> Effect {
    Effect::Stock {
        sku: sku.clone(),
        location: location.clone(),
        command,
    }
}

fn track(
    location: &LocationId,
    fulfillment: &crate::FulfillmentId,
    status: FulfillmentStatus,
) -> Effect {
    Effect::Warehouse {
        location: location.clone(),
        command: WarehouseCommand::Track {
            fulfillment: fulfillment.clone(),
            status,
        },
    }
}

fn accept(order: &OrderId, f: &crate::order::Fulfillment) -> Effect {
    Effect::Warehouse {
        location: f.location.clone(),
        command: WarehouseCommand::Accept {
            fulfillment: f.id.clone(),
            order: order.clone(),
            lines: f.lines.clone(),
        },
    }
}

/// The effects of an order's event, in the order they must be delivered.
pub fn of_order_event(order: &OrderId, event: &OrderEvent) -> Vec<Effect> {
    match event {
        OrderEvent::AllocationStarted { .. } | OrderEvent::FulfillmentAccepted { .. } => Vec::new(),
        OrderEvent::Allocated {
            fulfillments,
            backorders,
        } => {
            let accepts = fulfillments.iter().map(|f| accept(order, f));
            let waits = backorders.iter().map(|b| {
                let command = StockCommand::Backorder {
                    order: order.clone(),
                    quantity: b.quantity,
                };
                stock(&b.sku, &b.location, command)
            });
            accepts.chain(waits).collect()
        }
        OrderEvent::FulfillmentProgressed {
            fulfillment,
            location,
            status,
            lines,
        } => {
            let mut effects = Vec::new();
            if *status == FulfillmentStatus::Shipped {
                effects.extend(lines.iter().map(|l| {
                    let command = StockCommand::Ship {
                        order: order.clone(),
                        fulfillment: fulfillment.clone(),
                        quantity: l.quantity,
                    };
                    stock(&l.sku, location, command)
                }));
            }
            effects.push(track(location, fulfillment, *status));
            effects
        }
        OrderEvent::Cancelled {
            fulfillments,
            withdrawn,
        } => {
            // Withdraw first: releasing stock fills waiting backorders, and this order's own
            // must no longer be among them.
            let mut effects: Vec<Effect> = withdrawn
                .iter()
                .map(|b| {
                    let command = StockCommand::WithdrawBackorder {
                        order: order.clone(),
                    };
                    stock(&b.sku, &b.location, command)
                })
                .collect();
            for f in fulfillments {
                effects.extend(f.lines.iter().map(|l| {
                    let command = StockCommand::Release {
                        order: order.clone(),
                        quantity: l.quantity,
                        reason: "order cancelled".to_owned(),
                    };
                    stock(&l.sku, &f.location, command)
                }));
                effects.push(track(&f.location, &f.id, FulfillmentStatus::Cancelled));
            }
            effects
        }
        OrderEvent::BackorderFilled { fulfillment } => vec![accept(order, fulfillment)],
        OrderEvent::BackorderReturned {
            sku,
            location,
            quantity,
        } => {
            let command = StockCommand::Release {
                order: order.clone(),
                quantity: *quantity,
                reason: "backorder no longer wanted".to_owned(),
            };
            vec![stock(sku, location, command)]
        }
    }
}

/// The effects of a SKU-location's event.
pub fn of_stock_event(sku: &SkuId, location: &LocationId, event: &StockEvent) -> Vec<Effect> {
    match event {
        StockEvent::BackorderAllocated { order, quantity } => vec![Effect::Order {
            order: order.clone(),
            command: OrderCommand::FillBackorder {
                sku: sku.clone(),
                location: location.clone(),
                quantity: *quantity,
            },
        }],
        _ => Vec::new(),
    }
}

/// The effects of a warehouse node's event.
pub fn of_warehouse_event(event: &WarehouseEvent) -> Vec<Effect> {
    match event {
        WarehouseEvent::Accepted {
            fulfillment, order, ..
        } => vec![Effect::Order {
            order: order.clone(),
            command: OrderCommand::AcceptFulfillment {
                fulfillment: fulfillment.clone(),
            },
        }],
        WarehouseEvent::Tracked { .. } => Vec::new(),
    }
}

/// The effects of a hold's event: units it gives back go back to their SKU-locations.
pub fn of_hold_event(hold: &HoldId, event: &HoldEvent) -> Vec<Effect> {
    let (lines, reason) = match event {
        HoldEvent::Ended { status, returned } => (
            returned,
            if *status == HoldStatus::Expired {
                "hold expired"
            } else {
                "hold released"
            },
        ),
        HoldEvent::GrantsReturned { granted } => (granted, "hold ended while placed"),
        HoldEvent::Swept { returned } => (returned, "hold swept: units nobody took"),
        _ => return Vec::new(),
    };
    lines
        .iter()
        .filter(|l| l.quantity > 0)
        .map(|l| {
            let command = StockCommand::ReleaseHold {
                hold: hold.clone(),
                quantity: l.quantity,
                reason: reason.to_owned(),
            };
            stock(&l.sku, &l.location, command)
        })
        .collect()
}
