//! How each domain state machine plugs into the runtime.

use super::EntityActor;
use super::Hosts;
use crate::directory::Directory;
use crate::entity::Entity;
use crate::outbox::Publication;
use crate::replies::{Grant, Reply};
use crate::views;
use crate::Error;
use keel_domain::effects::{self, Effect};
use keel_domain::inventory::{
    Backorder, LedgerEntry, Position, SkuLocation, StockCommand, StockEvent,
};
use keel_domain::order::{Allocation, Order, OrderCommand, OrderEvent, OrderStatus};
use keel_domain::warehouse::{
    OpenFulfillment, StatusCounts, WarehouseCommand, WarehouseEvent, WarehouseNode,
};
use keel_domain::{FulfillmentId, HoldId, LocationId, OrderId, SkuId};
use serde::{Deserialize, Serialize};

/// An entity hosted by the generic [`EntityActor`].
pub(crate) trait Hosted: Entity + Default {
    /// Recovers the entity's id from its store key.
    fn parse_key(key: &str) -> Option<Self::Id>;
    /// The directory of this entity's actors.
    fn directory(hosts: &Hosts) -> &Directory<EntityActor<Self>>;
    /// Tells the node what others may plan with, after activation and after every change.
    fn observed(_hosts: &Hosts, _key: &str, _state: Option<&Self>) {}
    /// The command a due timer of this entity fires (at `now` by the node's clock).
    fn on_timer(_name: &str, _now: u64) -> Option<Self::Command> {
        None
    }
}

impl Entity for SkuLocation {
    const KIND: &'static str = "sku_location";
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

    fn publications(&self, (sku, location): &Self::Id, _: &[StockEvent]) -> Vec<Publication> {
        vec![Publication {
            subject: keel_protocol::events::inventory(location, sku),
            payload: views::position(sku, location, &self.position),
        }]
    }

    type Summary = Position;

    fn summary(&self) -> Position {
        self.position
    }

    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&StockBlob {
            position: self.position,
            next_seq: self.next_seq,
            next_ticket: self.next_ticket,
        })
    }

    fn decode(blob: &[u8], rows: Vec<(String, Vec<u8>)>) -> Result<Self, Error> {
        let blob: StockBlob = serde_json::from_slice(blob)?;
        let mut state = SkuLocation {
            position: blob.position,
            next_seq: blob.next_seq,
            next_ticket: blob.next_ticket,
            ..SkuLocation::default()
        };
        let mut waiting = Vec::new();
        for (name, value) in rows {
            let Some((kind, holder)) = name.split_once('/') else {
                continue;
            };
            if kind == HOLD {
                let hold = HoldId::parse(holder)?;
                state.holds.insert(hold, serde_json::from_slice(&value)?);
                continue;
            }
            let order = OrderId::parse(holder)?;
            match kind {
                RESERVATION => {
                    state
                        .reservations
                        .insert(order, serde_json::from_slice(&value)?);
                }
                BACKORDER => {
                    let row: BackorderRow = serde_json::from_slice(&value)?;
                    waiting.push(Backorder {
                        order,
                        quantity: row.quantity,
                        ticket: row.ticket,
                    });
                }
                _ => {}
            }
        }
        state.backorders = waiting.into_iter().collect();
        Ok(state)
    }

    fn rows(&self, events: &[StockEvent]) -> Vec<(String, Option<Vec<u8>>)> {
        let mut rows = Vec::new();
        for event in events {
            let hold = match event {
                StockEvent::Held { hold, .. }
                | StockEvent::HoldReleased { hold, .. }
                | StockEvent::HoldConverted { hold, .. } => Some(hold),
                _ => None,
            };
            if let Some(hold) = hold {
                let kept = self.holds.get(hold).map(|q| q.to_string().into_bytes());
                rows.push((format!("{HOLD}/{hold}"), kept));
            }
            let (order, reservation, backorder) = match event {
                StockEvent::Reserved { order, .. }
                | StockEvent::Released { order, .. }
                | StockEvent::Shipped { order, .. }
                | StockEvent::HoldConverted { order, .. } => (order, true, false),
                StockEvent::BackorderAllocated { order, .. } => (order, true, true),
                StockEvent::BackorderQueued { order, .. }
                | StockEvent::BackorderWithdrawn { order, .. } => (order, false, true),
                StockEvent::Received { .. }
                | StockEvent::Adjusted { .. }
                | StockEvent::Held { .. }
                | StockEvent::HoldReleased { .. } => continue,
            };
            if reservation {
                let held = self
                    .reservations
                    .get(order)
                    .map(|q| q.to_string().into_bytes());
                rows.push((format!("{RESERVATION}/{order}"), held));
            }
            if backorder {
                let waiting = self.backorders.get(order).map(|b| {
                    let row = BackorderRow {
                        quantity: b.quantity,
                        ticket: b.ticket,
                    };
                    serde_json::to_vec(&row).unwrap_or_default()
                });
                rows.push((format!("{BACKORDER}/{order}"), waiting));
            }
        }
        rows
    }

    fn reply(&self, events: &[StockEvent]) -> Reply {
        let granted: u64 = events
            .iter()
            .map(|e| match e {
                StockEvent::Reserved { quantity, .. }
                | StockEvent::Held { quantity, .. }
                | StockEvent::HoldConverted { quantity, .. } => *quantity,
                _ => 0,
            })
            .sum();
        Reply::Grant(Grant {
            granted,
            position: self.position,
        })
    }
}

/// Row kinds of a SKU-location: what an order holds here, its place in the backorder queue,
/// and what a cart hold keeps here.
const RESERVATION: &str = "r";
const BACKORDER: &str = "b";
const HOLD: &str = "h";

/// Reads of a stored SKU-location that do not load every row: a hot SKU-location may hold
/// reservations for tens of thousands of open orders.
pub(crate) mod stock_reads {
    use super::{BackorderRow, StockBlob, BACKORDER, RESERVATION};
    use crate::Error;
    use keel_domain::inventory::{Backorder, Position};
    use keel_domain::OrderId;
    use keel_store::Store;

    /// The position (its blob only).
    pub(crate) fn position(store: &Store, key: &str) -> Result<Position, Error> {
        Ok(match store.load(key)? {
            Some(v) => serde_json::from_slice::<StockBlob>(&v.bytes)?.position,
            None => Position::default(),
        })
    }

    /// A page of reservations by order id, and the order to continue after when there are more.
    pub(crate) type ReservationPage = (Vec<(OrderId, u64)>, Option<OrderId>);

    /// Up to `limit` reservations by order id after `after`.
    pub(crate) fn reservations(
        store: &Store,
        key: &str,
        after: Option<&OrderId>,
        limit: usize,
    ) -> Result<ReservationPage, Error> {
        let prefix = format!("{RESERVATION}/");
        let start = after.map_or(prefix.clone(), |o| format!("{prefix}{o}"));
        let mut page = Vec::new();
        for row in store.rows(key, &start) {
            let (name, value) = row?;
            let Some(order) = name.strip_prefix(&prefix) else {
                break;
            };
            if after.is_some_and(|a| a.as_str() == order) {
                continue;
            }
            if page.len() == limit {
                let next = page.last().map(|(o, _): &(OrderId, u64)| o.clone());
                return Ok((page, next));
            }
            page.push((OrderId::parse(order)?, serde_json::from_slice(&value)?));
        }
        Ok((page, None))
    }

    /// The backorder queue, in queue order.
    pub(crate) fn backorders(store: &Store, key: &str) -> Result<Vec<Backorder>, Error> {
        let prefix = format!("{BACKORDER}/");
        let mut queue = Vec::new();
        for row in store.rows(key, &prefix) {
            let (name, value) = row?;
            let Some(order) = name.strip_prefix(&prefix) else {
                break;
            };
            let row: BackorderRow = serde_json::from_slice(&value)?;
            queue.push(Backorder {
                order: OrderId::parse(order)?,
                quantity: row.quantity,
                ticket: row.ticket,
            });
        }
        queue.sort_by_key(|b| b.ticket);
        Ok(queue)
    }
}

/// A SKU-location's blob: everything but its per-order collections.
#[derive(Serialize, Deserialize)]
struct StockBlob {
    position: Position,
    next_seq: u64,
    next_ticket: u64,
}

#[derive(Serialize, Deserialize)]
struct BackorderRow {
    quantity: u64,
    ticket: u64,
}

impl Hosted for SkuLocation {
    fn parse_key(key: &str) -> Option<Self::Id> {
        let (sku, location) = key.strip_prefix("s/")?.split_once('@')?;
        Some((SkuId::parse(sku).ok()?, LocationId::parse(location).ok()?))
    }

    fn directory(hosts: &Hosts) -> &Directory<EntityActor<Self>> {
        &hosts.stock
    }

    fn observed(hosts: &Hosts, key: &str, state: Option<&Self>) {
        let available = state.map_or(0, |s| s.position.available());
        hosts.mesh.availability.set(key, available);
    }
}

impl Entity for WarehouseNode {
    const KIND: &'static str = "warehouse";
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

    fn publications(&self, _: &LocationId, _: &[WarehouseEvent]) -> Vec<Publication> {
        // Fulfillment statuses are the order's to publish: it is their single writer.
        Vec::new()
    }

    type Summary = StatusCounts;

    fn summary(&self) -> StatusCounts {
        self.counts
    }

    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(&WarehouseBlob {
            counts: self.counts,
            version: self.version,
        })
    }

    fn decode(blob: &[u8], rows: Vec<(String, Vec<u8>)>) -> Result<Self, Error> {
        let blob: WarehouseBlob = serde_json::from_slice(blob)?;
        let open = rows
            .into_iter()
            .filter_map(|(name, value)| {
                let id = name.strip_prefix("f/")?;
                let id = FulfillmentId::parse(id).map(|(id, _)| id);
                Some(
                    id.map_err(Error::from)
                        .and_then(|id| Ok((id, serde_json::from_slice(&value)?))),
                )
            })
            .collect::<Result<_, Error>>()?;
        Ok(WarehouseNode {
            open,
            counts: blob.counts,
            version: blob.version,
        })
    }

    fn rows(&self, events: &[WarehouseEvent]) -> Vec<(String, Option<Vec<u8>>)> {
        events
            .iter()
            .map(|event| {
                let id = match event {
                    WarehouseEvent::Accepted { fulfillment, .. }
                    | WarehouseEvent::Tracked { fulfillment, .. } => fulfillment,
                };
                let open: Option<&OpenFulfillment> = self.open.get(id);
                (
                    format!("f/{id}"),
                    open.map(|f| serde_json::to_vec(f).unwrap_or_default()),
                )
            })
            .collect()
    }
}

/// A warehouse node's blob: its open fulfillments are rows.
#[derive(Serialize, Deserialize)]
struct WarehouseBlob {
    counts: StatusCounts,
    version: u64,
}

impl Hosted for WarehouseNode {
    fn parse_key(key: &str) -> Option<Self::Id> {
        LocationId::parse(key.strip_prefix("w/")?).ok()
    }

    fn directory(hosts: &Hosts) -> &Directory<EntityActor<Self>> {
        &hosts.warehouses
    }
}

impl Entity for Order {
    const KIND: &'static str = "order";
    type Id = OrderId;
    type Command = OrderCommand;
    type Event = OrderEvent;

    fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, keel_domain::Error> {
        Order::decide(self, command)
    }

    fn apply(&mut self, event: &OrderEvent, at: u64) -> Option<LedgerEntry> {
        Order::apply(self, event);
        self.note_closed(at);
        None
    }

    fn effects(&self, id: &OrderId, event: &OrderEvent) -> Vec<Effect> {
        effects::of_order_event(id, event)
    }

    fn publications(&self, id: &OrderId, events: &[OrderEvent]) -> Vec<Publication> {
        let channel = &self.request.channel;
        let mut publications = vec![Publication {
            subject: keel_protocol::events::order(channel, id),
            payload: views::order_event(self),
        }];
        let mut touched: Vec<&FulfillmentId> = Vec::new();
        for event in events {
            match event {
                OrderEvent::Allocated { fulfillments, .. }
                | OrderEvent::Cancelled { fulfillments, .. } => {
                    touched.extend(fulfillments.iter().map(|f| &f.id));
                }
                OrderEvent::BackorderFilled { fulfillment } => touched.push(&fulfillment.id),
                OrderEvent::FulfillmentAccepted { fulfillment }
                | OrderEvent::FulfillmentProgressed { fulfillment, .. } => {
                    touched.push(fulfillment)
                }
                OrderEvent::AllocationStarted { .. } | OrderEvent::BackorderReturned { .. } => {}
            }
        }
        touched.sort();
        touched.dedup();
        publications.extend(touched.into_iter().filter_map(|fid| {
            let f = self.fulfillment(fid)?;
            Some(Publication {
                subject: keel_protocol::events::fulfillment(&f.location, fid),
                payload: views::fulfillment_event(self, f),
            })
        }));
        publications
    }

    type Summary = OrderStatus;

    fn summary(&self) -> OrderStatus {
        self.status()
    }

    fn marks(&self, id: &OrderId) -> Vec<(String, bool)> {
        let allocating = matches!(self.allocation, Allocation::InProgress { .. });
        let mut marks = vec![(crate::keys::allocating(id), allocating)];
        // Due for the archive from then on (the archiver clears it when it archives).
        marks.extend(
            self.closed_at
                .map(|closed_at| (crate::keys::archive_due(closed_at, id), true)),
        );
        marks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use keel_domain::DocumentId;

    /// Applies commands the way the runtime does and collects the rows each commit writes.
    fn run(
        state: &mut SkuLocation,
        rows: &mut std::collections::BTreeMap<String, Vec<u8>>,
        c: StockCommand,
    ) {
        let events = state.decide(&c).unwrap();
        for e in &events {
            state.apply(e, 0);
        }
        for (name, value) in Entity::rows(state, &events) {
            match value {
                Some(v) => rows.insert(name, v),
                None => rows.remove(&name),
            };
        }
    }

    #[test]
    fn a_sku_location_rebuilt_from_blob_and_rows_equals_the_live_one() {
        let order = |s: &str| OrderId::parse(s).unwrap();
        let (mut live, mut rows) = (SkuLocation::default(), std::collections::BTreeMap::new());
        let receipt = |q| StockCommand::Receive {
            receipt: DocumentId::parse("r").unwrap(),
            quantity: q,
        };
        run(&mut live, &mut rows, receipt(3));
        for (o, q) in [("a", 2), ("b", 2)] {
            run(
                &mut live,
                &mut rows,
                StockCommand::Reserve {
                    order: order(o),
                    quantity: q,
                },
            );
        }
        for (o, q) in [("c", 2), ("d", 1), ("c", 1)] {
            run(
                &mut live,
                &mut rows,
                StockCommand::Backorder {
                    order: order(o),
                    quantity: q,
                },
            );
        }
        let release = StockCommand::Release {
            order: order("a"),
            quantity: 2,
            reason: "test".into(),
        };
        run(&mut live, &mut rows, release);
        run(
            &mut live,
            &mut rows,
            StockCommand::WithdrawBackorder { order: order("d") },
        );
        let rebuilt =
            SkuLocation::decode(&live.encode().unwrap(), rows.clone().into_iter().collect())
                .unwrap();
        assert_eq!(rebuilt, live);
        assert!(
            !live.backorders.is_empty() && live.reservations.len() >= 2,
            "{live:?}"
        );
        let hold = |s: &str| HoldId::parse(s).unwrap();
        run(&mut live, &mut rows, receipt(4));
        for h in ["h1", "h2"] {
            let keep = StockCommand::Hold {
                hold: hold(h),
                quantity: 1,
            };
            run(&mut live, &mut rows, keep);
        }
        let convert = StockCommand::ConvertHold {
            hold: hold("h1"),
            order: order("e"),
            quantity: 1,
        };
        run(&mut live, &mut rows, convert);
        assert_eq!(live.holds.len(), 1, "{live:?}");
        let rebuilt =
            SkuLocation::decode(&live.encode().unwrap(), rows.into_iter().collect()).unwrap();
        assert_eq!(rebuilt, live, "holds are rows too");
    }

    #[test]
    fn a_warehouse_node_rebuilt_from_blob_and_rows_equals_the_live_one() {
        let (mut live, mut rows) = (WarehouseNode::default(), Vec::new());
        for n in 1..=3 {
            let order = OrderId::parse("o").unwrap();
            let accept = WarehouseCommand::Accept {
                fulfillment: FulfillmentId::new(&order, n),
                order,
                lines: vec![],
            };
            let events = live.decide(&accept);
            events.iter().for_each(|e| live.apply(e));
            rows.extend(
                Entity::rows(&live, &events)
                    .into_iter()
                    .filter_map(|(k, v)| Some((k, v?))),
            );
        }
        let rebuilt = WarehouseNode::decode(&live.encode().unwrap(), rows).unwrap();
        assert_eq!(rebuilt, live);
    }
}
