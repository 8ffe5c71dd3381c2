//! The node's place in a cluster on NATS. Every node serves a share of the partitions: each
//! round it reads the members and the leases, and acts on the moves of the placement plan
//! that concern it (`crate::placement::plan`, the same plan on every node): it takes
//! the partitions nobody holds that the plan gives it (restoring each from the changelog and
//! claiming it there, [`crate::takeover`]), and hands off the ones the plan moves away from it, a
//! bounded number per round (it stops taking work for the partition, finishes the work in
//! flight, flushes, closes the partition's changelog lane and gives the lease back; the
//! receiving node takes it at once). A graceful leave hands off everything; after an abrupt
//! loss the others take its partitions once the leases lapse. A node whose partition was
//! taken over while it was away exits (crash-only: its local copy may hold commits the
//! changelog refused, so only a restart, which replays the changelog, may bring it back); a
//! lease that merely lapsed while NATS was away, with nobody claiming the partition, is taken
//! again.

use crate::changelog::{self, Changelog, Restored, Snapshots};
use crate::takeover::{self, CleanStop, Takeover};
use crate::{
    ClusterStatus, Coordinator, Error, Held, JoinOptions, Member, Partition, MOVES_PER_ROUND,
};
use futures::StreamExt;
use keel_runtime::Node;
use keel_store::Lane;
use keel_telemetry::metrics::Sample;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// The node id kept in `data_dir` (made on first start): the id names the disk that holds
/// its partitions' state, so a restarted node with the same disk is the same member.
pub fn stored_node_id(data_dir: &std::path::Path) -> Result<String, Error> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir).map_err(|e| Error::disk("creating", data_dir, e))?;
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_else(|_| "keel".into());
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let id: String = format!("{}-{:x}{:x}", host.trim(), std::process::id(), nanos)
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    std::fs::write(&path, &id).map_err(|e| Error::disk("writing", &path, e))?;
    Ok(id)
}

/// How this node joins (from its flags).
#[derive(Debug, Clone)]
pub struct Settings {
    pub node: String,
    pub partitions: u32,
    pub lease_ttl: Duration,
    pub address: String,
    /// JetStream replicas of the changelog and the coordination buckets.
    pub replicas: usize,
    /// When this node snapshots the partitions it writes.
    pub snapshots: changelog::SnapshotPolicy,
}

/// The exit status of a node that found its partitions taken over (a restart brings it back
/// with a fresh copy).
pub const FENCED_EXIT: i32 = 75;

/// Partitions taken (restored and claimed) at once.
const TAKE_CONCURRENCY: usize = 16;
/// Lease renewals in flight at once.
const RENEW_CONCURRENCY: usize = 32;
/// How long a request waits for this node's catalog to catch up with the cluster's.
const CATALOG_CATCH_UP: Duration = Duration::from_secs(2);

/// How the runtime maps entities to partitions, and follows the cluster's catalog.
#[derive(Debug)]
struct Sharding {
    js: async_nats::jetstream::Context,
    partitioning: crate::Partitioning,
    /// The catalog's changelog sequence the node's catalog reflects.
    catalog: watch::Receiver<u64>,
    held: Arc<Mutex<BTreeMap<Partition, Held>>>,
}

/// Whether this node holds `partition`'s lease, valid by its own clock: what it must before
/// it writes the partition's changelog lane or publishes what its decisions owe.
fn lease_valid(held: &Mutex<BTreeMap<Partition, Held>>, partition: Partition) -> bool {
    held.lock().get(&partition).is_some_and(Held::is_valid)
}

impl keel_runtime::Sharding for Sharding {
    fn partition_of(&self, key: &str) -> u32 {
        self.partitioning.of(key)
    }

    fn lease_valid(&self, partition: u32) -> bool {
        lease_valid(&self.held, partition)
    }

    fn catalog_caught_up(&self) -> futures::future::BoxFuture<'static, ()> {
        let (js, mut catalog) = (self.js.clone(), self.catalog.clone());
        Box::pin(async move {
            let Ok(head) = changelog::head(&js, Lane::Catalog).await else {
                return;
            };
            let _ = tokio::time::timeout(CATALOG_CATCH_UP, catalog.wait_for(|s| *s >= head)).await;
        })
    }
}

/// What a node saw of another member's heartbeats, by its own clock.
struct Beats {
    /// The member's join time as it states it (a restart changes it).
    joined_ms: u64,
    revision: u64,
    /// When the revision last changed.
    changed: Instant,
    /// When this node first saw this incarnation of the member.
    joined: Instant,
    /// When its record was last in the members bucket.
    listed: Instant,
}

/// How long this node remembers the heartbeats of a member whose record is gone (it expires a
/// lease time after its last heartbeat): long enough that a member that stopped, and comes
/// back to find itself fenced out, is not taken for a new one meanwhile; short enough that
/// members replaced over the cluster's life do not pile up.
const FORGET_MEMBER_AFTER_LEASES: u32 = 10;

/// This node's membership.
pub struct Membership {
    js: async_nats::jetstream::Context,
    coordinator: Coordinator,
    member: Member,
    held: Arc<Mutex<BTreeMap<Partition, Held>>>,
    changelog: Changelog,
    snapshots: Snapshots,
    snapshot_policy: changelog::SnapshotPolicy,
    /// The changelog sequence the local copy holds each lane at (a clean stop records it;
    /// 0: it holds something of the lane, of no known sequence).
    applied: Mutex<BTreeMap<Lane, u64>>,
    catalog: watch::Sender<u64>,
    /// The last round's takeovers, for `/status` and the metrics.
    took: Mutex<Option<Takeover>>,
    /// The last hand-off's duration.
    handed_off: Mutex<Option<Duration>>,
    /// The last cluster-wide view, refreshed every round.
    view: Mutex<Option<ClusterStatus>>,
    /// What this node saw of each other member's heartbeats.
    beats: Mutex<BTreeMap<String, Beats>>,
    /// Whether the node holds every partition the plan gives it (and so is ready).
    balanced: AtomicBool,
    leaving: AtomicBool,
    /// Leases taken (each a change of owner, with a new epoch).
    acquired: AtomicU64,
    /// Leases given back.
    released: AtomicU64,
    /// Renewals refused because the lease had expired.
    lost: AtomicU64,
    /// Partitions handed off to another node.
    handoffs: AtomicU64,
    /// Partitions taken that were restored from a snapshot (and the changelog after it).
    from_snapshots: AtomicU64,
}

impl Membership {
    /// Joins the cluster on `client`'s NATS system (it becomes a member, which the plan
    /// gives partitions, once it serves: [`Membership::run`]).
    pub async fn join(
        client: async_nats::Client,
        settings: &Settings,
    ) -> Result<Membership, Error> {
        let js = async_nats::jetstream::new(client);
        let options = JoinOptions {
            node: settings.node.clone(),
            partitions: settings.partitions,
            lease_ttl: settings.lease_ttl,
            replicas: settings.replicas,
        };
        let coordinator = Coordinator::join(&js, &options).await?;
        changelog::ensure_stream(&js, settings.replicas).await?;
        let snapshots = Snapshots::open(&js, settings.replicas).await?;
        let held: Arc<Mutex<BTreeMap<Partition, Held>>> = Arc::default();
        // A lane is written only under a lease this node holds, valid by its own clock; the
        // catalog (first writer wins per entry) by any node.
        let fence = {
            let held = Arc::clone(&held);
            Arc::new(move |lane: Lane| match lane {
                Lane::Catalog => true,
                Lane::Partition(p) => lease_valid(&held, p),
            })
        };
        let changelog = Changelog::start(
            js.clone(),
            &settings.node,
            coordinator.partitioning(),
            fence,
        );
        let member = Member {
            node: settings.node.clone(),
            address: settings.address.clone(),
            joined_ms: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0)),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            revision: 0,
        };
        Ok(Membership {
            js,
            coordinator,
            member,
            held,
            changelog,
            snapshots,
            snapshot_policy: settings.snapshots,
            applied: Mutex::default(),
            catalog: watch::channel(0).0,
            took: Mutex::new(None),
            handed_off: Mutex::new(None),
            view: Mutex::new(None),
            beats: Mutex::default(),
            balanced: AtomicBool::new(false),
            leaving: AtomicBool::new(false),
            acquired: AtomicU64::new(0),
            released: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            handoffs: AtomicU64::new(0),
            from_snapshots: AtomicU64::new(0),
        })
    }

    /// The store's durable copy: this node's changelog writer.
    pub fn replica(&self) -> Arc<dyn keel_store::Replica> {
        Arc::new(self.changelog.clone())
    }

    /// How the node maps entities to partitions (and waits for the catalog).
    pub fn sharding(&self) -> Arc<dyn keel_runtime::Sharding> {
        let sharding = Sharding {
            js: self.js.clone(),
            partitioning: self.coordinator.partitioning(),
            catalog: self.catalog.subscribe(),
            held: Arc::clone(&self.held),
        };
        Arc::new(sharding)
    }

    /// Why the changelog refused this node's writes, once it has.
    pub fn fenced(&self) -> watch::Receiver<Option<String>> {
        self.changelog.fenced()
    }

    /// Decides what the local copy may be trusted with (`clean`: what the last clean stop
    /// recorded; without it the copy is emptied and every partition is restored in full when
    /// taken), and brings the catalog to the changelog's head.
    pub async fn prepare(
        &self,
        store: &keel_store::Store,
        clean: Option<&CleanStop>,
    ) -> Result<(), Error> {
        let applied: BTreeMap<Lane, u64> = match clean {
            Some(clean) => clean
                .iter()
                .filter_map(|(subject, seq)| Some((changelog::lane_of(subject)?, *seq)))
                .collect(),
            None => {
                store
                    .clear()
                    .map_err(|e| Error::Restore(format!("emptying the local copy: {e}")))?;
                BTreeMap::new()
            }
        };
        let after = applied.get(&Lane::Catalog).copied().unwrap_or(0);
        let restored = changelog::restore(&self.js, store, Some(Lane::Catalog), after).await?;
        let head = restored.heads.get(&Lane::Catalog).copied().unwrap_or(after);
        *self.applied.lock() = applied;
        self.applied.lock().insert(Lane::Catalog, head);
        self.catalog.send_replace(head);
        self.changelog.open(Lane::Catalog, 0, 0);
        let store = store.clone();
        self.changelog.keep_snapshotted(
            self.snapshots.clone(),
            move || store.fold(),
            self.snapshot_policy,
        );
        Ok(())
    }

    /// Follows the catalog's changelog (every node adds to it) into `node`'s catalog.
    pub fn follow_catalog(self: &Arc<Self>, node: &Arc<Node>) {
        let after = *self.catalog.borrow();
        let (applied, _) = watch::channel(after);
        let mut changed = applied.subscribe();
        let follow = changelog::follow(
            self.js.clone(),
            node.store().clone(),
            Lane::Catalog,
            after,
            move |seq| {
                applied.send_replace(seq);
            },
        );
        tokio::spawn(follow);
        let (me, node) = (Arc::clone(self), Arc::clone(node));
        // Reloads at most once per batch of new entries.
        tokio::spawn(async move {
            while changed.changed().await.is_ok() {
                let seq = *changed.borrow_and_update();
                if let Err(e) = node.reload_catalog() {
                    tracing::warn!(error = %e, "reloading the catalog failed");
                    continue;
                }
                me.applied.lock().insert(Lane::Catalog, seq);
                me.catalog.send_replace(seq);
            }
        });
    }

    /// Takes part in the cluster until the node leaves: heartbeats and renews the leases
    /// (its own task, so a long takeover never delays a renewal), and balances the
    /// partitions every third of the lease time, or at once when a lease is given back.
    pub async fn run(self: Arc<Self>, node: Arc<Node>) {
        tokio::spawn(Arc::clone(&self).keep_alive(Arc::clone(&node)));
        let mut releases = match self.coordinator.releases().await {
            Ok(releases) => releases,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch lease releases: polling only");
                futures::stream::pending().boxed()
            }
        };
        while !self.leaving.load(Ordering::SeqCst) {
            if let Err(e) = self.balance(&node).await {
                tracing::warn!(error = %e, "a balancing round failed");
            }
            tokio::select! {
                () = tokio::time::sleep(self.coordinator.ttl() / 3) => {}
                _ = releases.next() => {}
            }
        }
    }

    /// One round: takes the free partitions the plan gives this node, hands off (a bounded
    /// number of) those it moves away.
    async fn balance(&self, node: &Arc<Node>) -> Result<(), Error> {
        self.coordinator.heartbeat(&self.member).await?;
        let view =
            ClusterStatus::read_with(&self.coordinator, |m, holds| self.live(m, holds)).await?;
        let forget_after = self.coordinator.ttl() * FORGET_MEMBER_AFTER_LEASES;
        self.beats
            .lock()
            .retain(|_, beats| beats.listed.elapsed() < forget_after);
        let me = self.member.node.as_str();
        let take = self.to_take(&view, &node.served_partitions());
        let give: Vec<Partition> = view
            .planned_moves
            .iter()
            .filter(|m| m.from.as_deref() == Some(me))
            .map(|m| m.partition)
            .take(MOVES_PER_ROUND)
            .collect();
        let waiting_for_moves = view.planned_moves.iter().any(|m| m.to == me);
        *self.view.lock() = Some(view);
        if !take.is_empty() {
            // Not ready while partitions it holds the leases of are still being restored.
            self.balanced.store(false, Ordering::SeqCst);
            self.take_all(node, take).await;
        }
        if !give.is_empty() {
            futures::future::join_all(give.into_iter().map(|p| self.hand_off(node, p))).await;
        }
        // Ready once the plan gives it nothing more to take (moves from others arrive as the
        // others hand them off, while this node serves).
        let orphans_left =
            ClusterStatus::read_with(&self.coordinator, |m, holds| self.live(m, holds))
                .await
                .map(|v| !self.to_take(&v, &node.served_partitions()).is_empty())
                .unwrap_or(waiting_for_moves);
        self.balanced.store(!orphans_left, Ordering::SeqCst);
        Ok(())
    }

    /// Whether `member` (holding `holds` partitions) may be given partitions: its heartbeat
    /// record changed less than half a lease time ago by this node's clock (a live member
    /// beats every third of it), and it holds a partition or joined less than a lease time
    /// ago. A member that stopped (paused, cut off) keeps its record until it expires, up to
    /// a whole lease time after its leases could lapse, and once they lapsed it holds none:
    /// planning moves to it would hand partitions to a node that cannot take them, or that
    /// is fenced out when it wakes up.
    fn live(&self, member: &Member, holds: usize) -> bool {
        if member.node == self.member.node {
            return true;
        }
        let (now, ttl) = (Instant::now(), self.coordinator.ttl());
        let mut beats = self.beats.lock();
        let seen = beats.entry(member.node.clone()).or_insert(Beats {
            joined_ms: member.joined_ms,
            revision: member.revision,
            changed: now,
            joined: now,
            listed: now,
        });
        seen.listed = now;
        if seen.joined_ms != member.joined_ms {
            // Restarted: it joined again.
            (seen.joined_ms, seen.joined) = (member.joined_ms, now);
        }
        if seen.revision != member.revision {
            (seen.revision, seen.changed) = (member.revision, now);
        }
        now.duration_since(seen.changed) < ttl / 2
            && (holds > 0 || now.duration_since(seen.joined) < ttl)
    }

    /// The partitions to take now: the free ones the plan gives this node, and those whose
    /// lease names this node but which it does not hold (its previous incarnation's, before
    /// a restart). A partition it serves whose lease lapsed is `keep_alive`'s to take back.
    fn to_take(&self, view: &ClusterStatus, served: &[Partition]) -> Vec<Partition> {
        let me = self.member.node.as_str();
        let held = self.held.lock();
        // Free: no lease (a member that stopped beating still holds its leases until they
        // lapse, though the plan counts what it holds as orphans).
        let orphans = view
            .planned_moves
            .iter()
            .filter(|m| m.to == me && m.from.is_none() && !view.leases.contains_key(&m.partition))
            .map(|m| m.partition);
        let left_by_me = view
            .leases
            .iter()
            .filter(|(p, lease)| lease.owner == me && !held.contains_key(p))
            .map(|(p, _)| *p);
        let mut take: Vec<Partition> = orphans
            .chain(left_by_me)
            .filter(|p| !served.contains(p))
            .collect();
        take.sort_unstable();
        take.dedup();
        take
    }

    /// Takes `partitions`, a bounded number at once, and records how it went.
    async fn take_all(&self, node: &Arc<Node>, partitions: Vec<Partition>) {
        let started = Instant::now();
        let taken: Vec<Option<(Restored, bool)>> = futures::stream::iter(partitions)
            .map(|p| self.take(node, p))
            .buffer_unordered(TAKE_CONCURRENCY)
            .collect()
            .await;
        let mut done = Takeover::default();
        for (restored, caught_up) in taken.iter().flatten() {
            done.add(restored, *caught_up);
        }
        if done.partitions > 0 {
            done.elapsed = started.elapsed();
            tracing::info!(
                partitions = done.partitions,
                messages = done.messages,
                elapsed_ms = done.elapsed.as_millis() as u64,
                "took partitions"
            );
            self.from_snapshots
                .fetch_add(done.from_snapshots as u64, Ordering::Relaxed);
            *self.took.lock() = Some(done);
        }
    }

    /// Takes one free partition: its lease, its state from the changelog, its claim, then
    /// serves it. `None` when another node took it first (or it failed, logged).
    async fn take(&self, node: &Arc<Node>, partition: Partition) -> Option<(Restored, bool)> {
        let held = match self.coordinator.acquire(partition).await {
            Ok(Some(held)) => held,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(partition, error = %e, "taking a lease failed");
                return None;
            }
        };
        let epoch = held.epoch;
        self.acquired.fetch_add(1, Ordering::Relaxed);
        self.held.lock().insert(partition, held.clone());
        let lane = Lane::Partition(partition);
        let local = self.applied.lock().get(&lane).copied();
        let store = node.store();
        let taken = async {
            let lanes = takeover::Lanes {
                js: &self.js,
                changelog: &self.changelog,
                snapshots: &self.snapshots,
            };
            let done = takeover::take_partition(&lanes, store, partition, epoch, local).await?;
            node.serve_partition(partition, epoch)
                .await
                .map_err(|e| Error::Node(format!("serving partition {partition}: {e}")))?;
            Ok::<_, Error>(done)
        };
        match taken.await {
            Ok(done) => Some(done),
            Err(e) => {
                tracing::warn!(
                    partition,
                    error = format!("{e:#}"),
                    "taking a partition over failed; giving it back"
                );
                let _ = node.hand_off(partition).await;
                self.changelog.close(lane);
                // It may hold part of a restore: forgotten before the next one.
                self.applied.lock().insert(lane, 0);
                self.give_back(&held).await;
                None
            }
        }
    }

    /// Hands `partition` off: the node finishes its work on it and forgets its actors, the
    /// changelog has everything, the lane is closed, and the lease goes back.
    async fn hand_off(&self, node: &Arc<Node>, partition: Partition) {
        if !self.held.lock().contains_key(&partition) {
            // An earlier incarnation's lease that could not be taken back: it lapses.
            return;
        }
        let started = Instant::now();
        if !node.hand_off(partition).await {
            tracing::warn!(
                partition,
                "work on the partition outlasted the hand-off wait"
            );
        }
        if let Err(e) = node.flush().await {
            tracing::warn!(partition, error = %e, "flush before a hand-off failed");
        }
        let lane = Lane::Partition(partition);
        match self.changelog.close(lane) {
            Some(seq) => self.applied.lock().insert(lane, seq),
            // Not everything reached the changelog: forget it and restore it in full if it
            // comes back.
            None => self.applied.lock().insert(lane, 0),
        };
        let held = self.held.lock().get(&partition).cloned();
        if let Some(held) = held {
            self.give_back(&held).await;
        }
        self.handoffs.fetch_add(1, Ordering::Relaxed);
        let elapsed = started.elapsed();
        *self.handed_off.lock() = Some(elapsed);
        tracing::info!(
            partition,
            elapsed_ms = elapsed.as_millis() as u64,
            "handed a partition off"
        );
    }

    async fn give_back(&self, held: &Held) {
        self.held.lock().remove(&held.partition);
        match self.coordinator.release(held).await {
            Ok(()) => {
                self.released.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tracing::warn!(partition = held.partition, error = %e, "release failed"),
        }
    }

    /// Renews the heartbeat and the leases every third of the lease time until the node
    /// leaves. A lease that lapsed (NATS was away longer than the lease) is taken again if
    /// nobody claimed its partition meanwhile; a partition another node took over (this
    /// process was paused, or cut off) ends the process with [`FENCED_EXIT`].
    async fn keep_alive(self: Arc<Self>, node: Arc<Node>) {
        while !self.leaving.load(Ordering::SeqCst) {
            tokio::time::sleep(self.coordinator.ttl() / 3).await;
            if let Err(e) = self.coordinator.heartbeat(&self.member).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            let held: Vec<Held> = self.held.lock().values().cloned().collect();
            // Concurrently: one after the other, a loaded node's last renewals could come
            // too late for its own clock.
            let coordinator = &self.coordinator;
            let mut renewals = futures::stream::iter(held)
                .map(|lease| async move {
                    let renewed = coordinator.renew(&lease).await;
                    (lease, renewed)
                })
                .buffer_unordered(RENEW_CONCURRENCY);
            while let Some((lease, renewed)) = renewals.next().await {
                let mut held = self.held.lock();
                // Unless it was handed off (and maybe taken again) meanwhile.
                if held.get(&lease.partition).map(|h| h.epoch) != Some(lease.epoch) {
                    continue;
                }
                match renewed {
                    Ok(renewed) => {
                        held.insert(lease.partition, renewed);
                    }
                    Err(crate::Error::Lost(partition)) => {
                        self.lost.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(partition, epoch = lease.epoch, "lease lapsed");
                        held.remove(&partition);
                    }
                    // NATS is away: the lease lapses by this node's own clock (it stops
                    // writing the partition), and the next round tries again.
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                }
            }
            drop(renewals);
            let missing: Vec<Partition> = node
                .served_partitions()
                .into_iter()
                .filter(|p| !self.held.lock().contains_key(p))
                .collect();
            for partition in missing {
                if self.leaving.load(Ordering::SeqCst) {
                    break;
                }
                match self.retake(&node, partition).await {
                    Ok(true) => {}
                    Ok(false) => fenced_out(&format!(
                        "partition {partition} was taken over by another node"
                    )),
                    Err(e) => tracing::warn!(partition, error = %e, "taking a lease back failed"),
                }
            }
        }
    }

    /// Takes a lapsed lease again, at a new epoch, if no other node holds it or claimed its
    /// partition in the changelog since this node's last write; answers whether it did.
    async fn retake(&self, node: &Node, partition: Partition) -> Result<bool, Error> {
        let Some(held) = self.coordinator.acquire(partition).await? else {
            return Ok(false);
        };
        let lane = Lane::Partition(partition);
        if !changelog::last_written_by(&self.js, lane, &self.member.node).await? {
            return Ok(false);
        }
        self.changelog.set_epoch(lane, held.epoch);
        node.renew_epoch(partition, held.epoch);
        self.acquired.fetch_add(1, Ordering::Relaxed);
        tracing::info!(partition, epoch = held.epoch, "took a lapsed lease back");
        self.held.lock().insert(partition, held);
        Ok(true)
    }

    /// Whether this node is ready: it holds what the plan gave it, by its own clock none of
    /// its leases can have expired, and it is not leaving.
    pub fn is_ready(&self) -> bool {
        self.balanced.load(Ordering::SeqCst)
            && !self.leaving.load(Ordering::SeqCst)
            && self.held.lock().values().all(Held::is_valid)
    }

    /// A graceful leave: stops balancing, hands every partition off (the others take them
    /// at once) and removes the heartbeat.
    pub async fn leave(&self, node: &Arc<Node>) {
        self.leaving.store(true, Ordering::SeqCst);
        let started = Instant::now();
        let held: Vec<Partition> = self.held.lock().keys().copied().collect();
        let count = held.len();
        futures::future::join_all(held.into_iter().map(|p| self.hand_off(node, p))).await;
        if let Err(e) = self.coordinator.leave().await {
            tracing::warn!(error = %e, "leaving failed");
        }
        tracing::info!(
            partitions = count,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "left the cluster"
        );
    }

    /// Records a clean stop (call it once the store is synced): a restart on this disk then
    /// restores only what came after.
    pub fn record_clean_stop(&self, data_dir: &std::path::Path) {
        if let Err(e) = takeover::record_clean_stop(data_dir, &self.applied.lock()) {
            tracing::warn!(error = %e, "could not record the clean stop: the next start restores");
        }
    }

    /// `/status`: this node and the last cluster-wide view.
    pub fn status(&self) -> serde_json::Value {
        let ready = self.is_ready();
        let held = self.held.lock();
        let epochs: BTreeMap<Partition, u64> = held.iter().map(|(p, h)| (*p, h.epoch)).collect();
        serde_json::json!({
            "mode": "cluster",
            "node": self.member.node,
            "ready": ready,
            "leaving": self.leaving.load(Ordering::SeqCst),
            "partitions_held": held.len(),
            "epochs": epochs,
            "takeover": self.took.lock().as_ref().map(|t| serde_json::json!({
                "partitions": t.partitions,
                "restored_messages": t.messages,
                "restored_writes": t.writes,
                "from_snapshots": t.from_snapshots,
                "snapshot_bytes": t.snapshot_bytes,
                "restore_ms": t.restoring.as_millis() as u64,
                "caught_up": t.caught_up,
                "elapsed_ms": t.elapsed.as_millis() as u64,
            })),
            "handoffs": self.handoffs.load(Ordering::Relaxed),
            "last_handoff_ms": self.handed_off.lock().map(|d| d.as_millis() as u64),
            "catalog_sequence": *self.catalog.borrow(),
            "cluster": *self.view.lock(),
        })
    }

    /// The cluster's counters and gauges, for `/metrics`.
    pub fn samples(&self) -> Vec<Sample> {
        let load = |value: &AtomicU64| value.load(Ordering::Relaxed);
        let written = self.changelog.stats();
        let counters = [
            (
                "keel_cluster_ownership_changes_total",
                "Partition leases this node took (each with a new epoch).",
                load(&self.acquired),
            ),
            (
                "keel_cluster_leases_released_total",
                "Partition leases this node gave back.",
                load(&self.released),
            ),
            (
                "keel_cluster_leases_lost_total",
                "Renewals refused because the lease had expired.",
                load(&self.lost),
            ),
            (
                "keel_cluster_handoffs_total",
                "Partitions this node handed off to another node (graceful).",
                load(&self.handoffs),
            ),
            (
                "keel_cluster_restored_from_snapshots_total",
                "Partitions this node took that it restored from a snapshot (and the changelog after it).",
                load(&self.from_snapshots),
            ),
            (
                "keel_changelog_batches_total",
                "Changelog messages this node wrote.",
                load(&written.batches),
            ),
            (
                "keel_changelog_bytes_total",
                "Bytes of commit records this node wrote to the changelog.",
                load(&written.bytes),
            ),
            (
                "keel_changelog_retries_total",
                "Changelog sends that failed and were sent again.",
                load(&written.retried),
            ),
            (
                "keel_changelog_snapshots_total",
                "Partition snapshots this node made (the changelog is purged below each).",
                load(&written.snapshots),
            ),
            (
                "keel_changelog_snapshot_bytes_total",
                "Bytes of the partition snapshots this node made.",
                load(&written.snapshot_bytes),
            ),
            (
                "keel_changelog_purged_total",
                "Changelog messages purged below this node's snapshots.",
                load(&written.purged),
            ),
            (
                "keel_changelog_snapshot_failures_total",
                "Snapshots that failed (tried again later).",
                load(&written.snapshot_failures),
            ),
        ];
        let (restore, takeover) = self.took.lock().as_ref().map_or((0.0, 0.0), |t| {
            (t.restoring.as_secs_f64(), t.elapsed.as_secs_f64())
        });
        let gauges = [
            (
                "keel_cluster_partitions_held",
                "Partitions whose lease this node holds.",
                self.held.lock().len() as f64,
            ),
            (
                "keel_cluster_restore_seconds",
                "Time the last round of takeovers spent restoring from the changelog (summed over its partitions).",
                restore,
            ),
            (
                "keel_cluster_takeover_seconds",
                "From the first lease to serving every partition, in the last round of takeovers.",
                takeover,
            ),
            (
                "keel_cluster_handoff_seconds",
                "How long the last hand-off of a partition took (drain, flush, release).",
                self.handed_off.lock().map_or(0.0, |d| d.as_secs_f64()),
            ),
        ];
        let counters = counters
            .into_iter()
            .map(|(name, help, value)| Sample::counter(name, help, value));
        let gauges = gauges
            .into_iter()
            .map(|(name, help, value)| Sample::gauge(name, help, value));
        counters.chain(gauges).collect()
    }
}

/// Ends the process: another node owns this node's partitions now.
pub fn fenced_out(reason: &str) -> ! {
    tracing::error!(%reason, "fenced out: another node owns this node's partitions; exiting (a restart restores from the changelog)");
    std::process::exit(FENCED_EXIT)
}
