//! The node's wiring: where each entity's actor lives, and how one actor reaches another.

use crate::actors::{EntityActor, Exec, ExecReply, OrderActor, OrderExec, Traced};
use crate::catalog::Catalog;
use crate::directory::{Directory, Factory};
use crate::outbox::{outgoing, OutboxEntry, Partial, Relay};
use crate::Error;
use actix::prelude::*;
use keel_bus::SharedBus;
use keel_domain::effects::Effect;
use keel_domain::hold::Hold;
use keel_domain::inventory::SkuLocation;
use keel_domain::warehouse::WarehouseNode;
use keel_domain::{LocationId, SkuId};
use keel_store::Store;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

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
    pub holds: Directory<EntityActor<Hold>>,
    /// The node's time: hold expiry and every timer are measured against it.
    pub clock: Arc<dyn crate::Clock>,
    /// What each SKU-location last reported it can promise (the saga's planning hint).
    pub availability: crate::availability::Availability,
    /// Counters of the commands consumer (durable bus only).
    pub commands: crate::commands::CommandStats,
    /// The partitions this node serves (all of them outside a cluster).
    pub partitions: crate::partitions::Partitions,
    /// Where outcomes of this node's commands come back (in a cluster).
    pub outcome_subject: Option<String>,
    /// Senders waiting for the outcome of a command they sent through JetStream.
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Numbers the waited-for commands sent to other nodes (see [`Router::command`]).
    sent: std::sync::atomic::AtomicU64,
    relay: OnceLock<Relay>,
}

/// What applying a command at its target came to: a SKU-location answers a reply.
pub(crate) type Outcome = Result<Option<ExecReply>, Error>;

/// How long a sender waits for the outcome of a command it sent through JetStream.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

impl Router {
    pub(crate) fn new(
        store: Store,
        bus: SharedBus,
        catalog: Catalog,
        arbiters: Arc<[ArbiterHandle]>,
        idle_after: Duration,
        cluster: Option<(Arc<dyn crate::Sharding>, String)>,
        clock: Arc<dyn crate::Clock>,
    ) -> Arc<Router> {
        let (sharding, node) = cluster.unzip();
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
            let holds: Factory<EntityActor<Hold>> = {
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
                holds: Directory::new(Arc::clone(&arbiters), 16, holds),
                clock,
                availability: crate::availability::Availability::new(),
                commands: crate::commands::CommandStats::default(),
                partitions: crate::partitions::Partitions::new(sharding),
                outcome_subject: node.as_deref().map(keel_protocol::outcome_subject),
                pending: Mutex::new(HashMap::new()),
                sent: std::sync::atomic::AtomicU64::new(0),
                relay: OnceLock::new(),
            }
        });
        let relay = Relay::start(Arc::downgrade(&router), &arbiters);
        let _ = router.relay.set(relay);
        router
    }

    /// How a decision taken now is written.
    pub(crate) fn writing(&self) -> crate::entity::Writing<'_> {
        crate::entity::Writing {
            store: &self.store,
            durable_events: self.durable_events,
            at: self.clock.now_ms(),
        }
    }

    pub(crate) fn relay(&self) -> &Relay {
        self.relay.get().expect("the relay starts with the router")
    }

    /// Sends `msg` to the actor of `key`, re-activating it if its mailbox closed (passivation).
    /// The actor's handler continues the current span's trace.
    pub(crate) async fn ask<A, M>(
        &self,
        directory: &Directory<A>,
        key: &str,
        msg: M,
    ) -> Result<M::Result, Error>
    where
        A: Actor<Context = Context<A>> + Handler<Traced<M>>,
        M: Message + Clone + Send + 'static,
        M::Result: Send,
    {
        let traced = Traced {
            msg,
            parent: tracing::Span::current(),
        };
        for _ in 0..ACTIVATION_RETRIES {
            let addr = directory.get(key);
            match addr.send(traced.clone()).await {
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

    /// Sends one outbox entry on its way: on a durable bus a command is handed to JetStream
    /// (the commands consumer delivers it, see `commands.rs`); otherwise it is delivered to its
    /// target here. A publication goes to the bus either way.
    pub(crate) async fn deliver(&self, entry: &OutboxEntry) -> Result<(), Error> {
        match entry {
            OutboxEntry::Effect {
                command_id, effect, ..
            } if !self.durable_events => {
                let span = tracing::info_span!("outbox.deliver", command_id = %command_id);
                keel_telemetry::set_parent(&span, entry.trace());
                self.deliver_local(command_id, effect)
                    .instrument(span)
                    .await
                    .map(drop)
            }
            OutboxEntry::Effect { .. } => self.publish(entry).await,
            OutboxEntry::Publish { .. } => self.publish(entry).await,
        }
    }

    /// Sends a relay shard's batch of entries on their way, in order. On a durable bus the
    /// batch shares one flush and its publishes are pipelined; otherwise each is delivered in
    /// turn. A failure says how many from the front were delivered.
    pub(crate) async fn deliver_in_order(&self, entries: &[&OutboxEntry]) -> Result<(), Partial> {
        if !self.durable_events {
            for (delivered, entry) in entries.iter().enumerate() {
                self.deliver(entry)
                    .await
                    .map_err(|error| Partial { delivered, error })?;
            }
            return Ok(());
        }
        let failed = |error| Partial {
            delivered: 0,
            error,
        };
        self.store.flush().await.map_err(|e| failed(e.into()))?;
        let messages = entries
            .iter()
            .map(|entry| self.outgoing(entry))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| failed(e.into()))?;
        self.bus
            .publish_in_order(messages)
            .await
            .map_err(|p| Partial {
                delivered: p.accepted,
                error: Error::Unavailable(format!("publish: {}", p.error)),
            })
    }

    /// An entry as the bus carries it (commands in their target's partition).
    fn outgoing(&self, entry: &OutboxEntry) -> Result<keel_bus::Outgoing, serde_json::Error> {
        outgoing(entry, &|key| self.partitions.of(key))
    }

    /// Publishes an entry on its subject with its id and its trace context.
    async fn publish(&self, entry: &OutboxEntry) -> Result<(), Error> {
        self.publish_outgoing(self.outgoing(entry)?).await
    }

    async fn publish_outgoing(&self, message: keel_bus::Outgoing) -> Result<(), Error> {
        let keel_bus::Outgoing {
            subject,
            headers,
            payload,
        } = message;
        // A durable bus keeps what it is given even if this node then crashes: the decision
        // that owes this message must be on disk first, or a crash could leave a command (or
        // an event) for a change that never happened. The flush is shared (group commit).
        if self.durable_events {
            self.store.flush().await?;
        }
        self.bus
            .publish(&subject, headers, payload)
            .await
            .map_err(|e| Error::Unavailable(format!("publish {subject}: {e}")))
    }

    /// Has `effect` applied at its target and waits for the outcome. On a durable bus the
    /// command travels through JetStream like every command between actors, and this waits
    /// until the commands consumer applied it; otherwise it is delivered here.
    pub(crate) async fn command(&self, command_id: &str, effect: &Effect) -> Outcome {
        if !self.durable_events {
            return self.deliver_local(command_id, effect).await;
        }
        let command = command_json(effect)?;
        let target = self.partitions.of(&crate::outbox::target_key(effect));
        let here = self.partitions.serves(target);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().insert(command_id.to_owned(), tx);
        // Sent and applied before (a resumed saga repeats its command ids): JetStream would
        // drop the repeat as a duplicate and no outcome would come, so answer from the record.
        // (A repeat whose original is still on its way is answered when that one is applied:
        // the waiter is registered first.) Only this node's own partitions are on record
        // here; a command to another node's gets a message id of its own instead, so that the
        // target answers a repeat from its record.
        if here {
            let now = self.clock.now_ms();
            match crate::entity::recorded_reply(&self.store, command_id, &command, now) {
                Ok(None) => {}
                recorded => {
                    self.pending.lock().remove(command_id);
                    let reply = recorded?.unwrap_or_default();
                    let replayed = ExecReply {
                        reply,
                        replayed: true,
                    };
                    return Ok(answers(effect).then_some(replayed));
                }
            }
        }
        let entry = OutboxEntry::Effect {
            command_id: command_id.to_owned(),
            effect: effect.clone(),
            trace: keel_telemetry::traceparent(&tracing::Span::current()),
        };
        let mut message = self.outgoing(&entry)?;
        if let Some(outcome_to) = &self.outcome_subject {
            let headers = &mut message.headers;
            headers.insert(
                keel_protocol::OUTCOME_TO_HEADER.to_owned(),
                outcome_to.clone(),
            );
            if !here {
                let n = self.sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = format!("{command_id}~{outcome_to}.{n}");
                headers.insert(keel_bus::MESSAGE_ID_HEADER.to_owned(), id);
            }
        }
        let outcome = match self.publish_outgoing(message).await {
            Ok(()) => tokio::time::timeout(OUTCOME_TIMEOUT, rx).await,
            Err(e) => Ok(Ok(Err(e))),
        };
        match outcome {
            Ok(Ok(outcome)) => {
                self.pending.lock().remove(command_id);
                outcome
            }
            _ => {
                self.pending.lock().remove(command_id);
                // It may still be applied later, in order with what follows on its subject.
                Err(Error::Unavailable(format!(
                    "{command_id} was not applied within {OUTCOME_TIMEOUT:?}"
                )))
            }
        }
    }

    /// Has `effect` applied at its target now and answers the outcome, like a request: here
    /// when this node serves the target, else through [`Router::command`]. For a question
    /// whose refusal is an answer (an order converting a hold): a refusal records nothing, so
    /// a repeat must reach the target again, which JetStream would drop as a duplicate of a
    /// command sent under the same id from here.
    pub(crate) async fn call(&self, command_id: &str, effect: &Effect) -> Outcome {
        let target = self.partitions.of(&crate::outbox::target_key(effect));
        if self.partitions.serves(target) {
            self.deliver_local(command_id, effect).await
        } else {
            self.command(command_id, effect).await
        }
    }

    /// The final outcome of a command the commands consumer applied, for a sender on this
    /// node waiting on it; answers whether there was one (most commands have nobody waiting).
    pub(crate) fn settled(&self, command_id: &str, outcome: Outcome) -> bool {
        match self.pending.lock().remove(command_id) {
            Some(waiting) => {
                let _ = waiting.send(outcome);
                true
            }
            None => false,
        }
    }

    /// Has a command applied at a SKU-location (see [`Router::command`]) and answers its reply.
    pub(crate) async fn send_stock(
        &self,
        sku: &SkuId,
        location: &LocationId,
        command_id: String,
        command: keel_domain::inventory::StockCommand,
    ) -> Result<ExecReply, Error> {
        let effect = Effect::Stock {
            sku: sku.clone(),
            location: location.clone(),
            command,
        };
        let executed = self.command(&command_id, &effect).await?.ok_or_else(|| {
            Error::Internal(format!("{command_id}: a stock command without reply"))
        })?;
        let key = crate::keys::sku_location(sku, location);
        if !self.partitions.serves(self.partitions.of(&key)) {
            // The planning hint of a SKU-location served elsewhere: what it just answered.
            let position = serde_json::from_value::<keel_domain::inventory::Position>(
                executed.reply["position"].clone(),
            );
            if let Ok(position) = position {
                self.availability.set(&key, position.available());
            }
        }
        Ok(executed)
    }

    /// Delivers a command to its target actor on this node (its command id makes it
    /// idempotent there); a SKU-location answers a reply.
    pub(crate) async fn deliver_local(&self, command_id: &str, effect: &Effect) -> Outcome {
        let id = Some(command_id.to_owned());
        match effect.clone() {
            Effect::Stock {
                sku,
                location,
                command,
            } => self
                .stock_exec(&sku, &location, id, command)
                .await
                .map(Some),
            Effect::Order { order, command } => {
                let key = crate::keys::order(&order);
                let msg = OrderExec {
                    command_id: id,
                    command,
                };
                self.ask(&self.orders, &key, msg).await?.map(|_| None)
            }
            Effect::Warehouse { location, command } => {
                let key = crate::keys::warehouse(&location);
                let msg = Exec {
                    command_id: id,
                    command,
                };
                self.ask(&self.warehouses, &key, msg).await?.map(|_| None)
            }
            Effect::Hold { hold, command } => {
                let key = crate::keys::hold(&hold);
                let msg = Exec {
                    command_id: id,
                    command,
                };
                self.ask(&self.holds, &key, msg).await?.map(Some)
            }
        }
    }

    /// Has the SKU-location commands of an order's decision applied now, waiting for them
    /// (SKU-locations never wait on anyone, so an order may wait on them), and queues the rest
    /// for the relay.
    pub(crate) async fn deliver_from_order(&self, executed: crate::entity::Batch) {
        let outbox = executed.outbox;
        let mut later = Vec::new();
        let mut entries = outbox.into_iter();
        for (id, entry) in entries.by_ref() {
            let delivery = match &entry {
                OutboxEntry::Effect {
                    command_id,
                    effect: effect @ Effect::Stock { .. },
                    ..
                } => self.command(command_id, effect).await,
                _ => {
                    later.push((id, entry));
                    continue;
                }
            };
            match delivery {
                Ok(_) => self.delivered(id),
                Err(refusal) if refusal.is_refusal() => {
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

/// The command an effect carries, as its target records it with its command id.
fn command_json(effect: &Effect) -> Result<serde_json::Value, serde_json::Error> {
    match effect {
        Effect::Stock { command, .. } => serde_json::to_value(command),
        Effect::Order { command, .. } => serde_json::to_value(command),
        Effect::Warehouse { command, .. } => serde_json::to_value(command),
        Effect::Hold { command, .. } => serde_json::to_value(command),
    }
}

/// Whether the target of `effect` answers a reply its sender reads (a SKU-location's grant, a
/// hold's state).
fn answers(effect: &Effect) -> bool {
    matches!(effect, Effect::Stock { .. } | Effect::Hold { .. })
}
