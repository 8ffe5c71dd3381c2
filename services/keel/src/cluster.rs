//! The node's place in a cluster on NATS: it joins, takes its partitions' leases, brings its
//! store to the changelog's head and claims them there (`takeover.rs`), heartbeats, and gives
//! everything back when it leaves.
//!
//! Partitions are not routed to several owners yet: one node serves while it holds every
//! partition, and the others stand by. When the serving node is lost (with its disk or not),
//! the first standby in line takes every partition over once the leases lapse, restoring
//! their state from the changelog. A node whose partition was taken over while it was away
//! exits (crash-only: its local copy may hold commits the changelog refused, so only a
//! restart, which replays the changelog, may bring it back); a lease that merely lapsed while
//! NATS was away, with nobody claiming the partition, is taken again.

use crate::takeover::{self, CleanStop, Takeover};
use anyhow::Context;
use futures::StreamExt;
use keel_cluster::changelog::{self, Changelog};
use keel_cluster::{ClusterStatus, Coordinator, Held, JoinOptions, Member, Partition};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The node id kept in `data_dir` (made on first start): the id names the disk that holds
/// its partitions' state, so a restarted node with the same disk is the same member.
pub fn stored_node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(id) = std::fs::read_to_string(&path) {
        return Ok(id.trim().to_owned());
    }
    std::fs::create_dir_all(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
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
    std::fs::write(&path, &id).with_context(|| format!("writing {}", path.display()))?;
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
}

/// The exit status of a node that found its partitions taken over (a restart brings it back
/// as a standby with a fresh copy).
pub const FENCED_EXIT: i32 = 75;

/// This node's membership.
pub struct Membership {
    js: async_nats::jetstream::Context,
    coordinator: Coordinator,
    member: Member,
    held: Arc<Mutex<BTreeMap<Partition, Held>>>,
    changelog: Changelog,
    /// The last takeover, for `/status` and the metrics.
    takeover: Mutex<Option<Takeover>>,
    /// Why it does not serve, while it does not.
    waiting: Mutex<Option<String>>,
    /// The last cluster-wide view, refreshed by the keep-alive.
    view: Mutex<Option<ClusterStatus>>,
    serving: AtomicBool,
    /// Leases taken (each a change of owner, with a new epoch).
    acquired: AtomicU64,
    /// Leases given back.
    released: AtomicU64,
    /// Renewals refused because the lease had expired.
    lost: AtomicU64,
}

impl Membership {
    /// Joins the cluster on `client`'s NATS system.
    pub async fn join(
        client: async_nats::Client,
        settings: &Settings,
    ) -> anyhow::Result<Membership> {
        let js = async_nats::jetstream::new(client);
        let options = JoinOptions {
            node: settings.node.clone(),
            partitions: settings.partitions,
            lease_ttl: settings.lease_ttl,
            replicas: settings.replicas,
        };
        let coordinator = Coordinator::join(&js, &options)
            .await
            .context("joining the cluster")?;
        changelog::ensure_stream(&js, settings.replicas).await?;
        let held: Arc<Mutex<BTreeMap<Partition, Held>>> = Arc::default();
        let fence = {
            let (held, count) = (Arc::clone(&held), coordinator.partitioning().count());
            Arc::new(move || holds_all(&held.lock(), count))
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
        };
        coordinator.heartbeat(&member).await?;
        Ok(Membership {
            js,
            coordinator,
            member,
            held,
            changelog,
            takeover: Mutex::new(None),
            waiting: Mutex::new(None),
            view: Mutex::new(None),
            serving: AtomicBool::new(false),
            acquired: AtomicU64::new(0),
            released: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        })
    }

    /// The store's durable copy: this node's changelog writer.
    pub fn replica(&self) -> Arc<dyn keel_store::Replica> {
        Arc::new(self.changelog.clone())
    }

    /// Why the changelog refused this node's writes, once it has.
    pub fn fenced(&self) -> tokio::sync::watch::Receiver<Option<String>> {
        self.changelog.fenced()
    }

    /// Waits until this node holds every partition (a standby until then, heartbeating), then
    /// brings `store` to the changelog's head and claims every partition. `clean` is what the
    /// node's last clean stop recorded.
    pub async fn take_partitions(
        &self,
        store: &keel_store::Store,
        clean: Option<&CleanStop>,
    ) -> anyhow::Result<()> {
        let mut releases = match self.coordinator.releases().await {
            Ok(releases) => releases,
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch lease releases: polling only");
                futures::stream::pending().boxed()
            }
        };
        loop {
            match self.try_take_all().await? {
                None => break,
                Some(reason) => {
                    if self.waiting.lock().as_deref() != Some(reason.as_str()) {
                        tracing::warn!(%reason, "standing by");
                    }
                    *self.waiting.lock() = Some(reason);
                }
            }
            self.coordinator.heartbeat(&self.member).await?;
            self.refresh_view().await;
            // The next poll, or at once when a lease is given back (a graceful leave).
            tokio::select! {
                () = tokio::time::sleep(self.coordinator.ttl() / 3) => {}
                _ = releases.next() => {}
            }
        }
        let epochs: BTreeMap<Partition, u64> = self
            .held
            .lock()
            .iter()
            .map(|(p, h)| (*p, h.epoch))
            .collect();
        let partitioning = self.coordinator.partitioning();
        let done = takeover::take_over(
            &self.js,
            &self.changelog,
            store,
            partitioning,
            &epochs,
            clean,
        )
        .await?;
        tracing::info!(
            partitions = partitioning.count(),
            restored = done.restored.is_some(),
            elapsed_ms = done.elapsed.as_millis() as u64,
            "holding every partition"
        );
        *self.takeover.lock() = Some(done);
        *self.waiting.lock() = None;
        self.serving.store(true, Ordering::SeqCst);
        self.refresh_view().await;
        Ok(())
    }

    /// Takes every free partition unless another node holds some (or is ahead in line);
    /// `Some(reason)` while this node must wait.
    async fn try_take_all(&self) -> anyhow::Result<Option<String>> {
        let leases = self.coordinator.leases().await?;
        let mut others: BTreeMap<String, usize> = BTreeMap::new();
        for lease in leases.values().filter(|l| l.owner != self.member.node) {
            *others.entry(lease.owner.clone()).or_default() += 1;
        }
        if !others.is_empty() {
            // Two standbys raced for a free cluster: the one with the lower id goes on.
            let mine = !self.held.lock().is_empty();
            if mine && others.keys().any(|o| *o < self.member.node) {
                self.release_all().await;
            }
            let holders: Vec<String> = others.iter().map(|(n, c)| format!("{n} ({c})")).collect();
            return Ok(Some(format!(
                "partitions are held by {}: this node stands by and takes over if their \
                 leases lapse",
                holders.join(", ")
            )));
        }
        if self.held.lock().is_empty() {
            let members = self.coordinator.members().await?;
            if let Some(first) = members.keys().find(|m| **m < self.member.node) {
                return Ok(Some(format!(
                    "{first} is ahead in line to take the partitions"
                )));
            }
        }
        let mut missed = 0;
        for partition in self.coordinator.partitioning().all() {
            if self.held.lock().get(&partition).is_some_and(Held::is_valid) {
                continue;
            }
            match self.coordinator.acquire(partition).await? {
                Some(held) => {
                    self.acquired.fetch_add(1, Ordering::Relaxed);
                    self.held.lock().insert(partition, held);
                }
                None => missed += 1,
            }
        }
        Ok((missed > 0).then(|| format!("{missed} partitions were taken by another node")))
    }

    /// Renews the leases and the heartbeat every third of the lease time until the node stops.
    /// A lease that lapsed (NATS was away longer than the lease) is taken again if nobody
    /// claimed its partition meanwhile; a partition another node took over (this process was
    /// paused, or cut off) ends the process with [`FENCED_EXIT`].
    pub async fn keep_alive(self: Arc<Self>) {
        loop {
            tokio::time::sleep(self.coordinator.ttl() / 3).await;
            if let Err(e) = self.coordinator.heartbeat(&self.member).await {
                tracing::warn!(error = %e, "heartbeat failed");
            }
            let held: Vec<Held> = self.held.lock().values().cloned().collect();
            for lease in held {
                match self.coordinator.renew(&lease).await {
                    Ok(renewed) => {
                        self.held.lock().insert(lease.partition, renewed);
                    }
                    Err(keel_cluster::Error::Lost(partition)) => {
                        self.lost.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(partition, epoch = lease.epoch, "lease lapsed");
                        self.held.lock().remove(&partition);
                    }
                    // NATS is away: the lease lapses by this node's own clock (it stops
                    // acting), and the next round tries again.
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                }
            }
            let missing: Vec<Partition> = self
                .coordinator
                .partitioning()
                .all()
                .filter(|p| !self.held.lock().contains_key(p))
                .collect();
            for partition in missing {
                match self.retake(partition).await {
                    Ok(true) => {}
                    Ok(false) => fenced_out(&format!(
                        "partition {partition} was taken over by another node"
                    )),
                    Err(e) => tracing::warn!(partition, error = %e, "taking a lease back failed"),
                }
            }
            self.refresh_view().await;
        }
    }

    /// Takes a lapsed lease again, at a new epoch, if no other node holds it or claimed its
    /// partition in the changelog since this node's last write; answers whether it did.
    async fn retake(&self, partition: Partition) -> anyhow::Result<bool> {
        let Some(held) = self.coordinator.acquire(partition).await? else {
            return Ok(false);
        };
        let lane = keel_store::Lane::Partition(partition);
        if !changelog::last_written_by(&self.js, lane, &self.member.node).await? {
            return Ok(false);
        }
        self.changelog.set_epoch(lane, held.epoch);
        self.acquired.fetch_add(1, Ordering::Relaxed);
        tracing::info!(partition, epoch = held.epoch, "took a lapsed lease back");
        self.held.lock().insert(partition, held);
        Ok(true)
    }

    /// Whether this node may serve now: it holds every partition and, by its own clock, none
    /// of those leases can have expired.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
            && holds_all(&self.held.lock(), self.coordinator.partitioning().count())
    }

    /// Records a clean stop (the store is flushed and synced), gives every lease back and
    /// removes the heartbeat (a graceful leave).
    pub async fn leave(&self, data_dir: &std::path::Path) {
        self.serving.store(false, Ordering::SeqCst);
        if let Err(e) = takeover::record_clean_stop(data_dir, &self.changelog.heads()) {
            tracing::warn!(error = %e, "could not record the clean stop: the next start restores");
        }
        self.release_all().await;
        if let Err(e) = self.coordinator.leave().await {
            tracing::warn!(error = %e, "leaving failed");
        }
        tracing::info!("left the cluster");
    }

    /// Gives every held lease back.
    async fn release_all(&self) {
        let held: Vec<Held> = std::mem::take(&mut *self.held.lock())
            .into_values()
            .collect();
        for lease in held {
            match self.coordinator.release(&lease).await {
                Ok(()) => {
                    self.released.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(partition = lease.partition, error = %e, "release failed"),
            }
        }
    }

    async fn refresh_view(&self) {
        match ClusterStatus::read(&self.coordinator).await {
            Ok(view) => *self.view.lock() = Some(view),
            Err(e) => tracing::warn!(error = %e, "reading the cluster status failed"),
        }
    }

    /// `/status`: this node and the last cluster-wide view.
    pub fn status(&self) -> serde_json::Value {
        let serving = self.is_serving();
        let held = self.held.lock();
        let epochs: BTreeMap<Partition, u64> = held.iter().map(|(p, h)| (*p, h.epoch)).collect();
        serde_json::json!({
            "mode": "cluster",
            "node": self.member.node,
            "serving": serving,
            "waiting": *self.waiting.lock(),
            "partitions_held": held.len(),
            "epochs": epochs,
            "takeover": self.takeover.lock().as_ref().map(|t| serde_json::json!({
                "restored": t.restored.is_some(),
                "restored_messages": t.restored.as_ref().map_or(0, |r| r.messages),
                "restored_writes": t.restored.as_ref().map_or(0, |r| r.writes),
                "restore_ms": t.restored.as_ref().map_or(0, |r| r.elapsed.as_millis() as u64),
                "caught_up": t.caught_up,
                "elapsed_ms": t.elapsed.as_millis() as u64,
            })),
            "cluster": *self.view.lock(),
        })
    }

    /// Prometheus text for the cluster counters.
    pub fn metrics(&self) -> String {
        let held = self.held.lock().len();
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
        ]
        .map(|(name, help, value)| keel_bus::Counter { name, help, value });
        let (restore, takeover) = self.takeover.lock().as_ref().map_or((0.0, 0.0), |t| {
            let restore = t.restored.as_ref().map_or(0.0, |r| r.elapsed.as_secs_f64());
            (restore, t.elapsed.as_secs_f64())
        });
        format!(
            "# HELP keel_cluster_partitions_held Partitions whose lease this node holds.\n\
             # TYPE keel_cluster_partitions_held gauge\nkeel_cluster_partitions_held {held}\n\
             # HELP keel_cluster_restore_seconds How long the last restore from the changelog took (0: the local copy was current).\n\
             # TYPE keel_cluster_restore_seconds gauge\nkeel_cluster_restore_seconds {restore}\n\
             # HELP keel_cluster_takeover_seconds From holding the leases to owning every partition in the changelog, last time.\n\
             # TYPE keel_cluster_takeover_seconds gauge\nkeel_cluster_takeover_seconds {takeover}\n{}",
            keel_runtime::metrics::render_counters(&counters)
        )
    }
}

/// Whether `held` covers all `count` partitions, each valid by this node's clock.
fn holds_all(held: &BTreeMap<Partition, Held>, count: u32) -> bool {
    held.len() == count as usize && held.values().all(Held::is_valid)
}

/// Ends the process: another node owns this node's partitions now.
pub fn fenced_out(reason: &str) -> ! {
    tracing::error!(%reason, "fenced out: another node owns this node's partitions; exiting (a restart restores from the changelog)");
    std::process::exit(FENCED_EXIT)
}
