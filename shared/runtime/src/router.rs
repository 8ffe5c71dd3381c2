//! The node's wiring: where each entity's actor lives, and how one actor reaches another.

use crate::actors::{EntityActor, Exec, ExecReply, OrderActor, OrderExec};
use crate::catalog::Catalog;
use crate::directory::{Directory, Factory};
use crate::outbox::{publication_payload, OutboxEntry, Relay};
use crate::Error;
use actix::prelude::*;
use keel_bus::SharedBus;
use keel_domain::effects::Effect;
use keel_domain::inventory::SkuLocation;
use keel_domain::warehouse::WarehouseNode;
use keel_domain::{LocationId, SkuId};
use keel_store::Store;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// How many times a message is re-sent to a fresh activation after a mailbox closed under it.
const ACTIVATION_RETRIES: usize = 5;

/// Everything an actor needs to reach the rest of the node.
pub(crate) struct Router {
    pub store: Store,
    pub bus: SharedBus,
    pub catalog: Catalog,
    pub idle_after: Duration,
    /// Whether the bus keeps publications (then they go through the outbox).
    pub durable_events: bool,
    pub orders: Directory<OrderActor>,
    pub stock: Directory<EntityActor<SkuLocation>>,
    pub warehouses: Directory<EntityActor<WarehouseNode>>,
    relay: OnceLock<Relay>,
}

impl Router {
    pub(crate) fn new(
        store: Store,
        bus: SharedBus,
        catalog: Catalog,
        arbiters: Arc<[ArbiterHandle]>,
        idle_after: Duration,
    ) -> Arc<Router> {
        let router = Arc::new_cyclic(|me: &Weak<Router>| {
            let orders: Factory<OrderActor> = {
                let me = me.clone();
                Arc::new(move |key| OrderActor::activate(&me, key))
            };
            let stock: Factory<EntityActor<SkuLocation>> = {
                let me = me.clone();
                Arc::new(move |key| EntityActor::activate(&me, key))
            };
            let warehouses: Factory<EntityActor<WarehouseNode>> = {
                let me = me.clone();
                Arc::new(move |key| EntityActor::activate(&me, key))
            };
            Router {
                store,
                durable_events: bus.durable(),
                bus,
                catalog,
                idle_after,
                orders: Directory::new(Arc::clone(&arbiters), 16, orders),
                // Hot SKU-locations take the brunt of a promotion: a deeper mailbox.
                stock: Directory::new(Arc::clone(&arbiters), 256, stock),
                warehouses: Directory::new(Arc::clone(&arbiters), 64, warehouses),
                relay: OnceLock::new(),
            }
        });
        let relay = Relay::start(Arc::downgrade(&router), &arbiters);
        let _ = router.relay.set(relay);
        router
    }

    pub(crate) fn relay(&self) -> &Relay {
        self.relay.get().expect("the relay starts with the router")
    }

    /// Sends `msg` to the actor of `key`, re-activating it if its mailbox closed (passivation).
    pub(crate) async fn ask<A, M>(
        &self,
        directory: &Directory<A>,
        key: &str,
        msg: M,
    ) -> Result<M::Result, Error>
    where
        A: Actor<Context = Context<A>> + Handler<M>,
        M: Message + Clone + Send + 'static,
        M::Result: Send,
    {
        for _ in 0..ACTIVATION_RETRIES {
            let addr = directory.get(key);
            match addr.send(msg.clone()).await {
                Ok(result) => return Ok(result),
                Err(MailboxError::Closed) => directory.remove(key, &addr),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Unavailable(format!("{key} could not be activated")))
    }

    /// Executes a command on a SKU-location.
    pub(crate) async fn stock_exec(
        &self,
        sku: &SkuId,
        location: &LocationId,
        command_id: Option<String>,
        command: keel_domain::inventory::StockCommand,
    ) -> Result<ExecReply, Error> {
        let key = crate::keys::sku_location(sku, location);
        self.ask(
            &self.stock,
            &key,
            Exec {
                command_id,
                command,
            },
        )
        .await?
    }

    /// Delivers one outbox entry to its target (the entry's id makes it idempotent there).
    pub(crate) async fn deliver(&self, entry: &OutboxEntry) -> Result<(), Error> {
        match entry {
            OutboxEntry::Effect { command_id, effect } => {
                let id = Some(command_id.clone());
                match effect.clone() {
                    Effect::Stock {
                        sku,
                        location,
                        command,
                    } => self
                        .stock_exec(&sku, &location, id, command)
                        .await
                        .map(drop),
                    Effect::Order { order, command } => {
                        let key = crate::keys::order(&order);
                        let msg = OrderExec {
                            command_id: id,
                            command,
                        };
                        self.ask(&self.orders, &key, msg).await?.map(drop)
                    }
                    Effect::Warehouse { location, command } => {
                        let key = crate::keys::warehouse(&location);
                        let msg = Exec {
                            command_id: id,
                            command,
                        };
                        self.ask(&self.warehouses, &key, msg).await?.map(drop)
                    }
                }
            }
            OutboxEntry::Publish(p) => {
                let headers = keel_bus::Headers::new();
                self.bus
                    .publish(&p.subject, headers, publication_payload(p))
                    .await
                    .map_err(|e| Error::Unavailable(format!("publish {}: {e}", p.subject)))
            }
        }
    }

    /// Delivers the SKU-location commands of an order's decision now (SKU-locations never wait
    /// on anyone, so an order may wait on them) and queues the rest for the relay.
    pub(crate) async fn deliver_from_order(&self, executed: crate::entity::Executed) {
        let outbox = executed.outbox;
        let mut later = Vec::new();
        let mut entries = outbox.into_iter();
        for (id, entry) in entries.by_ref() {
            let inline = matches!(
                &entry,
                OutboxEntry::Effect {
                    effect: Effect::Stock { .. },
                    ..
                }
            );
            if !inline {
                later.push((id, entry));
                continue;
            }
            match self.deliver(&entry).await {
                Ok(()) => self.delivered(id),
                Err(Error::Domain(refusal)) => {
                    tracing::error!(outbox_id = id, ?entry, %refusal, "order effect refused");
                    self.delivered(id);
                }
                Err(e) => {
                    tracing::warn!(outbox_id = id, error = %e, "inline delivery failed; relaying");
                    later.push((id, entry));
                    break;
                }
            }
        }
        later.extend(entries);
        self.relay().submit(later);
        self.relay().publish(executed.published);
    }

    /// Removes a delivered outbox entry.
    pub(crate) fn delivered(&self, id: u64) {
        if let Err(e) = self.store.outbox_delivered(id) {
            // It stays and is delivered again after a restart: harmless, receivers dedupe.
            tracing::warn!(outbox_id = id, error = %e, "could not remove a delivered outbox entry");
        }
    }
}
