//! Taking a cluster's partitions over: the local store is brought to the changelog's head
//! (kept when a clean stop left it current, else emptied and replayed), then every partition
//! is claimed in the changelog at this node's epoch, which fences its previous owner out.

use anyhow::Context;
use futures::future::try_join_all;
use keel_cluster::changelog::{self, Changelog, Restored};
use keel_cluster::{Partition, Partitioning};
use keel_store::{Lane, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The file a clean stop leaves: the changelog sequence of every lane the local copy holds.
const CLEAN_STOP_FILE: &str = "clean-stop.json";

/// What a clean stop recorded: lane subject → its last sequence.
pub type CleanStop = BTreeMap<String, u64>;

fn clean_stop_path(data_dir: &Path) -> PathBuf {
    data_dir.join(CLEAN_STOP_FILE)
}

/// Takes the record of the last clean stop, if the last stop was clean. It is removed (and
/// the removal made durable) before this node writes anything: after a crash from here on the
/// local copy can hold commits the changelog does not, so it must not be trusted again.
pub fn take_clean_stop(data_dir: &Path) -> anyhow::Result<Option<CleanStop>> {
    let path = clean_stop_path(data_dir);
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(None);
    };
    std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .with_context(|| format!("syncing {}", data_dir.display()))?;
    Ok(serde_json::from_slice(&raw).ok())
}

/// Records a clean stop: everything local is flushed, and matches the changelog at `heads`.
pub fn record_clean_stop(data_dir: &Path, heads: &BTreeMap<Lane, u64>) -> anyhow::Result<()> {
    let record: CleanStop = heads
        .iter()
        .map(|(lane, seq)| (changelog::subject(*lane), *seq))
        .collect();
    let path = clean_stop_path(data_dir);
    std::fs::write(&path, serde_json::to_vec(&record)?)
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::File::open(&path)
        .and_then(|file| file.sync_all())
        .with_context(|| format!("syncing {}", path.display()))
}

/// What taking the partitions over did.
#[derive(Debug, Clone)]
pub struct Takeover {
    /// The replay, when the local copy was not current.
    pub restored: Option<Restored>,
    /// Claims that found another writer ahead and replayed the rest first.
    pub caught_up: usize,
    /// From holding the leases to owning every partition in the changelog.
    pub elapsed: Duration,
}

/// Brings `store` to the changelog's head and claims every partition at its epoch in
/// `epochs`; `clean` is what the last clean stop recorded, if it was clean.
pub async fn take_over(
    js: &async_nats::jetstream::Context,
    changelog: &Changelog,
    store: &Store,
    partitioning: Partitioning,
    epochs: &BTreeMap<Partition, u64>,
    clean: Option<&CleanStop>,
) -> anyhow::Result<Takeover> {
    let started = Instant::now();
    let lanes = changelog::all_lanes(partitioning);
    let heads = try_join_all(lanes.iter().map(|lane| changelog::head(js, *lane))).await?;
    let mut heads: BTreeMap<Lane, u64> = lanes.iter().copied().zip(heads).collect();
    let current = clean.is_some_and(|clean| {
        heads
            .iter()
            .all(|(lane, seq)| clean.get(&changelog::subject(*lane)).copied().unwrap_or(0) == *seq)
    });
    let restored = if current {
        tracing::info!("the local copy is the changelog's head: kept");
        None
    } else {
        store.clear().context("emptying the local copy")?;
        let restored = changelog::restore(js, store, None, 0).await?;
        tracing::info!(
            messages = restored.messages,
            writes = restored.writes,
            elapsed_ms = restored.elapsed.as_millis() as u64,
            "restored the partitions from the changelog"
        );
        for (lane, seq) in &mut heads {
            *seq = restored.heads.get(lane).copied().unwrap_or(0);
        }
        Some(restored)
    };
    let claims = epochs.iter().map(|(partition, epoch)| {
        let lane = Lane::Partition(*partition);
        claim(js, changelog, store, lane, *epoch, heads[&lane])
    });
    let caught_up = try_join_all(claims)
        .await?
        .into_iter()
        .filter(|c| *c)
        .count();
    changelog.open(Lane::Catalog, 0, heads[&Lane::Catalog]);
    Ok(Takeover {
        restored,
        caught_up,
        elapsed: started.elapsed(),
    })
}

/// Claims `lane`, first replaying whatever another writer added after `head`; answers
/// whether it had to.
async fn claim(
    js: &async_nats::jetstream::Context,
    changelog: &Changelog,
    store: &Store,
    lane: Lane,
    epoch: u64,
    mut head: u64,
) -> anyhow::Result<bool> {
    let mut caught_up = false;
    loop {
        match changelog.claim(lane, epoch, head).await {
            Ok(sequence) => {
                changelog.open(lane, epoch, sequence);
                return Ok(caught_up);
            }
            Err(keel_cluster::Error::Stale { .. }) => {
                let rest = changelog::restore(js, store, Some(lane), head).await?;
                head = rest.heads.get(&lane).copied().unwrap_or(head);
                caught_up = true;
            }
            Err(e) => return Err(e).context("claiming a partition in the changelog"),
        }
    }
}
