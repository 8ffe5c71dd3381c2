//! The warehouse node: the fulfillments released to one location and their progress.
//!
//! The order is the single writer of a fulfillment's status; the node keeps the operational
//! view (open work, counts by status) that warehouse staff and later release waves need.

use crate::order::{FulfillmentLine, FulfillmentStatus};
use crate::{FulfillmentId, OrderId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A fulfillment the node has accepted and not yet closed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFulfillment {
    pub order: OrderId,
    pub status: FulfillmentStatus,
    pub lines: Vec<FulfillmentLine>,
}

/// Counts of accepted fulfillments by their current status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCounts {
    pub released: u64,
    pub picked: u64,
    pub packed: u64,
    pub shipped: u64,
    pub delivered: u64,
    pub cancelled: u64,
}

impl StatusCounts {
    fn slot(&mut self, status: FulfillmentStatus) -> &mut u64 {
        match status {
            FulfillmentStatus::Released => &mut self.released,
            FulfillmentStatus::Picked => &mut self.picked,
            FulfillmentStatus::Packed => &mut self.packed,
            FulfillmentStatus::Shipped => &mut self.shipped,
            FulfillmentStatus::Delivered => &mut self.delivered,
            FulfillmentStatus::Cancelled => &mut self.cancelled,
        }
    }

    fn moved(&mut self, from: FulfillmentStatus, to: FulfillmentStatus) {
        *self.slot(from) -= 1;
        *self.slot(to) += 1;
    }
}

/// The state of one warehouse node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WarehouseNode {
    /// Accepted fulfillments not yet delivered or cancelled.
    pub open: BTreeMap<FulfillmentId, OpenFulfillment>,
    pub counts: StatusCounts,
    pub version: u64,
}

/// A command to a warehouse node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WarehouseCommand {
    /// Take a released fulfillment into the node's work.
    Accept {
        fulfillment: FulfillmentId,
        order: OrderId,
        lines: Vec<FulfillmentLine>,
    },
    /// The order recorded a new status for one of the node's fulfillments.
    Track {
        fulfillment: FulfillmentId,
        status: FulfillmentStatus,
    },
}

/// What happened at a warehouse node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum WarehouseEvent {
    /// The node took a released fulfillment into its work.
    Accepted {
        fulfillment: FulfillmentId,
        order: OrderId,
        lines: Vec<FulfillmentLine>,
    },
    /// One of the node's fulfillments changed status.
    Tracked {
        fulfillment: FulfillmentId,
        from: FulfillmentStatus,
        to: FulfillmentStatus,
    },
}

impl WarehouseNode {
    /// Decides a command; accepting open work again and tracking unknown or closed work change
    /// nothing. (A redelivered `Accept` of closed work is stopped by the runtime's command-id
    /// dedupe, not here: the node does not remember closed work forever.)
    pub fn decide(&self, command: &WarehouseCommand) -> Vec<WarehouseEvent> {
        match command {
            WarehouseCommand::Accept {
                fulfillment,
                order,
                lines,
            } if !self.open.contains_key(fulfillment) => vec![WarehouseEvent::Accepted {
                fulfillment: fulfillment.clone(),
                order: order.clone(),
                lines: lines.clone(),
            }],
            WarehouseCommand::Track {
                fulfillment,
                status,
            } => match self.open.get(fulfillment) {
                Some(open) if open.status != *status => vec![WarehouseEvent::Tracked {
                    fulfillment: fulfillment.clone(),
                    from: open.status,
                    to: *status,
                }],
                _ => Vec::new(),
            },
            WarehouseCommand::Accept { .. } => Vec::new(),
        }
    }

    /// Applies an event produced by [`WarehouseNode::decide`].
    pub fn apply(&mut self, event: &WarehouseEvent) {
        self.version += 1;
        match event {
            WarehouseEvent::Accepted {
                fulfillment,
                order,
                lines,
            } => {
                self.counts.released += 1;
                let open = OpenFulfillment {
                    order: order.clone(),
                    status: FulfillmentStatus::Released,
                    lines: lines.clone(),
                };
                self.open.insert(fulfillment.clone(), open);
            }
            WarehouseEvent::Tracked {
                fulfillment,
                from,
                to,
            } => {
                self.counts.moved(*from, *to);
                let closed = matches!(
                    to,
                    FulfillmentStatus::Delivered | FulfillmentStatus::Cancelled
                );
                if closed {
                    self.open.remove(fulfillment);
                } else if let Some(open) = self.open.get_mut(fulfillment) {
                    open.status = *to;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_node_tracks_its_open_work_until_delivery() {
        let order = OrderId::parse("o1").unwrap();
        let f = FulfillmentId::new(&order, 1);
        let mut node = WarehouseNode::default();
        let accept = WarehouseCommand::Accept {
            fulfillment: f.clone(),
            order,
            lines: vec![],
        };
        let run = |node: &mut WarehouseNode, c: &WarehouseCommand| {
            let events = node.decide(c);
            events.iter().for_each(|e| node.apply(e));
            events.len()
        };
        assert_eq!(run(&mut node, &accept), 1);
        assert_eq!(
            run(&mut node, &accept),
            0,
            "accepting twice changes nothing"
        );
        for status in [FulfillmentStatus::Picked, FulfillmentStatus::Delivered] {
            let track = WarehouseCommand::Track {
                fulfillment: f.clone(),
                status,
            };
            assert_eq!(run(&mut node, &track), 1);
        }
        assert!(node.open.is_empty());
        assert_eq!((node.counts.released, node.counts.delivered), (0, 1));
    }
}
