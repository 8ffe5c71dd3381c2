//! How each domain state machine plugs into the runtime.

use super::EntityActor;
use crate::directory::Directory;
use crate::entity::Entity;
use crate::outbox::Publication;
use crate::router::Router;
use crate::views;
use keel_domain::effects::{self, Effect};
use keel_domain::inventory::{LedgerEntry, SkuLocation, StockCommand, StockEvent};
use keel_domain::order::{Allocation, Order, OrderCommand, OrderEvent};
use keel_domain::warehouse::{WarehouseCommand, WarehouseEvent, WarehouseNode};
use keel_domain::{LocationId, OrderId, SkuId};
use serde_json::json;

/// An entity hosted by the generic [`EntityActor`].
pub(crate) trait Hosted: Entity + Default {
    /// Recovers the entity's id from its store key.
    fn parse_key(key: &str) -> Option<Self::Id>;
    /// The directory of this entity's actors.
    fn directory(router: &Router) -> &Directory<EntityActor<Self>>;
}

impl Entity for SkuLocation {
    type Id = (SkuId, LocationId);
    type Command = StockCommand;
    type Event = StockEvent;

    fn decide(&self, command: &StockCommand) -> Result<Vec<StockEvent>, keel_domain::Error> {
        SkuLocation::decide(self, command)
    }

    fn apply(&mut self, event: &StockEvent, at: u64) -> Option<LedgerEntry> {
        SkuLocation::apply(self, event, at)
    }

    fn effects(&self, (sku, location): &Self::Id, event: &StockEvent) -> Vec<Effect> {
        effects::of_stock_event(sku, location, event)
    }

    fn publication(&self, (sku, location): &Self::Id) -> Option<Publication> {
        Some(Publication {
            subject: format!("keel.v1.evt.inventory.{location}.{sku}"),
            payload: views::position(sku, location, &self.position),
        })
    }

    fn reply(&self, events: &[StockEvent]) -> serde_json::Value {
        let granted: u64 = events
            .iter()
            .map(|e| match e {
                StockEvent::Reserved { quantity, .. } => *quantity,
                _ => 0,
            })
            .sum();
        json!({ "granted": granted, "position": self.position })
    }
}

impl Hosted for SkuLocation {
    fn parse_key(key: &str) -> Option<Self::Id> {
        let (sku, location) = key.strip_prefix("s/")?.split_once('@')?;
        Some((SkuId::parse(sku).ok()?, LocationId::parse(location).ok()?))
    }

    fn directory(router: &Router) -> &Directory<EntityActor<Self>> {
        &router.stock
    }
}

impl Entity for WarehouseNode {
    type Id = LocationId;
    type Command = WarehouseCommand;
    type Event = WarehouseEvent;

    fn decide(
        &self,
        command: &WarehouseCommand,
    ) -> Result<Vec<WarehouseEvent>, keel_domain::Error> {
        Ok(WarehouseNode::decide(self, command))
    }

    fn apply(&mut self, event: &WarehouseEvent, _at: u64) -> Option<LedgerEntry> {
        WarehouseNode::apply(self, event);
        None
    }

    fn effects(&self, _id: &LocationId, event: &WarehouseEvent) -> Vec<Effect> {
        effects::of_warehouse_event(event)
    }

    fn publication(&self, _id: &LocationId) -> Option<Publication> {
        None
    }
}

impl Hosted for WarehouseNode {
    fn parse_key(key: &str) -> Option<Self::Id> {
        LocationId::parse(key.strip_prefix("w/")?).ok()
    }

    fn directory(router: &Router) -> &Directory<EntityActor<Self>> {
        &router.warehouses
    }
}

impl Entity for Order {
    type Id = OrderId;
    type Command = OrderCommand;
    type Event = OrderEvent;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, keel_domain::Error> {
        Order::decide(self, command)
    }

    fn apply(&mut self, event: &OrderEvent, _at: u64) -> Option<LedgerEntry> {
        Order::apply(self, event);
        None
    }

    fn effects(&self, id: &OrderId, event: &OrderEvent) -> Vec<Effect> {
        effects::of_order_event(id, event)
    }

    fn publication(&self, id: &OrderId) -> Option<Publication> {
        let channel = &self.request.channel;
        Some(Publication {
            subject: format!("keel.v1.evt.order.{channel}.{id}"),
            payload: json!({
                "id": id,
                "channel": channel,
                "status": self.status(),
                "version": self.version,
            }),
        })
    }

    fn marks(&self, id: &OrderId) -> Vec<(String, bool)> {
        let allocating = matches!(self.allocation, Allocation::InProgress { .. });
        vec![(crate::keys::allocating(id), allocating)]
    }
}
