//! Taking a partition over: the local store is brought to the head of the partition's
//! changelog subject (replaying what it lacks: everything when the local copy is not trusted,
//! else what came after the sequence the local copy holds), then the partition is claimed in
//! the changelog at this node's epoch, which fences its previous owner out.

use anyhow::Context;
use keel_cluster::changelog::{self, Changelog, Restored};
use keel_cluster::Partition;
use keel_store::{Lane, Store};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// Records a clean stop: everything local is synced, and holds each lane of `heads` as of
/// that changelog sequence.
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

/// What taking one or more partitions over did.
#[derive(Debug, Clone, Default)]
pub struct Takeover {
    /// Partitions taken.
    pub partitions: usize,
    /// Changelog messages and key writes replayed into the local copy.
    pub messages: u64,
    pub writes: u64,
    /// Time spent replaying (summed over the partitions).
    pub restoring: Duration,
    /// Claims that found another writer ahead and replayed the rest first.
    pub caught_up: usize,
    /// From the first lease to serving every partition taken.
    pub elapsed: Duration,
}

impl Takeover {
    /// Adds what one partition's takeover did.
    pub fn add(&mut self, one: &Restored, caught_up: bool) {
        self.partitions += 1;
        self.messages += one.messages;
        self.writes += one.writes;
        self.restoring += one.elapsed;
        self.caught_up += usize::from(caught_up);
    }
}

/// Brings `store` to the head of `partition`'s changelog subject from sequence `after` (what
/// the local copy holds; 0 for nothing) and claims the partition at `epoch`. Answers what it
/// replayed, whether the claim had to catch up, and the sequence the lane is open at.
pub async fn take_partition(
    js: &async_nats::jetstream::Context,
    changelog: &Changelog,
    store: &Store,
    partition: Partition,
    epoch: u64,
    after: u64,
) -> anyhow::Result<(Restored, bool)> {
    let lane = Lane::Partition(partition);
    let restored = changelog::restore(js, store, Some(lane), after)
        .await
        .context("restoring a partition")?;
    let head = restored.heads.get(&lane).copied().unwrap_or(after);
    let caught_up = claim(js, changelog, store, lane, epoch, head).await?;
    Ok((restored, caught_up))
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
