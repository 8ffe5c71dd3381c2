//! Taking a partition over: the local store is brought to the head of the partition's
//! changelog subject (replaying what it lacks: everything when the local copy is not trusted,
//! else what came after the sequence the local copy holds), then the partition is claimed in
//! the changelog at this node's epoch, which fences its previous owner out.

use crate::changelog::{self, Changelog, Restored, Snapshots};
use crate::{Error, Partition};
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
pub fn take_clean_stop(data_dir: &Path) -> Result<Option<CleanStop>, Error> {
    let path = clean_stop_path(data_dir);
    let Ok(raw) = std::fs::read(&path) else {
        return Ok(None);
    };
    std::fs::remove_file(&path).map_err(|e| Error::disk("removing", &path, e))?;
    std::fs::File::open(data_dir)
        .and_then(|dir| dir.sync_all())
        .map_err(|e| Error::disk("syncing", data_dir, e))?;
    Ok(serde_json::from_slice(&raw).ok())
}

/// Records a clean stop: everything local is synced, and holds each lane of `heads` as of
/// that changelog sequence.
pub fn record_clean_stop(data_dir: &Path, heads: &BTreeMap<Lane, u64>) -> Result<(), Error> {
    let record: CleanStop = heads
        .iter()
        .map(|(lane, seq)| (changelog::subject(*lane), *seq))
        .collect();
    let path = clean_stop_path(data_dir);
    std::fs::write(
        &path,
        serde_json::to_vec(&record).expect("a map of numbers serializes"),
    )
    .map_err(|e| Error::disk("writing", &path, e))?;
    std::fs::File::open(&path)
        .and_then(|file| file.sync_all())
        .map_err(|e| Error::disk("syncing", &path, e))
}

/// What taking one or more partitions over did.
#[derive(Debug, Clone, Default)]
pub struct Takeover {
    /// Partitions taken.
    pub partitions: usize,
    /// Changelog messages and key writes replayed into the local copy.
    pub messages: u64,
    pub writes: u64,
    /// Partitions restored from a snapshot (and the messages after it), and those snapshots'
    /// bytes.
    pub from_snapshots: usize,
    pub snapshot_bytes: u64,
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
        if let Some((_, bytes)) = one.snapshot {
            self.from_snapshots += 1;
            self.snapshot_bytes += bytes;
        }
        self.restoring += one.elapsed;
        self.caught_up += usize::from(caught_up);
    }
}

/// The cluster's copies of every partition: the changelog (and this node's writer of it) and
/// the snapshots.
pub struct Lanes<'a> {
    pub js: &'a async_nats::jetstream::Context,
    pub changelog: &'a Changelog,
    pub snapshots: &'a Snapshots,
}

/// Brings `store` to the head of `partition`'s changelog (from its snapshot, or from what the
/// local copy holds: `local`, see [`changelog::restore_partition`]) and claims the partition
/// at `epoch`. Answers what it restored and whether the claim had to catch up.
pub async fn take_partition(
    lanes: &Lanes<'_>,
    store: &Store,
    partition: Partition,
    epoch: u64,
    local: Option<u64>,
) -> Result<(Restored, bool), Error> {
    let lane = Lane::Partition(partition);
    let mut restored =
        changelog::restore_partition(lanes.js, lanes.snapshots, store, partition, local).await?;
    let mut caught_up = false;
    loop {
        let head = restored.heads.get(&lane).copied().unwrap_or(0);
        match lanes.changelog.claim(lane, epoch, head).await {
            Ok(sequence) => {
                lanes.changelog.open(lane, epoch, sequence);
                lanes.changelog.restored(lane, &restored);
                return Ok((restored, caught_up));
            }
            Err(crate::Error::Stale { .. }) => {
                // Another writer added after what was restored: the rest first.
                let rest = changelog::restore_partition(
                    lanes.js,
                    lanes.snapshots,
                    store,
                    partition,
                    Some(head),
                )
                .await?;
                restored.add(rest);
                caught_up = true;
            }
            Err(e) => return Err(e),
        }
    }
}
