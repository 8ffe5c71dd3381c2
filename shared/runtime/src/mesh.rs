//! How actors reach each other: a command to another entity is delivered here when this
//! node serves it, else through JetStream (waiting for its outcome when the sender needs it),
//! and what a decision owes others goes to the relay. The mesh knows partitions, the store
//! and the bus, not the actors: the actor registry ([`Local`]) delivers what is for this node.

use crate::availability::Availability;
use crate::consumer::CommandStats;
use crate::outbox::{outgoing, OutboxEntry};
use crate::partitions::Partitions;
use crate::relay::{Deliver, Partial, Relay};
use crate::replies::{Answer, Grant, Reply};
use crate::Error;
use futures::future::BoxFuture;
use futures::FutureExt;
use keel_bus::SharedBus;
use keel_domain::effects::Effect;
use keel_domain::{LocationId, SkuId};
use keel_store::Store;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;
use tracing::Instrument;

/// Delivers a command to its target actor on this node (the actor registry).
pub(crate) trait Local: Send + Sync + 'static {
    /// Has the actor of `effect`'s target apply it (its command id makes it idempotent
    /// there); a SKU-location and a hold answer a reply.
    fn deliver_local<'a>(
        &'a self,
        command_id: &'a str,
        effect: &'a Effect,
    ) -> BoxFuture<'a, Outcome>;
}

/// The node's messaging between actors.
pub(crate) struct Mesh {
    pub store: Store,
    pub bus: SharedBus,
    /// Whether the bus keeps publications (then they go through the outbox).
    pub durable_events: bool,
    /// The node's time: hold expiry and every timer are measured against it.
    pub clock: Arc<dyn crate::Clock>,
    /// What each SKU-location last reported it can promise (the saga's planning hint).
    pub availability: Availability,
    /// Counters of the durable consumers (durable bus only).
    pub commands: CommandStats,
    /// The partitions this node serves (all of them outside a cluster).
    pub partitions: Partitions,
    /// Where outcomes of this node's commands come back (in a cluster).
    pub outcome_subject: Option<String>,
    /// Delivers outbox entries outside the actors that owe them.
    pub relay: Relay,
    /// The actors of this node.
    local: Weak<dyn Local>,
    /// Senders waiting for the outcome of a command they sent through JetStream.
    pending: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    /// Numbers the waited-for commands sent to other nodes (see [`Mesh::command`]).
    sent: std::sync::atomic::AtomicU64,
}

/// The parts a mesh is made of.
pub(crate) struct Parts {
    pub store: Store,
    pub bus: SharedBus,
    pub clock: Arc<dyn crate::Clock>,
    pub cluster: Option<(Arc<dyn crate::Sharding>, String)>,
    pub arbiters: Arc<[actix::ArbiterHandle]>,
}

/// What applying a command at its target came to: a SKU-location and a hold answer a reply.
pub(crate) type Outcome = Result<Option<Answer>, Error>;

/// How long a sender waits for the outcome of a command it sent through JetStream.
const OUTCOME_TIMEOUT: Duration = Duration::from_secs(10);

impl Mesh {
    /// A mesh whose commands for this node go to `local`; starts the relay.
    pub(crate) fn new(parts: Parts, local: Weak<dyn Local>) -> Arc<Mesh> {
        let Parts {
            store,
            bus,
            clock,
            cluster,
            arbiters,
        } = parts;
        let (sharding, node) = cluster.unzip();
        Arc::new_cyclic(|me: &Weak<Mesh>| {
            let to: Weak<dyn Deliver> = me.clone();
            Mesh {
                store,
                durable_events: bus.durable(),
                bus,
                clock,
                availability: Availability::new(),
                commands: CommandStats::default(),
                partitions: Partitions::new(sharding),
                outcome_subject: node.as_deref().map(keel_protocol::outcome_subject),
                relay: Relay::start(to, &arbiters),
                local,
                pending: Mutex::new(HashMap::new()),
                sent: std::sync::atomic::AtomicU64::new(0),
            }
        })
    }

    /// How a decision taken now is written.
    pub(crate) fn writing(&self) -> crate::entity::Writing<'_> {
        crate::entity::Writing {
            store: &self.store,
            durable_events: self.durable_events,
            at: self.clock.now_ms(),
        }
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
                    let reply = recorded?.unwrap_or(Reply::Done);
                    let replayed = Answer {
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
    /// when this node serves the target, else through [`Mesh::command`]. For a question
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

    /// Has a command applied at a SKU-location (see [`Mesh::command`]) and answers its grant.
    pub(crate) async fn send_stock(
        &self,
        sku: &SkuId,
        location: &LocationId,
        command_id: String,
        command: keel_domain::inventory::StockCommand,
    ) -> Result<Grant, Error> {
        let effect = Effect::Stock {
            sku: sku.clone(),
            location: location.clone(),
            command,
        };
        let executed = self.command(&command_id, &effect).await?.ok_or_else(|| {
            Error::Internal(format!("{command_id}: a stock command without reply"))
        })?;
        let grant = executed.reply.grant()?;
        let key = crate::keys::sku_location(sku, location);
        if !self.partitions.serves(self.partitions.of(&key)) {
            // The planning hint of a SKU-location served elsewhere: what it just answered.
            self.availability.set(&key, grant.position.available());
        }
        Ok(grant)
    }

    /// Takes the planning hint of a SKU-location another node serves from its position event
    /// (`keel.v1.evt.inventory.…`); the actors of this node's own SKU-locations report theirs.
    pub(crate) fn observe_position(&self, payload: &[u8]) {
        use keel_protocol::wire::replies::Position;
        let Ok(position) = serde_json::from_slice::<Position>(payload) else {
            return;
        };
        let (Ok(sku), Ok(location)) = (
            SkuId::parse(&position.sku),
            LocationId::parse(&position.location),
        ) else {
            return;
        };
        let key = crate::keys::sku_location(&sku, &location);
        if !self.partitions.serves(self.partitions.of(&key)) {
            self.availability.set(&key, position.available);
        }
    }

    /// Delivers a command to its target actor on this node.
    pub(crate) async fn deliver_local(&self, command_id: &str, effect: &Effect) -> Outcome {
        match self.local.upgrade() {
            Some(local) => local.deliver_local(command_id, effect).await,
            None => Err(Error::Unavailable("the node is stopping".into())),
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
        self.relay.submit(later);
        self.relay.publish(executed.published);
    }

    /// Removes a delivered outbox entry.
    pub(crate) fn delivered(&self, id: u64) {
        if let Err(e) = self.store.outbox_delivered(id) {
            // It stays and is delivered again after a restart: harmless, receivers dedupe.
            tracing::warn!(outbox_id = id, error = %e, "could not remove a delivered outbox entry");
        }
    }
}

impl Deliver for Mesh {
    fn deliver_in_order<'a>(
        &'a self,
        entries: &'a [&'a OutboxEntry],
    ) -> BoxFuture<'a, Result<(), Partial>> {
        Mesh::deliver_in_order(self, entries).boxed()
    }

    fn delivered(&self, id: u64) {
        Mesh::delivered(self, id);
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
