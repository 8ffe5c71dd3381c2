//! Durable actor state on sled.
//!
//! An actor persists a decision with one [`Store::commit`]: its new state (checked against the
//! version it was decided on, so a stale writer is refused), the ids of the commands it handled
//! (dedupe), the messages it owes other actors (outbox) and its ledger entries — all or nothing,
//! through a journal record (`journal.rs`) rather than a sled transaction. [`Store::flush`]
//! then makes it durable; concurrent callers share one fsync (group commit) because sled 0.34 deadlocks under concurrent `flush_async` and one fsync per
//! command would cap a node near 6k commands/s.
//!
//! The store speaks bytes and keys; what the bytes mean is the runtime's business.

mod commit;
mod error;
mod group_commit;
mod journal;
mod keyspace;

pub use commit::Commit;
pub use error::Error;
pub use group_commit::FlushStats;

use commit::Stripes;
use group_commit::GroupCommit;
use std::path::Path;
use std::sync::Arc;

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// sled's page cache budget in bytes; it bounds the store's share of resident memory.
    pub cache_capacity: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_capacity: 64 * 1024 * 1024,
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

/// A cheap, cloneable handle to the node's sled database.
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    tree: sled::Tree,
    flusher: GroupCommit,
    stripes: Arc<Stripes>,
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, options: &Options) -> Result<Store, Error> {
        // sled's default mode (LowSpace): HighThroughput measured no faster end to end here and
        // used no less disk (about 11 KB per order in a promo run either way).
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(options.cache_capacity)
            .open()?;
        let tree = db.open_tree("keel")?;
        let redone = journal::replay(&tree)?;
        if redone > 0 {
            db.flush()?;
            tracing::info!(redone, "finished the commits a crash interrupted");
        }
        let flusher = GroupCommit::start(db.clone());
        Ok(Store {
            db,
            tree,
            flusher,
            stripes: Arc::new(Stripes::new()),
        })
    }

    /// The state stored under `key`, if any.
    pub fn load(&self, key: &str) -> Result<Option<Versioned>, Error> {
        let raw = self.tree.get(keyspace::state(key))?;
        Ok(raw.map(|raw| commit::split_version(&raw)))
    }

    /// Every state (or marker) whose key starts with `prefix`, in key order.
    pub fn scan_states(
        &self,
        prefix: &str,
    ) -> impl Iterator<Item = Result<(String, Versioned), Error>> {
        let skip = keyspace::state("").len();
        self.tree
            .scan_prefix(keyspace::state(prefix))
            .map(move |item| {
                let (k, v) = item?;
                let key = String::from_utf8_lossy(&k[skip..]).into_owned();
                Ok((key, commit::split_version(&v)))
            })
    }

    /// The record stored for a handled command id, if it was handled.
    pub fn dedupe(&self, command_id: &str) -> Result<Option<Vec<u8>>, Error> {
        Ok(self
            .tree
            .get(keyspace::dedupe(command_id))?
            .map(|v| v.to_vec()))
    }

    /// Applies one actor's decision atomically; returns the ids given to its outbox entries.
    pub fn commit(&self, commit: &Commit) -> Result<Vec<u64>, Error> {
        commit.apply(&self.db, &self.tree, &self.stripes)
    }

    /// Waits until everything written before this call is on disk (shared fsync).
    pub async fn flush(&self) -> Result<(), Error> {
        self.flusher.flush().await
    }

    /// How many flushes ran and how many waiters they served.
    pub fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    /// Undelivered outbox entries, oldest first.
    pub fn outbox(&self) -> impl Iterator<Item = Result<(u64, Vec<u8>), Error>> {
        self.tree.scan_prefix(keyspace::OUTBOX_PREFIX).map(|item| {
            let (k, v) = item?;
            Ok((keyspace::outbox_id(&k), v.to_vec()))
        })
    }

    /// Forgets a delivered outbox entry.
    pub fn outbox_delivered(&self, id: u64) -> Result<(), Error> {
        self.tree.remove(keyspace::outbox(id))?;
        Ok(())
    }

    /// The ledger entries of `entity` from sequence number `from` on, oldest first.
    pub fn ledger(&self, entity: &str, from: u64) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
        let prefix = keyspace::ledger_prefix(entity);
        self.tree
            .range(keyspace::ledger(entity, from)..)
            .take_while(move |item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(|item| Ok(item?.1.to_vec()))
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
        self.tree
            .range(keyspace::row(entity, from)..)
            .take_while(move |item| item.as_ref().map_or(true, |(k, _)| k.starts_with(&prefix)))
            .map(move |item| {
                let (k, v) = item?;
                Ok((String::from_utf8_lossy(&k[skip..]).into_owned(), v.to_vec()))
            })
    }

    /// Stores a catalog entry unless one exists; returns the existing one when it does.
    pub fn catalog_insert(&self, key: &str, value: &[u8]) -> Result<Option<Vec<u8>>, Error> {
        let previous =
            self.tree
                .compare_and_swap(keyspace::catalog(key), None::<&[u8]>, Some(value))?;
        Ok(previous.err().and_then(|e| e.current.map(|v| v.to_vec())))
    }

    /// Every catalog entry whose key starts with `prefix`.
    pub fn catalog_scan(&self, prefix: &str) -> impl Iterator<Item = Result<Vec<u8>, Error>> {
        self.tree
            .scan_prefix(keyspace::catalog(prefix))
            .map(|item| Ok(item?.1.to_vec()))
    }

    /// Bytes the database occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, Error> {
        Ok(self.db.size_on_disk()?)
    }
}

#[cfg(test)]
mod tests;
