//! The node's place in a cluster on NATS: it joins, holds its partitions' leases while it
//! serves, heartbeats, and gives everything back when it leaves.
//!
//! Until partitions can move between nodes (handoff and a restorable copy of their state),
//! a partition's state lives only on the disk of the node that last owned it. So a node takes
//! a free partition only when nobody ever owned it or when it was its last owner, and it
//! serves only while it holds every partition. A second node on the same NATS therefore waits
//! as a standby (not ready) instead of taking commands whose entities it has no state for, and
//! a restarted node takes its partitions back with a higher epoch.

use anyhow::Context;
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
}

/// This node's membership.
pub struct Membership {
    coordinator: Coordinator,
    member: Member,
    held: Mutex<BTreeMap<Partition, Held>>,
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
            replicas: 1,
        };
        let coordinator = Coordinator::join(&js, &options)
            .await
            .context("joining the cluster")?;
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
            coordinator,
            member,
            held: Mutex::new(BTreeMap::new()),
            waiting: Mutex::new(None),
            view: Mutex::new(None),
            serving: AtomicBool::new(false),
            acquired: AtomicU64::new(0),
            released: AtomicU64::new(0),
            lost: AtomicU64::new(0),
        })
    }

    /// Waits until this node holds every partition (a standby until then), heartbeating.
    pub async fn take_partitions(&self) -> anyhow::Result<()> {
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
            tokio::time::sleep(self.coordinator.ttl() / 3).await;
        }
        *self.waiting.lock() = None;
        self.serving.store(true, Ordering::SeqCst);
        self.refresh_view().await;
        tracing::info!(
            partitions = self.coordinator.partitioning().count(),
            "holding every partition"
        );
        Ok(())
    }

    /// Takes every partition it may; `Some(reason)` when some are held by, or were last held
    /// by, another node.
    async fn try_take_all(&self) -> anyhow::Result<Option<String>> {
        let mut others: BTreeMap<String, usize> = BTreeMap::new();
        for partition in self.coordinator.partitioning().all() {
            if self.held.lock().get(&partition).is_some_and(Held::is_valid) {
                continue;
            }
            let last = self.coordinator.last_grant(partition).await?;
            if let Some(last) = last.filter(|l| l.owner != self.member.node) {
                *others.entry(last.owner).or_default() += 1;
                continue;
            }
            match self.coordinator.acquire(partition).await? {
                Some(held) => {
                    self.acquired.fetch_add(1, Ordering::Relaxed);
                    self.held.lock().insert(partition, held);
                }
                None => *others.entry("another node".to_owned()).or_default() += 1,
            }
        }
        if others.is_empty() {
            return Ok(None);
        }
        let holders: Vec<String> = others.iter().map(|(n, c)| format!("{n} ({c})")).collect();
        Ok(Some(format!(
            "partitions are owned by {}; moving partitions between nodes (handoff with a \
             restorable copy of their state) is not built yet, so this node waits",
            holders.join(", ")
        )))
    }

    /// Renews the leases and the heartbeat every third of the lease time until the node stops.
    /// A lease that expired meanwhile (the process was paused, NATS was away) is taken back
    /// with a new epoch; if that is impossible the node stops serving.
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
                        tracing::warn!(partition, epoch = lease.epoch, "lease lost");
                        self.held.lock().remove(&partition);
                    }
                    Err(e) => tracing::warn!(error = %e, "lease renewal failed"),
                }
            }
            if self.held.lock().len() < self.coordinator.partitioning().count() as usize {
                match self.try_take_all().await {
                    Ok(None) => *self.waiting.lock() = None,
                    Ok(Some(reason)) => {
                        tracing::error!(%reason, "partitions lost: no longer serving");
                        self.serving.store(false, Ordering::SeqCst);
                        *self.waiting.lock() = Some(reason);
                    }
                    // NATS is away: the leases lapse by this node's clock (not ready), and
                    // the next round tries again.
                    Err(e) => tracing::warn!(error = %e, "taking partitions back failed"),
                }
            }
            self.refresh_view().await;
        }
    }

    /// Whether this node may serve now: it holds every partition and, by its own clock, none
    /// of those leases can have expired.
    pub fn is_serving(&self) -> bool {
        self.serving.load(Ordering::SeqCst)
            && self.held.lock().values().filter(|h| h.is_valid()).count()
                == self.coordinator.partitioning().count() as usize
    }

    /// Gives every lease back and removes the heartbeat (a graceful leave).
    pub async fn leave(&self) {
        self.serving.store(false, Ordering::SeqCst);
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
        if let Err(e) = self.coordinator.leave().await {
            tracing::warn!(error = %e, "leaving failed");
        }
        tracing::info!("left the cluster");
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
            "cluster": *self.view.lock(),
        })
    }

    /// Prometheus text for the cluster counters.
    pub fn metrics(&self) -> String {
        let held = self.held.lock().len();
        let counter = |name, help, value: &AtomicU64| keel_bus::Counter {
            name,
            help,
            value: value.load(Ordering::Relaxed),
        };
        let counters = [
            counter(
                "keel_cluster_ownership_changes_total",
                "Partition leases this node took (each with a new epoch).",
                &self.acquired,
            ),
            counter(
                "keel_cluster_leases_released_total",
                "Partition leases this node gave back.",
                &self.released,
            ),
            counter(
                "keel_cluster_leases_lost_total",
                "Renewals refused because the lease had expired.",
                &self.lost,
            ),
        ];
        format!(
            "# HELP keel_cluster_partitions_held Partitions whose lease this node holds.\n\
             # TYPE keel_cluster_partitions_held gauge\nkeel_cluster_partitions_held {held}\n{}",
            keel_runtime::metrics::render_counters(&counters)
        )
    }
}
