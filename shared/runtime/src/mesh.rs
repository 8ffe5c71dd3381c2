//! How actors reach each other. A command to an entity of a partition this node serves is
//! delivered here, in process: its effect is written to this node's log like every other
//! decision, and it never touches the bus. A command to a partition another node serves
//! travels to that node in a batch (one core NATS request per sender, partition and round,
//! see `commands.rs`), and counts as delivered only once that node answered that its effect
//! is durable: until then the sender's outbox keeps it, and sends it again. What a decision
//! owes others goes to the relay. The mesh knows partitions, the store and the bus, not the
//! actors: the actor registry ([`Local`]) delivers what is for this node.

use crate::availability::Availability;
use crate::consumer::CommandStats;
use crate::outbox::{target_key, OutboxEntry};
use crate::partitions::Partitions;
use crate::relay::{Deliver, Partial, Relay};
use crate::replies::{Answer, Grant, OutcomeMessage};
use crate::Error;
use futures::future::BoxFuture;
use futures::FutureExt;
use keel_bus::SharedBus;
use keel_domain::effects::Effect;
use keel_domain::{LocationId, SkuId};
use keel_store::Store;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
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
    /// Counters of the commands between nodes and of the warehouse consumer.
    pub commands: CommandStats,
    /// The partitions this node serves (all of them outside a cluster).
    pub partitions: Partitions,
    /// Delivers outbox entries outside the actors that owe them.
    pub relay: Relay,
    /// For fault tests: abort once a command batch from another node is applied and
    /// durable, before it is answered.
    pub crash_before_batch_reply: bool,
    /// The highest epoch of each partition whose commands this node applied from a batch.
    pub fences: crate::fences::Fences,
    /// Command batches on their way to other nodes, coalesced per partition.
    batches: crate::batches::Batches<Outcome>,
    /// This mesh (its batch senders run as tasks of their own).
    me: Weak<Mesh>,
    /// The actors of this node.
    local: Weak<dyn Local>,
}

/// The parts a mesh is made of.
pub(crate) struct Parts {
    pub store: Store,
    pub bus: SharedBus,
    pub clock: Arc<dyn crate::Clock>,
    pub sharding: Option<Arc<dyn crate::Sharding>>,
    pub arbiters: Arc<[actix::ArbiterHandle]>,
    /// For fault tests: see [`Mesh::crash_before_batch_reply`].
    pub crash_before_batch_reply: bool,
}

/// What applying a command at its target came to: a SKU-location and a hold answer a reply.
pub(crate) type Outcome = Result<Option<Answer>, Error>;

/// Where an outbox entry goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A command for an actor of this node.
    Here,
    /// A command for the node serving this partition.
    Node(u32),
    /// A publication, for the bus.
    Bus,
}

impl Mesh {
    /// A mesh whose commands for this node go to `local`; starts the relay.
    pub(crate) fn new(parts: Parts, local: Weak<dyn Local>) -> Arc<Mesh> {
        let Parts {
            store,
            bus,
            clock,
            sharding,
            arbiters,
            crash_before_batch_reply,
        } = parts;
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
                relay: Relay::start(to, &arbiters),
                crash_before_batch_reply,
                fences: crate::fences::Fences::default(),
                batches: crate::batches::Batches::default(),
                me: me.clone(),
                local,
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

    fn route(&self, entry: &OutboxEntry) -> Route {
        match entry {
            OutboxEntry::Publish { .. } => Route::Bus,
            OutboxEntry::Effect { effect, .. } => {
                let partition = self.partitions.of(&target_key(effect));
                if self.partitions.serves(partition) {
                    Route::Here
                } else {
                    Route::Node(partition)
                }
            }
        }
    }

    /// Sends a relay shard's batch of entries on their way, keeping each target's entries in
    /// order: runs of entries with the same destination go together (commands for this node
    /// are applied here one after the other, commands for another node travel as one batch,
    /// publications are pipelined). A failure says how many from the front were delivered.
    pub(crate) async fn deliver_in_order(&self, entries: &[&OutboxEntry]) -> Result<(), Partial> {
        let routes: Vec<Route> = entries.iter().map(|entry| self.route(entry)).collect();
        let mut done = 0;
        while done < entries.len() {
            let route = routes[done];
            let run = routes[done..].iter().take_while(|r| **r == route).count();
            let group = &entries[done..done + run];
            let delivered = match route {
                Route::Here => self.deliver_here(group).await,
                Route::Node(partition) => self.deliver_to(partition, group).await,
                Route::Bus => self.publish_all(group).await,
            };
            delivered.map_err(|Partial { delivered, error }| Partial {
                delivered: done + delivered,
                error,
            })?;
            done += run;
        }
        Ok(())
    }

    /// Applies commands for actors of this node, in order.
    async fn deliver_here(&self, entries: &[&OutboxEntry]) -> Result<(), Partial> {
        for (delivered, entry) in entries.iter().enumerate() {
            let OutboxEntry::Effect {
                command_id, effect, ..
            } = entry
            else {
                continue;
            };
            let span = tracing::info_span!("outbox.deliver", command_id = %command_id);
            keel_telemetry::set_parent(&span, entry.trace());
            self.command(command_id, effect)
                .instrument(span)
                .await
                .map_err(|error| Partial { delivered, error })?;
        }
        Ok(())
    }

    /// Sends commands to the node serving `partition`.
    async fn deliver_to(&self, partition: u32, entries: &[&OutboxEntry]) -> Result<(), Partial> {
        let outcomes = self
            .send_batch(partition, entries)
            .await
            .map_err(|error| Partial {
                delivered: 0,
                error,
            })?;
        for (delivered, outcome) in outcomes.into_iter().enumerate() {
            outcome.map_err(|error| Partial { delivered, error })?;
        }
        Ok(())
    }

    /// Publishes entries in order, pipelined; on a durable bus once the decisions that owe
    /// them are on disk (a kept event must not outlive a decision a crash undid).
    async fn publish_all(&self, entries: &[&OutboxEntry]) -> Result<(), Partial> {
        if self.durable_events {
            self.store.flush().await.map_err(|e| Partial {
                delivered: 0,
                error: e.into(),
            })?;
        }
        // A node paused past its lease (its clock says so before its renewals can) may be
        // fenced out already: the partition's new owner publishes what is owed, in order.
        let lapsed = entries
            .iter()
            .map(|entry| self.partitions.of(entry.source_key()))
            .find(|p| !self.partitions.lease_valid(*p));
        if let Some(partition) = lapsed {
            return Err(Partial {
                delivered: 0,
                error: Error::Unavailable(format!(
                    "this node's lease of partition {partition} lapsed by its own clock"
                )),
            });
        }
        let messages = entries
            .iter()
            .filter_map(|entry| match entry {
                OutboxEntry::Publish {
                    message_id,
                    publication,
                    trace,
                } => Some(crate::outbox::outgoing(
                    message_id,
                    publication,
                    trace.as_deref(),
                )),
                OutboxEntry::Effect { .. } => None,
            })
            .collect();
        self.bus
            .publish_in_order(messages)
            .await
            .map_err(|p| Partial {
                delivered: p.accepted,
                error: Error::Unavailable(format!("publish: {}", p.error)),
            })
    }

    /// Sends commands to the node serving `partition` once the decisions that owe them are
    /// durable here (a crash must not leave another node with the effect of a decision this
    /// one lost), coalesced with other callers' while earlier requests are on their way (see
    /// `batches.rs`), and answers one outcome per command, in order.
    async fn send_batch(
        &self,
        partition: u32,
        entries: &[&OutboxEntry],
    ) -> Result<Vec<Outcome>, Error> {
        self.store.flush().await?;
        let commands = entries
            .iter()
            .map(|entry| Ok((entry.id().to_owned(), serde_json::to_vec(entry)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()?;
        let (answer, answered) = tokio::sync::oneshot::channel();
        let caller = crate::batches::Caller { commands, answer };
        if self.batches.queue(partition, caller) {
            if let Some(me) = self.me.upgrade() {
                actix_rt::spawn(async move { me.send_batches(partition).await });
            }
        }
        answered
            .await
            .unwrap_or_else(|_| Err(Error::Unavailable("the node is stopping".into())))
    }

    /// A sender of command batches to `partition`: sends what waits until nothing does.
    async fn send_batches(&self, partition: u32) {
        while let Some(callers) = self.batches.take(partition) {
            let (payload, ids) = crate::batches::request(&callers);
            let sent = self.send_one_batch(partition, &payload, &ids).await;
            crate::batches::answer(callers, sent);
        }
    }

    /// One batch request: its outcomes, checked against the commands sent (the owner answers
    /// every one).
    async fn send_one_batch(
        &self,
        partition: u32,
        payload: &[u8],
        ids: &[&str],
    ) -> Result<Vec<Outcome>, Error> {
        let subject = keel_protocol::COMMAND_BATCH;
        let mut sources: Vec<u32> = ids
            .iter()
            .map(|id| self.partitions.of(crate::outbox::source_key(id)))
            .collect();
        sources.sort_unstable();
        sources.dedup();
        let epochs = sources.into_iter().map(|p| (p, self.partitions.epoch(p)));
        let headers = keel_bus::Headers::from([(
            keel_protocol::EPOCHS_HEADER.to_owned(),
            keel_protocol::epochs_header(epochs),
        )]);
        let (_, body) =
            crate::forward::forward(&self.bus, partition, subject, headers, payload).await?;
        let answered: Vec<OutcomeMessage> = serde_json::from_value(body)?;
        self.commands.batches_sent.fetch_add(1, Ordering::Relaxed);
        let sent = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        self.commands.sent.fetch_add(sent, Ordering::Relaxed);
        if answered.len() != ids.len() {
            return Err(Error::Internal(format!(
                "partition {partition} answered {} outcomes for {} commands",
                answered.len(),
                ids.len()
            )));
        }
        let mut outcomes = Vec::with_capacity(answered.len());
        for (message, id) in answered.into_iter().zip(ids) {
            let (command_id, outcome) = message.into_outcome();
            if command_id != *id {
                return Err(Error::Internal(format!(
                    "partition {partition} answered for {command_id} where {id} was sent"
                )));
            }
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    /// Has `effect` applied at its target and waits for the outcome: here when this node
    /// serves the target (its partition then stays here until the command is applied), else
    /// on the node that does, once this node's decisions so far are durable.
    pub(crate) async fn command(&self, command_id: &str, effect: &Effect) -> Outcome {
        let target = target_key(effect);
        let partition = self.partitions.of(&target);
        if let Some(_work) = self.partitions.enter(partition) {
            // On NATS each partition's changelog lane becomes durable on its own: the
            // decision that owes this command must be durable before the command is applied
            // (a crash must not keep the effect of a decision it undid), and the command's
            // effect before the caller acts on its outcome or forgets the outbox entry — as
            // a command batch to another node waits for both. Embedded the log is one
            // sequence, and every prefix a crash keeps holds a commit's causes.
            let replicated = self.store.is_replicated();
            if replicated {
                let cause = crate::outbox::source_key(command_id);
                self.store.flush_key(cause).await?;
            }
            let outcome = self.deliver_local(command_id, effect).await?;
            if replicated {
                self.store.flush_key(&target).await?;
            }
            return Ok(outcome);
        }
        let entry = OutboxEntry::Effect {
            command_id: command_id.to_owned(),
            effect: effect.clone(),
            trace: keel_telemetry::traceparent(&tracing::Span::current()),
        };
        let mut outcomes = self.send_batch(partition, &[&entry]).await?;
        outcomes.pop().unwrap_or_else(|| {
            Err(Error::Unavailable(format!(
                "{command_id}: partition {partition} answered no outcome"
            )))
        })
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

    fn owes(&self, entry: &OutboxEntry) -> bool {
        let source = self.partitions.of(entry.source_key());
        self.partitions.serves(source)
    }
}
