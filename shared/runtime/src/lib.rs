//! Keel's node runtime: it hosts the order, SKU-location and warehouse-node actors on actix,
//! keeps their state durably in sled (keel-store), moves messages between them through a
//! transactional outbox, and answers the request-reply API on the bus.
//!
//! Start a [`Node`] inside an actix system, run [`Node::recover`] (replays undelivered outbox
//! entries, finishes interrupted allocations), then [`Node::serve`] on a bus.

mod actors;
mod api;
mod archive;
mod availability;
mod batches;
mod catalog;
mod clock;
mod commands;
mod consumer;
mod directory;
mod entity;
mod error;
mod fences;
mod forget;
mod forward;
mod holds;
pub mod keys;
mod mesh;
pub mod metrics;
mod observed;
mod outbox;
mod partitions;
mod periodic;
mod relay;
mod replies;
mod shards;
mod timers;
mod traced;
pub mod views;
mod wms;

pub use archive::ArchiveStats;
pub use catalog::Catalog;
pub use clock::{Clock, FileClock, ManualClock, SystemClock};
pub use consumer::CommandStats;
pub use error::Error;
pub use partitions::Sharding;
pub use relay::RelayStats;
pub use replies::Grant;
pub use timers::TimerStats;

use actix::prelude::*;
use actors::Hosts;
use keel_bus::SharedBus;
use outbox::OutboxEntry;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How a node runs.
#[derive(Debug, Clone)]
pub struct NodeOptions {
    /// Where sled keeps the node's state.
    pub data_dir: PathBuf,
    /// sled's cache budget in bytes.
    pub cache_capacity: u64,
    /// When the store's partition log is checkpointed.
    pub checkpoint: keel_store::CheckpointPolicy,
    /// Actor threads (arbiters); one per core is right.
    pub workers: usize,
    /// An actor idle this long is passivated (its memory freed; its state stays on disk).
    pub idle_after: Duration,
    /// The durable copy of the store outside the node (a cluster's changelog), if any.
    pub replica: Option<Arc<dyn keel_store::Replica>>,
    /// In a cluster: how entities map to partitions. The node then serves only the
    /// partitions it is given ([`Node::serve_partition`]); outside a cluster it serves
    /// everything.
    pub cluster: Option<Arc<dyn Sharding>>,
    /// The node's time, for hold expiry and every timer (tests move a manual one on).
    pub clock: Arc<dyn Clock>,
    /// How long after an order is delivered or cancelled it moves to the archive (`None`:
    /// never).
    pub archive_after: Option<Duration>,
    /// For fault tests: abort the process half-way through an archive sweep.
    pub crash_mid_archive: bool,
    /// For fault tests: abort the process once a command batch from another node is applied
    /// and durable, before it is answered.
    pub crash_before_batch_reply: bool,
    /// How long ids of commands between actors are remembered (at least; at most twice it).
    pub dedupe_retention: Duration,
    /// Whether a store created now compresses its pages (see
    /// [`keel_store::Options::compression`]); an existing store keeps its own setting.
    pub store_compression: Option<bool>,
}

impl NodeOptions {
    /// Defaults for a node storing its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeOptions {
            data_dir: data_dir.into(),
            cache_capacity: keel_store::Options::default().cache_capacity,
            checkpoint: keel_store::CheckpointPolicy::default(),
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            idle_after: Duration::from_secs(10),
            replica: None,
            cluster: None,
            clock: Arc::new(SystemClock),
            archive_after: Some(Duration::from_secs(7 * 24 * 3600)),
            crash_mid_archive: false,
            crash_before_batch_reply: false,
            dedupe_retention: keel_store::Options::default().dedupe_retention,
            store_compression: None,
        }
    }
}

/// What recovery found and redid.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Undelivered outbox messages redelivered.
    pub outbox_replayed: usize,
    /// Orders whose interrupted reservation saga was compensated and run again.
    pub allocations_resumed: usize,
}

/// Counters of a running node, for `/metrics`.
#[derive(Debug, Clone, Default)]
pub struct NodeStats {
    /// Activated order actors (the rest are passivated).
    pub active_orders: usize,
    /// Activated SKU-location actors.
    pub active_sku_locations: usize,
    /// Activated warehouse-node actors.
    pub active_warehouses: usize,
    /// The store's log rounds, fsyncs and checkpoints so far.
    pub store: keel_store::LogStats,
    /// Keys written since the store's last checkpoint (held in memory until it).
    pub uncheckpointed_keys: usize,
    /// Outbox messages delivered.
    pub outbox_delivered: u64,
    /// Outbox messages handed to the relay and not delivered yet (the delivery backlog).
    pub outbox_pending: u64,
    /// Deliveries that failed and were retried.
    pub outbox_retried: u64,
    /// Commands their target refused (orchestration bugs; logged).
    pub outbox_refused: u64,
    /// Entries of partitions this node no longer serves, left to their new owner.
    pub outbox_handed_over: u64,
    /// Size of the store on disk.
    pub disk_bytes: u64,
    /// Commands other nodes sent in batches, applied here (in a cluster).
    pub commands_consumed: u64,
    /// Command batches sent to other partitions' owners and answered (in a cluster).
    pub command_batches_sent: u64,
    /// The commands in those batches.
    pub commands_sent: u64,
    /// Command batches refused because they came from a stale owner (an older epoch).
    pub command_batches_stale: u64,
    /// Warehouse confirmations applied from `keel.v1.wms.*`.
    pub wms_applied: u64,
    /// Messages set aside on `keel.v1.dlq.*`.
    pub dead_lettered: u64,
    /// Timers fired and handled.
    pub timers_fired: u64,
    /// Timer firings that failed (each is retried).
    pub timers_failed: u64,
    /// Closed orders moved to the archive.
    pub orders_archived: u64,
    /// Ids of commands between actors forgotten after their retention.
    pub dedupe_expired: u64,
    /// The bus' own counters (NATS reconnects, slow consumers, JetStream publishes).
    pub bus: Vec<keel_bus::Counter>,
}

/// The partition whose serving node also applies the warehouse confirmations (one consumer
/// keeps each location's confirmations in order).
const WMS_PARTITION: u32 = 0;

/// A running node.
pub struct Node {
    hosts: Arc<Hosts>,
    arbiters: Vec<Arbiter>,
    /// Settles the warehouse confirmations (on the node serving [`WMS_PARTITION`]).
    wms: Arc<consumer::Pool>,
    ready: Arc<AtomicBool>,
    timers: std::sync::OnceLock<Arc<TimerStats>>,
    archive: Option<archive::Policy>,
    archived: std::sync::OnceLock<Arc<ArchiveStats>>,
    forgotten: std::sync::OnceLock<Arc<std::sync::atomic::AtomicU64>>,
}

impl Node {
    /// Opens the store and starts the actor threads. Must run inside an actix system.
    pub fn start(options: &NodeOptions, bus: SharedBus) -> Result<Node, Error> {
        std::fs::create_dir_all(&options.data_dir).map_err(|e| {
            Error::Internal(format!("creating {}: {e}", options.data_dir.display()))
        })?;
        let store_options = keel_store::Options {
            cache_capacity: options.cache_capacity,
            replica: options.replica.clone(),
            checkpoint: options.checkpoint,
            dedupe_retention: options.dedupe_retention,
            compression: options.store_compression,
        };
        let store = keel_store::Store::open(&options.data_dir, &store_options)?;
        let catalog = Catalog::load(store.clone())?;
        let arbiters: Vec<Arbiter> = (0..options.workers.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let handles: Arc<[ArbiterHandle]> = arbiters.iter().map(Arbiter::handle).collect();
        let parts = mesh::Parts {
            store,
            bus: Arc::clone(&bus),
            clock: Arc::clone(&options.clock),
            sharding: options.cluster.clone(),
            arbiters: Arc::clone(&handles),
            crash_before_batch_reply: options.crash_before_batch_reply,
        };
        let hosts = Hosts::new(parts, catalog, options.idle_after);
        let hosts_weak = Arc::downgrade(&hosts);
        let wms = Arc::new(consumer::Pool::start(
            &hosts_weak,
            &bus,
            &handles,
            "wms.consume",
            wms::settle,
        ));
        Ok(Node {
            hosts,
            arbiters,
            wms,
            ready: Arc::new(AtomicBool::new(false)),
            timers: std::sync::OnceLock::new(),
            archive: options.archive_after.map(|after| archive::Policy {
                after,
                crash_mid_sweep: options.crash_mid_archive,
            }),
            archived: std::sync::OnceLock::new(),
            forgotten: std::sync::OnceLock::new(),
        })
    }

    /// Outside a cluster: serves everything (as partition 0), which replays the outbox and
    /// finishes the allocations a crash interrupted. In a cluster this is done partition by
    /// partition, as the node is given them ([`Node::serve_partition`]).
    pub async fn recover(&self) -> Result<Recovery, Error> {
        if self.hosts.mesh.partitions.clustered() {
            return Ok(Recovery::default());
        }
        self.serve_partition(0, 0).await
    }

    /// Starts serving `partition`, whose state the store holds (restored, and claimed by
    /// this node at lease `epoch`, which its command batches carry): answers the requests and command batches other nodes send it (and, for
    /// partition 0, consumes the warehouse confirmations), redelivers its outbox and finishes
    /// its interrupted allocations.
    ///
    /// # Errors
    /// The bus' error when a consumer or a subscription cannot be made; the store's.
    pub async fn serve_partition(&self, partition: u32, epoch: u64) -> Result<Recovery, Error> {
        use keel_protocol as p;
        let hosts = &self.hosts;
        let bus = Arc::clone(&hosts.mesh.bus);
        if !hosts.mesh.partitions.add(partition, epoch) {
            // A second consumer would take the first one's messages over mid-stream.
            return Ok(Recovery::default());
        }
        if partition == WMS_PARTITION {
            // Warehouse messages: kept by JetStream on a durable bus, a plain subscription on
            // the in-process one (whose publishers wait for it rather than drop).
            let wms = if bus.durable() {
                bus.consume(p::WMS_STREAM, p::WMS_CONSUMER, p::WMS_SUBJECTS)
                    .await?
            } else {
                let plain = bus.subscribe(p::WMS_SUBJECTS).await?;
                futures::StreamExt::boxed(futures::StreamExt::map(plain, keel_bus::Delivery::plain))
            };
            let feed = consumer::feed(wms, Arc::clone(&self.wms), p::WMS_CONSUMER.into());
            hosts.mesh.partitions.feed(partition, feed);
        }
        if hosts.mesh.partitions.clustered() {
            let requests = api::subscribe_forwarded(&bus, partition).await?;
            let serving = api::serve(
                Arc::clone(hosts),
                Arc::clone(&bus),
                requests,
                api::Served::Forwarded(partition),
            );
            let (serving, handle) = futures::future::abortable(serving);
            self.arbiters[partition as usize % self.arbiters.len()].spawn(async move {
                let _ = serving.await;
            });
            hosts.mesh.partitions.feed(partition, handle);
        }
        let outbox_replayed = self.replay_outbox(partition).await?;
        let allocations_resumed = self.resume_allocations(partition)?;
        Ok(Recovery {
            outbox_replayed,
            allocations_resumed,
        })
    }

    /// Hands `partition` off: takes no more work for it, stops consuming its commands and
    /// answering for it, waits for the work in flight (bounded), and forgets its actors (the
    /// next owner changes their state). Answers whether the work in flight all finished. The
    /// caller then flushes and lets the partition go.
    pub async fn hand_off(&self, partition: u32) -> bool {
        let finished = self.hosts.mesh.partitions.drain(partition).await;
        let partitions = &self.hosts.mesh.partitions;
        let elsewhere = |key: &str| partitions.of(key) == partition;
        self.hosts.orders.evict(elsewhere);
        self.hosts.stock.evict(elsewhere);
        self.hosts.warehouses.evict(elsewhere);
        self.hosts.holds.evict(elsewhere);
        finished
    }

    /// This node took `partition`'s lapsed lease back, at `epoch` (nobody else owned it
    /// meanwhile): its command batches carry the new epoch from now on.
    pub fn renew_epoch(&self, partition: u32, epoch: u64) {
        self.hosts.mesh.partitions.set_epoch(partition, epoch);
    }

    /// The partitions this node serves.
    pub fn served_partitions(&self) -> Vec<u32> {
        self.hosts.mesh.partitions.served()
    }

    /// Runs the reservation sagas of `partition` that a crash or a hand-off interrupted, in
    /// the background (a saga may wait for partitions not served yet); answers how many.
    fn resume_allocations(&self, partition: u32) -> Result<usize, Error> {
        let hosts = &self.hosts;
        let mut orders = Vec::new();
        for item in hosts.mesh.store.scan_states(keys::ALLOCATING_PREFIX) {
            let (marker, _) = item?;
            let id =
                keel_domain::OrderId::parse(marker.trim_start_matches(keys::ALLOCATING_PREFIX))?;
            let key = keys::order(&id);
            if hosts.mesh.partitions.of(&key) == partition {
                orders.push(key);
            }
        }
        let resumed = orders.len();
        for key in orders {
            let Some(work) = hosts.mesh.partitions.enter(partition) else {
                break;
            };
            let hosts = Arc::clone(hosts);
            actix_rt::spawn(async move {
                match hosts.orders.ask(&key, actors::Resume).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) | Err(e) => {
                        tracing::warn!(order = %key, error = %e, "resuming an allocation failed; the next owner or restart resumes it");
                    }
                }
                drop(work);
            });
        }
        Ok(resumed)
    }

    /// Redelivers what the outbox holds for `partition`, a bounded batch at a time (a large
    /// backlog must not be loaded into memory at once).
    async fn replay_outbox(&self, partition: u32) -> Result<usize, Error> {
        const BATCH: usize = 10_000;
        let relay = &self.hosts.mesh.relay;
        let delivered = || relay.stats.delivered.load(Ordering::Relaxed);
        let start = delivered();
        let mut submitted = 0u64;
        let mut batch = Vec::with_capacity(BATCH);
        let mut entries = self.hosts.mesh.store.outbox_of(partition).peekable();
        while let Some(item) = entries.next() {
            let (id, raw) = item?;
            batch.push((id, serde_json::from_slice::<OutboxEntry>(&raw)?));
            if batch.len() == BATCH || entries.peek().is_none() {
                // Wait for the previous batch before queueing the next one.
                while delivered() - start < submitted {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                submitted += batch.len() as u64;
                relay.submit(batch.drain(..));
            }
        }
        Ok(usize::try_from(submitted).unwrap_or(usize::MAX))
    }

    /// Serves the request-reply API on `bus` from every actor thread and consumes warehouse
    /// confirmations. When this returns, every serving loop is subscribed (a request sent now
    /// finds its responders) and the node is ready.
    ///
    /// # Errors
    /// The bus' error when a subscription or a consumer cannot be made.
    pub async fn serve(&self, bus: &SharedBus) -> Result<(), Error> {
        if self.hosts.mesh.partitions.clustered() {
            self.follow_other_nodes(bus).await?;
        }
        for arbiter in &self.arbiters {
            let requests = api::subscribe(bus).await?;
            let (hosts, bus) = (Arc::clone(&self.hosts), Arc::clone(bus));
            arbiter.spawn(api::serve(hosts, bus, requests, api::Served::Api));
        }
        // After recovery: a timer due while the node was down fires now.
        self.timers.get_or_init(|| timers::start(&self.hosts));
        self.forgotten
            .get_or_init(|| forget::start(&self.hosts.mesh));
        if let Some(policy) = self.archive {
            self.archived
                .get_or_init(|| archive::start(&self.hosts, policy));
        }
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// In a cluster: keeps the planning hint of the SKU-locations other nodes serve from their
    /// position events.
    async fn follow_other_nodes(&self, bus: &SharedBus) -> Result<(), Error> {
        use futures::StreamExt;
        let mut positions = bus.subscribe(keel_protocol::INVENTORY_EVENTS).await?;
        let mesh = Arc::clone(&self.hosts.mesh);
        self.arbiters[0].spawn(async move {
            while let Some(message) = positions.next().await {
                mesh.observe_position(&message.payload);
            }
        });
        Ok(())
    }

    /// Whether recovery is done and the API is served.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Executes a command on one SKU-location actor (idempotent when `command_id` is given)
    /// and answers its grant. The decision is committed but not yet flushed: call
    /// [`Node::flush`] before acknowledging it to a client.
    pub async fn stock_command(
        &self,
        sku: &keel_domain::SkuId,
        location: &keel_domain::LocationId,
        command_id: Option<String>,
        command: keel_domain::inventory::StockCommand,
    ) -> Result<Grant, Error> {
        let executed = self
            .hosts
            .stock_exec(sku, location, command_id, command)
            .await?;
        executed.reply.grant()
    }

    /// Waits until everything committed so far is on disk (shares fsyncs with other callers).
    pub async fn flush(&self) -> Result<(), Error> {
        Ok(self.hosts.mesh.store.flush().await?)
    }

    /// The node's catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.hosts.catalog
    }

    /// The node's store (a cluster node restores its partitions into it before it recovers).
    pub fn store(&self) -> &keel_store::Store {
        &self.hosts.mesh.store
    }

    /// Reads the catalog from the store again, after the store was restored from a replica.
    pub fn reload_catalog(&self) -> Result<(), Error> {
        self.hosts.catalog.reload()
    }

    /// Current counters.
    pub fn stats(&self) -> NodeStats {
        let relay = &self.hosts.mesh.relay.stats;
        NodeStats {
            active_orders: self.hosts.orders.active(),
            active_sku_locations: self.hosts.stock.active(),
            active_warehouses: self.hosts.warehouses.active(),
            store: self.hosts.mesh.store.log_stats(),
            uncheckpointed_keys: self.hosts.mesh.store.uncheckpointed_keys(),
            outbox_delivered: relay.delivered.load(Ordering::Relaxed),
            outbox_pending: relay.pending(),
            outbox_retried: relay.retried.load(Ordering::Relaxed),
            outbox_refused: relay.refused.load(Ordering::Relaxed),
            outbox_handed_over: relay.handed_over.load(Ordering::Relaxed),
            disk_bytes: self.hosts.mesh.store.size_on_disk().unwrap_or(0),
            commands_consumed: self.hosts.mesh.commands.consumed.load(Ordering::Relaxed),
            command_batches_sent: self
                .hosts
                .mesh
                .commands
                .batches_sent
                .load(Ordering::Relaxed),
            commands_sent: self.hosts.mesh.commands.sent.load(Ordering::Relaxed),
            command_batches_stale: self.hosts.mesh.commands.stale.load(Ordering::Relaxed),
            wms_applied: self.hosts.mesh.commands.wms_applied.load(Ordering::Relaxed),
            dead_lettered: self
                .hosts
                .mesh
                .commands
                .dead_lettered
                .load(Ordering::Relaxed),
            timers_fired: self
                .timers
                .get()
                .map_or(0, |t| t.fired.load(Ordering::Relaxed)),
            timers_failed: self
                .timers
                .get()
                .map_or(0, |t| t.failed.load(Ordering::Relaxed)),
            orders_archived: self
                .archived
                .get()
                .map_or(0, |a| a.archived.load(Ordering::Relaxed)),
            dedupe_expired: self
                .forgotten
                .get()
                .map_or(0, |f| f.load(Ordering::Relaxed)),
            bus: self.hosts.mesh.bus.counters(),
        }
    }

    /// Stops taking work, flushes the store and stops the actor threads.
    pub async fn shutdown(&self) -> Result<(), Error> {
        self.ready.store(false, Ordering::SeqCst);
        self.hosts.mesh.store.flush().await?;
        // With a replica the flush went there: the local copy too, so a restart may keep it.
        self.hosts.mesh.store.sync().await?;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        Ok(())
    }
}
