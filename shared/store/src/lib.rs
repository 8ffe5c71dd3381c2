//! Durable actor state on sled, kept as a partition log.
//!
//! An actor persists a decision with one [`Store::commit`]: its new state (checked against the
//! version it was decided on, so a stale writer is refused), the ids of the commands it handled
//! (dedupe), the messages it owes other actors (outbox) and its ledger entries — one record,
//! appended to its partition's log (`log/`), readable at once. One thread writes the records
//! of a round as one value per partition, and [`Store::flush`] waits for the fsync of the round
//! that holds the caller's records: concurrent callers share it (sled 0.34 also deadlocks under
//! concurrent `flush_async`). In the background the log is checkpointed: each key written since
//! the last checkpoint is written to its place once, whatever number of versions it went
//! through, and then the rounds it covered are dropped.
//!
//! With a [`Replica`] (a cluster on NATS) every commit is also copied outside the node, and
//! [`Store::flush`] waits for that copy instead of the fsync: the replica is then the durable
//! state and sled a cache that a node rebuilds from it (`replica.rs`).
//!
//! The store speaks bytes and keys; what the bytes mean is the runtime's business.

mod commit;
mod compact;
mod dedupe;
mod error;
mod files;
mod keyspace;
mod ledger_pages;
mod log;
mod memtable;
mod record;
mod replica;
mod snapshot;
mod timings;

pub use commit::{Commit, TimerChange};
pub use compact::{compact, Compaction};
pub use error::Error;
pub use files::open_raw;
pub use log::{CheckpointPolicy, CrashPoint, LogStats};
pub use replica::{Durable, Lane, Replica};
pub use snapshot::Fold;

use commit::Stripes;
use sled::IVec;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The sled tree every key lives in.
const TREE: &str = "keel";

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// sled's page cache budget in bytes; it bounds the store's share of resident memory.
    pub cache_capacity: u64,
    /// The durable copy outside the node, if any (see [`Replica`]).
    pub replica: Option<Arc<dyn Replica>>,
    /// When the log is checkpointed.
    pub checkpoint: CheckpointPolicy,
    /// How long ids of commands between actors are remembered: at least this, at most twice
    /// it (a client's document id is remembered for good; see [`Store::expire_dedupe`]).
    pub dedupe_retention: std::time::Duration,
    /// Whether a store created now, or rewritten by [`compact`], compresses its pages (zstd);
    /// `None`: a new store does not, a compaction keeps the store's setting. An existing store
    /// always opens as it was created (sled cannot change it in place).
    pub compression: Option<bool>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_capacity: 64 * 1024 * 1024,
            replica: None,
            checkpoint: CheckpointPolicy::default(),
            dedupe_retention: std::time::Duration::from_secs(7 * 24 * 3600),
            compression: None,
        }
    }
}

/// A stored state and the version it was written at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Versioned {
    /// Bumped by every commit of the entity (the single-writer fence).
    pub version: u64,
    /// The stored blob.
    pub bytes: Vec<u8>,
}

/// The log partition of records that belong to no entity's partition (catalog entries).
const CATALOG_PARTITION: u32 = u32::MAX;

/// A cheap, cloneable handle to the node's store.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    log: log::Log,
    stripes: Arc<Stripes>,
    replica: Option<Arc<dyn Replica>>,
    /// Outbox ids start above every id already in the store (see [`keyspace::outbox`]).
    outbox_floor: Arc<AtomicU64>,
    retention: dedupe::Retention,
}

impl Store {
    /// Opens (or creates) the store in `dir`, replaying what its log holds.
    pub fn open(dir: &Path, options: &Options) -> Result<Store, Error> {
        // sled's default mode (LowSpace): HighThroughput measured no faster end to end here and
        // used no less disk (about 11 KB per order in a promo run either way).
        compact::finish(dir)?;
        let compress = options.compression.unwrap_or(false);
        let db = files::open(dir, options.cache_capacity, compress)?;
        let tree = db.open_tree(TREE)?;
        finish_legacy_journal(&tree)?;
        let volatile = options.replica.is_some();
        let log = log::Log::open(db.clone(), tree, options.checkpoint, volatile)?;
        let store = Store {
            db,
            log,
            stripes: Arc::new(Stripes::new()),
            replica: options.replica.clone(),
            outbox_floor: Arc::new(AtomicU64::new(0)),
            retention: dedupe::Retention::new(options.dedupe_retention),
        };
        store.raise_outbox_floor()?;
        Ok(store)
    }

    /// Makes new outbox ids start above the entries the store holds. Ids restored from another
    /// node's changelog were that node's, so this node's own counter could otherwise meet them.
    fn raise_outbox_floor(&self) -> Result<(), Error> {
        let mut highest = 0;
        for item in self.log.scan_prefix(keyspace::OUTBOX_PREFIX) {
            highest = highest.max(keyspace::outbox_sequence(keyspace::outbox_id(&item?.0)));
        }
        self.outbox_floor.fetch_max(highest + 1, Ordering::SeqCst);
        Ok(())
    }

    /// The state stored under `key`, if any.
    pub fn load(&self, key: &str) -> Result<Option<Versioned>, Error> {
        let raw = self.log.get(&keyspace::state(key))?;
        Ok(raw.map(|raw| commit::split_version(&raw)))
    }

    /// The last state of `key` if it was archived ([`Store::archive`]).
    pub fn load_archived(&self, key: &str) -> Result<Option<Versioned>, Error> {
        let raw = self.log.get(&keyspace::archive(key))?;
        Ok(raw.map(|raw| commit::split_version(&raw)))
    }

    /// Moves `key`'s state at `version` out of the live keys into the archive, as `archived`
    /// (read back by [`Store::load_archived`]), and clears `marks`: one record, so a crash
    /// leaves the entity live or archived, never both or neither. Refused with
    /// [`Error::VersionConflict`] if the state moved on since `version`.
    pub fn archive(
        &self,
        key: &str,
        version: u64,
        archived: &[u8],
        marks: &[String],
    ) -> Result<(), Error> {
        let partition = self.partition_of(key);
        let state_key = keyspace::state(key);
        let _held = self.stripes.lock(std::iter::once(&state_key));
        let found = self
            .log
            .get(&state_key)?
            .map_or(0, |raw| commit::split_version(&raw).version);
        if found != version {
            return Err(Error::VersionConflict {
                key: key.to_owned(),
                expected: version,
                found,
            });
        }
        let mut value = version.to_be_bytes().to_vec();
        value.extend_from_slice(archived);
        let mut writes = vec![
            (state_key, None),
            (keyspace::archive(key), Some(IVec::from(value))),
        ];
        writes.extend(marks.iter().map(|mark| (keyspace::state(mark), None)));
        if let Some(replica) = &self.replica {
            replica
                .append(Lane::Partition(partition), record::encode(&writes))
                .map_err(Error::NotOwner)?;
        }
        self.log.append(partition, writes);
        Ok(())
    }

    /// Every state (or marker) whose key starts with `prefix`, in key order.
    pub fn scan_states(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, Versioned), Error>> {
        let skip = keyspace::state("").len();
        self.log
            .scan_prefix(&keyspace::state(prefix))
            .map(move |item| {
                let (k, v) = item?;
                let key = String::from_utf8_lossy(&k[skip..]).into_owned();
                Ok((key, commit::split_version(&v)))
            })
    }

    /// The record stored for a handled command id, if it was handled and is still
    /// remembered at `now` (ms since the Unix epoch by the node's clock).
    pub fn dedupe(&self, command_id: &str, now: u64) -> Result<Option<Vec<u8>>, Error> {
        for key in self.retention.candidates(command_id, now) {
            if let Some(record) = self.log.get(&key)? {
                return Ok(Some(record.to_vec()));
            }
        }
        Ok(None)
    }

    /// Forgets the ids of commands between actors that are no longer remembered at `now`,
    /// up to `limit` of them; answers how many. Not replicated: a node that restores them
    /// from a changelog forgets them again.
    pub fn expire_dedupe(&self, now: u64, limit: usize) -> Result<usize, Error> {
        let (from, to) = keyspace::expiring_dedupe_below(self.retention.oldest_kept(now));
        let mut writes = Vec::new();
        for item in self.log.range(&from, Some(&to)).take(limit) {
            writes.push((item?.0.to_vec(), None));
        }
        let n = writes.len();
        if n > 0 {
            self.log.append(CATALOG_PARTITION, writes);
        }
        Ok(n)
    }

    /// Appends one actor's decision to its partition's log (all or nothing, readable at once,
    /// durable after [`Store::flush`]); returns the ids given to its outbox entries.
    pub fn commit(&self, commit: &Commit) -> Result<Vec<u64>, Error> {
        let partition = self.partition_of(&commit.key);
        let replicate = self.replica.as_ref().map(|replica| {
            move |record: &[u8]| {
                replica
                    .append(Lane::Partition(partition), record.to_vec())
                    .map_err(Error::NotOwner)
            }
        });
        commit.apply(
            &self.log,
            partition,
            &self.stripes,
            &self.retention,
            |n| self.outbox_ids(partition, n),
            replicate,
        )
    }

    fn partition_of(&self, key: &str) -> u32 {
        self.replica.as_ref().map_or(0, |r| r.partition_of(key))
    }

    /// `n` fresh outbox ids of `partition`.
    fn outbox_ids(&self, partition: u32, n: usize) -> Result<Vec<u64>, Error> {
        let floor = self.outbox_floor.load(Ordering::SeqCst);
        (0..n)
            .map(|_| {
                Ok(keyspace::outbox_id_of(
                    partition,
                    floor + self.db.generate_id()?,
                ))
            })
            .collect()
    }

    /// Waits until everything committed before this call is durable: in the replica when
    /// there is one (the local fsync is then not needed: a node that stops uncleanly rebuilds
    /// its partitions from the replica), else on disk (in a shared round of the log).
    pub async fn flush(&self) -> Result<(), Error> {
        timings::flush_wait(async {
            match &self.replica {
                Some(replica) => replica.durable().await.map_err(Error::Replica),
                None => self.log.flush().await,
            }
        })
        .await
    }

    /// Waits until every commit of `key`'s lane made before this call is durable: in the
    /// replica, that lane alone (the others may still be on their way); without one, like
    /// [`Store::flush`] (the local log is one sequence).
    pub async fn flush_key(&self, key: &str) -> Result<(), Error> {
        let Some(replica) = &self.replica else {
            return self.flush().await;
        };
        let lane = Lane::Partition(replica.partition_of(key));
        timings::flush_wait(async { replica.durable_on(lane).await.map_err(Error::Replica) }).await
    }

    /// Whether the store has a replica, whose lanes become durable independently of each
    /// other (so a crash may keep a later commit and lose an earlier one of another lane).
    pub fn is_replicated(&self) -> bool {
        self.replica.is_some()
    }

    /// Waits until everything written so far is checkpointed on the local disk, with or
    /// without a replica (before a clean stop, so that a restart may keep the local copy and
    /// has no log to replay).
    pub async fn sync(&self) -> Result<(), Error> {
        self.log.checkpoint().await
    }

    /// Forgets every local key (the partitions are then rebuilt from the replica).
    pub fn clear(&self) -> Result<(), Error> {
        self.log.clear()
    }

    /// Applies a record the replica kept (the writes of one or more commits, in order), and
    /// raises the outbox floor above the entries it restores.
    pub fn apply_record(&self, record: &[u8]) -> Result<usize, Error> {
        let writes = record::decode(record)?;
        let highest = writes
            .iter()
            .filter(|(key, _)| key.starts_with(keyspace::OUTBOX_PREFIX))
            .map(|(key, _)| keyspace::outbox_sequence(keyspace::outbox_id(key)))
            .max();
        if let Some(highest) = highest {
            self.outbox_floor.fetch_max(highest + 1, Ordering::SeqCst);
        }
        let n = writes.len();
        // Restored records are of partitions this node does not serve yet, so no local commit
        // of the same keys shares their round: which log value carries them does not matter.
        self.log.append(CATALOG_PARTITION, writes);
        Ok(n)
    }

    /// What the log's rounds and checkpoints did so far.
    pub fn log_stats(&self) -> LogStats {
        self.log.stats()
    }

    /// Keys written since the last checkpoint (held in memory until it).
    pub fn uncheckpointed_keys(&self) -> usize {
        self.log.memtable_len()
    }

    /// Undelivered outbox entries of one partition, oldest first.
    pub fn outbox_of(&self, partition: u32) -> impl Iterator<Item = Result<(u64, Vec<u8>), Error>> {
        let (from, to) = (
            keyspace::outbox(keyspace::outbox_id_of(partition, 0)),
            keyspace::outbox(keyspace::outbox_id_of(partition + 1, 0)),
        );
        self.log
            .range(&from, Some(&to))
            .map(|item| item.map(outbox_entry))
    }

    /// Undelivered outbox entries, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), Error>> {
        self.log
            .scan_prefix(keyspace::OUTBOX_PREFIX)
            .map(|item| item.map(outbox_entry))
    }

    /// Forgets a delivered outbox entry.
    pub fn outbox_delivered(&self, id: u64) -> Result<(), Error> {
        let partition = keyspace::outbox_partition(id);
        let writes = vec![(keyspace::outbox(id), None)];
        if let Some(replica) = &self.replica {
            // Not waited for: if it is lost, a new owner delivers the entry once more, and
            // receivers drop the repeat by its command id.
            replica.append_unwaited(Lane::Partition(partition), record::encode(&writes));
        }
        self.log.append(partition, writes);
        Ok(())
    }

    /// The ledger entries of `entity` from sequence number `from` on, oldest first: those
    /// checkpoints filed into pages, merged with those not filed yet (and with single-entry
    /// keys a store from before pages holds).
    pub fn ledger(
        &self,
        entity: &str,
        from: u64,
    ) -> Box<dyn Iterator<Item = Result<Vec<u8>, Error>> + Send> {
        let end = keyspace::prefix_end(&keyspace::ledger_prefix(entity));
        let single = self
            .log
            .range(&keyspace::ledger(entity, from), end.as_deref());
        // The page holding `from` begins at or before it.
        let page_prefix = keyspace::ledger_page_prefix(entity);
        let first_page = match self
            .log
            .floor_checkpointed(&keyspace::ledger_page(entity, from), &page_prefix)
        {
            Ok(found) => found.map_or_else(|| keyspace::ledger_page(entity, from), |k| k.to_vec()),
            Err(e) => return Box::new(std::iter::once(Err(e))),
        };
        let pages_end = keyspace::prefix_end(&page_prefix);
        let pages = self.log.range(&first_page, pages_end.as_deref());
        Box::new(ledger_pages::Merged::new(
            ledger_pages::entries_of_keys(single),
            ledger_pages::entries_of_pages(pages, from),
        ))
    }

    /// The rows of `entity`'s collections whose names sort at or after `from` ("" for all),
    /// by row name.
    pub fn rows(
        &self,
        entity: &str,
        from: &str,
    ) -> impl Iterator<Item = Result<(String, Vec<u8>), Error>> {
        let prefix = keyspace::row_prefix(entity);
        let skip = prefix.len();
        let end = keyspace::prefix_end(&prefix);
        self.log
            .range(&keyspace::row(entity, from), end.as_deref())
            .map(move |item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k[skip..]).into_owned(), v.to_vec()))
            })
    }

    /// Stores a catalog entry unless one exists; returns the existing one when it does.
    pub fn catalog_insert(&self, key: &str, value: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let key = keyspace::catalog(key);
        let _held = self.stripes.lock(std::iter::once(&key));
        if let Some(existing) = self.log.get(&key)? {
            return Ok(Some(existing.to_vec()));
        }
        let writes = vec![(key, Some(IVec::from(value)))];
        if let Some(replica) = &self.replica {
            // The catalog lane is open on every node (first writer wins per entry).
            replica
                .append(Lane::Catalog, record::encode(&writes))
                .map_err(Error::Replica)?;
        }
        self.log.append(CATALOG_PARTITION, writes);
        Ok(None)
    }

    /// Every catalog entry whose key starts with `prefix`.
    pub fn catalog_scan(&self, prefix: &str) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
        self.log
            .scan_prefix(&keyspace::catalog(prefix))
            .map(|item| Ok(item?.1.to_vec()))
    }

    /// Timers due at or before `now` (milliseconds since the Unix epoch), earliest first: a
    /// range scan that stops at the first timer not yet due.
    pub fn due_timers(&self, now: u64) -> impl Iterator<Item = Result<Timer, Error>> {
        let end = keyspace::timer(now.saturating_add(1), "", "");
        self.log
            .range(keyspace::TIMER_PREFIX, Some(&end))
            .filter_map(|item| match item {
                Ok((key, _)) => keyspace::timer_parts(&key)
                    .map(|(due, entity, name)| Ok(Timer { due, entity, name })),
                Err(e) => Some(Err(e)),
            })
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        Ok(self.db.size_on_disk()?)
    }
}

/// A timer set by an entity's commit ([`TimerChange`]) and not cancelled yet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Timer {
    pub due: u64,
    /// The key of the entity that set it.
    pub entity: String,
    pub name: String,
}

fn outbox_entry((key, value): (IVec, IVec)) -> (u64, Vec<u8>) {
    (keyspace::outbox_id(&key), value.to_vec())
}

/// Finishes the commits the pre-log store's journal recorded and a crash interrupted, so a
/// data directory it wrote opens whole (its records are redone, then dropped).
fn finish_legacy_journal(tree: &sled::Tree) -> Result<(), Error> {
    for item in tree.scan_prefix(keyspace::LEGACY_JOURNAL_PREFIX) {
        let (key, raw) = item?;
        for (k, v) in record::decode(&raw)? {
            match v {
                Some(v) => tree.insert(k, v)?,
                None => tree.remove(k)?,
            };
        }
        tree.remove(key)?;
    }
    Ok(())
}

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;
