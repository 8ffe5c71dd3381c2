//! Keel's node runtime: it hosts the order, SKU-location and warehouse-node actors on actix,
//! keeps their state durably in sled (keel-store), moves messages between them through a
//! transactional outbox, and answers the request-reply API on the bus.
//!
//! Start a [`Node`] inside an actix system, run [`Node::recover`] (replays undelivered outbox
//! entries, finishes interrupted allocations), then [`Node::serve`] on a bus.

mod actors;
mod api;
mod availability;
mod catalog;
mod commands;
mod consumer;
mod directory;
mod entity;
mod error;
pub mod keys;
pub mod metrics;
mod outbox;
mod router;
pub mod views;
mod wms;

pub use catalog::Catalog;
pub use commands::CommandStats;
pub use error::Error;
pub use outbox::RelayStats;

use actix::prelude::*;
use keel_bus::SharedBus;
use outbox::OutboxEntry;
use router::Router;
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
    /// Actor threads (arbiters); one per core is right.
    pub workers: usize,
    /// An actor idle this long is passivated (its memory freed; its state stays on disk).
    pub idle_after: Duration,
    /// The durable copy of the store outside the node (a cluster's changelog), if any.
    pub replica: Option<Arc<dyn keel_store::Replica>>,
}

impl NodeOptions {
    /// Defaults for a node storing its state in `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        NodeOptions {
            data_dir: data_dir.into(),
            cache_capacity: keel_store::Options::default().cache_capacity,
            workers: std::thread::available_parallelism().map_or(2, usize::from),
            idle_after: Duration::from_secs(10),
            replica: None,
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
    /// fsyncs of the store (group commits).
    pub flushes: u64,
    /// Durable writes those fsyncs served.
    pub flush_waiters: u64,
    /// Outbox messages delivered.
    pub outbox_delivered: u64,
    /// Outbox messages handed to the relay and not delivered yet (the delivery backlog).
    pub outbox_pending: u64,
    /// Deliveries that failed and were retried.
    pub outbox_retried: u64,
    /// Commands their target refused (orchestration bugs; logged).
    pub outbox_refused: u64,
    /// Size of the store on disk.
    pub disk_bytes: u64,
    /// Commands taken off the JetStream work queue and applied (durable bus only).
    pub commands_consumed: u64,
    /// Warehouse confirmations applied from `keel.v1.wms.*`.
    pub wms_applied: u64,
    /// Messages set aside on `keel.v1.dlq.*`.
    pub dead_lettered: u64,
    /// The bus' own counters (NATS reconnects, slow consumers, JetStream publishes).
    pub bus: Vec<keel_bus::Counter>,
}

/// A running node.
pub struct Node {
    router: Arc<Router>,
    arbiters: Vec<Arbiter>,
    ready: Arc<AtomicBool>,
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
        };
        let store = keel_store::Store::open(&options.data_dir, &store_options)?;
        let catalog = Catalog::load(store.clone())?;
        let arbiters: Vec<Arbiter> = (0..options.workers.max(1))
            .map(|_| Arbiter::new())
            .collect();
        let handles: Arc<[ArbiterHandle]> = arbiters.iter().map(Arbiter::handle).collect();
        let router = Router::new(store, bus, catalog, handles, options.idle_after);
        Ok(Node {
            router,
            arbiters,
            ready: Arc::new(AtomicBool::new(false)),
        })
    }

    /// Replays the outbox and finishes allocations a crash interrupted. On a durable bus it
    /// first starts consuming the commands between actors, which a resumed saga waits for.
    pub async fn recover(&self) -> Result<Recovery, Error> {
        let bus = Arc::clone(&self.router.bus);
        if bus.durable() {
            use keel_protocol as p;
            let handles = self.arbiter_handles();
            for (name, filter) in p::COMMAND_CONSUMERS {
                let commands = bus.consume(p::COMMANDS_STREAM, name, filter).await?;
                let (span, settle) = ("command.consume", commands::settle as consumer::Settle);
                consumer::start(&self.router, &bus, commands, &handles, span, settle);
            }
        }
        let outbox_replayed = self.replay_outbox().await?;
        let mut allocations_resumed = 0;
        let markers: Vec<String> = self
            .router
            .store
            .scan_states(keys::ALLOCATING_PREFIX)
            .map(|item| item.map(|(key, _)| key))
            .collect::<Result<_, _>>()?;
        for marker in markers {
            let id =
                keel_domain::OrderId::parse(marker.trim_start_matches(keys::ALLOCATING_PREFIX))?;
            let key = keys::order(&id);
            self.router
                .ask(&self.router.orders, &key, actors::Resume)
                .await??;
            allocations_resumed += 1;
        }
        Ok(Recovery {
            outbox_replayed,
            allocations_resumed,
        })
    }

    /// Redelivers what the outbox holds, a bounded batch at a time (a large backlog must not be
    /// loaded into memory at once). Runs before the API is served, so the relay's delivery
    /// counter only counts this replay.
    async fn replay_outbox(&self) -> Result<usize, Error> {
        const BATCH: usize = 10_000;
        let relay = self.router.relay();
        let delivered = || relay.stats.delivered.load(Ordering::Relaxed);
        let start = delivered();
        let mut submitted = 0u64;
        let mut batch = Vec::with_capacity(BATCH);
        let mut entries = self.router.store.outbox().peekable();
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
        let handles = self.arbiter_handles();
        use keel_protocol as p;
        // Warehouse messages: kept by JetStream on a durable bus, a plain subscription on the
        // in-process one (whose publishers wait for it rather than drop).
        let wms = if bus.durable() {
            bus.consume(p::WMS_STREAM, p::WMS_CONSUMER, p::WMS_SUBJECTS)
                .await?
        } else {
            let plain = bus.subscribe(p::WMS_SUBJECTS).await?;
            futures::StreamExt::boxed(futures::StreamExt::map(plain, keel_bus::Delivery::plain))
        };
        let settle = wms::settle as consumer::Settle;
        consumer::start(&self.router, bus, wms, &handles, "wms.consume", settle);
        for arbiter in &self.arbiters {
            let requests = api::subscribe(bus).await?;
            let (router, bus) = (Arc::clone(&self.router), Arc::clone(bus));
            arbiter.spawn(api::serve(router, bus, requests));
        }
        self.ready.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn arbiter_handles(&self) -> Vec<ArbiterHandle> {
        self.arbiters.iter().map(Arbiter::handle).collect()
    }

    /// Whether recovery is done and the API is served.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }

    /// Executes a command on one SKU-location actor (idempotent when `command_id` is given)
    /// and answers its reply (`{"granted","position"}`). The decision is committed but not yet
    /// flushed: call [`Node::flush`] before acknowledging it to a client.
    pub async fn stock_command(
        &self,
        sku: &keel_domain::SkuId,
        location: &keel_domain::LocationId,
        command_id: Option<String>,
        command: keel_domain::inventory::StockCommand,
    ) -> Result<serde_json::Value, Error> {
        let executed = self
            .router
            .stock_exec(sku, location, command_id, command)
            .await?;
        Ok(executed.reply)
    }

    /// Waits until everything committed so far is on disk (shares fsyncs with other callers).
    pub async fn flush(&self) -> Result<(), Error> {
        Ok(self.router.store.flush().await?)
    }

    /// The node's catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.router.catalog
    }

    /// The node's store (a cluster node restores its partitions into it before it recovers).
    pub fn store(&self) -> &keel_store::Store {
        &self.router.store
    }

    /// Reads the catalog from the store again, after the store was restored from a replica.
    pub fn reload_catalog(&self) -> Result<(), Error> {
        self.router.catalog.reload()
    }

    /// Current counters.
    pub fn stats(&self) -> NodeStats {
        let flush = self.router.store.flush_stats();
        let relay = &self.router.relay().stats;
        NodeStats {
            active_orders: self.router.orders.active(),
            active_sku_locations: self.router.stock.active(),
            active_warehouses: self.router.warehouses.active(),
            flushes: flush.flushes,
            flush_waiters: flush.waiters,
            outbox_delivered: relay.delivered.load(Ordering::Relaxed),
            outbox_pending: relay.pending(),
            outbox_retried: relay.retried.load(Ordering::Relaxed),
            outbox_refused: relay.refused.load(Ordering::Relaxed),
            disk_bytes: self.router.store.size_on_disk().unwrap_or(0),
            commands_consumed: self.router.commands.consumed.load(Ordering::Relaxed),
            wms_applied: self.router.commands.wms_applied.load(Ordering::Relaxed),
            dead_lettered: self.router.commands.dead_lettered.load(Ordering::Relaxed),
            bus: self.router.bus.counters(),
        }
    }

    /// Stops taking work, flushes the store and stops the actor threads.
    pub async fn shutdown(self) -> Result<(), Error> {
        self.ready.store(false, Ordering::SeqCst);
        self.router.store.flush().await?;
        // With a replica the flush went there: the local copy too, so a restart may keep it.
        self.router.store.sync().await?;
        for arbiter in &self.arbiters {
            arbiter.stop();
        }
        Ok(())
    }
}
