//! Durable actor state on sled.
//!
//! An actor persists a decision with one [`Store::commit`]: its new state (checked against the
//! version it was decided on, so a stale writer is refused), the ids of the commands it handled
//! (dedupe), the messages it owes other actors (outbox) and its ledger entries — all or nothing,
//! through a journal record (`journal.rs`) rather than a sled transaction. [`Store::flush`]
//! then makes it durable; concurrent callers share one fsync (group commit) because sled 0.34 deadlocks under concurrent `flush_async` and one fsync per
//! command would cap a node near 6k commands/s.
//!
//! With a [`Replica`] (a cluster on NATS) every commit is also copied outside the node, and
//! [`Store::flush`] waits for that copy instead of the fsync: the replica is then the durable
//! state and sled a cache that a node rebuilds from it (`replica.rs`).
//!
//! The store speaks bytes and keys; what the bytes mean is the runtime's business.

mod commit;
mod error;
mod group_commit;
mod journal;
mod keyspace;
mod replica;

pub use commit::Commit;
pub use error::Error;
pub use group_commit::FlushStats;
pub use replica::{Durable, Lane, Replica};

use commit::Stripes;
use group_commit::GroupCommit;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Options for opening a store.
#[derive(Debug, Clone)]
pub struct Options {
    /// sled's page cache budget in bytes; it bounds the store's share of resident memory.
    pub cache_capacity: u64,
    /// The durable copy outside the node, if any (see [`Replica`]).
    pub replica: Option<Arc<dyn Replica>>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cache_capacity: 64 * 1024 * 1024,
            replica: None,
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
    replica: Option<Arc<dyn Replica>>,
    /// Outbox ids start above every id already in the store (see [`keyspace::outbox`]).
    outbox_floor: Arc<AtomicU64>,
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
        let store = Store {
            db,
            tree,
            flusher,
            stripes: Arc::new(Stripes::new()),
            replica: options.replica.clone(),
            outbox_floor: Arc::new(AtomicU64::new(0)),
        };
        store.raise_outbox_floor()?;
        Ok(store)
    }

    /// Makes new outbox ids start above the entries the store holds. Ids restored from another
    /// node's changelog were that node's, so this node's own counter could otherwise meet them.
    fn raise_outbox_floor(&self) -> Result<(), Error> {
        let mut highest = 0;
        for item in self.tree.scan_prefix(keyspace::OUTBOX_PREFIX).keys() {
            highest = highest.max(keyspace::outbox_sequence(keyspace::outbox_id(&item?)));
        }
        self.outbox_floor.fetch_max(highest + 1, Ordering::SeqCst);
        Ok(())
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
        let partition = self
            .replica
            .as_ref()
            .map_or(0, |r| r.partition_of(&commit.key));
        commit.apply(
            &self.db,
            &self.tree,
            &self.stripes,
            |n| self.outbox_ids(partition, n),
            |record| match &self.replica {
                Some(replica) => replica
                    .append(Lane::Partition(partition), record.to_vec())
                    .map_err(Error::NotOwner),
                None => Ok(()),
            },
        )
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
    /// its partitions from the replica), else on disk (a shared fsync).
    pub async fn flush(&self) -> Result<(), Error> {
        match &self.replica {
            Some(replica) => replica.durable().await.map_err(Error::Replica),
            None => self.flusher.flush().await,
        }
    }

    /// Waits until everything written so far is on the local disk, with or without a replica
    /// (before a clean stop, so that a restart may keep the local copy).
    pub async fn sync(&self) -> Result<(), Error> {
        self.flusher.flush().await
    }

    /// Forgets every local key (the partitions are then rebuilt from the replica).
    pub fn clear(&self) -> Result<(), Error> {
        self.tree.clear()?;
        Ok(())
    }

    /// Applies a record the replica kept (the writes of one or more commits, in order), and
    /// raises the outbox floor above the entries it restores.
    pub fn apply_record(&self, record: &[u8]) -> Result<usize, Error> {
        let writes = journal::decode(record)?;
        journal::apply(&self.tree, &writes)?;
        let highest = writes
            .iter()
            .filter(|(key, _)| key.starts_with(keyspace::OUTBOX_PREFIX))
            .map(|(key, _)| keyspace::outbox_sequence(keyspace::outbox_id(key)))
            .max();
        if let Some(highest) = highest {
            self.outbox_floor.fetch_max(highest + 1, Ordering::SeqCst);
        }
        Ok(writes.len())
    }

    /// How many flushes ran and how many waiters they served.
    pub fn flush_stats(&self) -> FlushStats {
        self.flusher.stats()
    }

    /// Undelivered outbox entries of one partition, oldest first.
    pub fn outbox_of(&self, partition: u32) -> impl Iterator<Item = Result<(u64, Vec<u8>), Error>> {
        let (from, to) = (
            keyspace::outbox(keyspace::outbox_id_of(partition, 0)),
            keyspace::outbox(keyspace::outbox_id_of(partition + 1, 0)),
        );
        self.tree.range(from..to).map(|item| {
            let (k, v) = item?;
            Ok((keyspace::outbox_id(&k), v.to_vec()))
        })
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
        let key = keyspace::outbox(id);
        self.tree.remove(key.as_slice())?;
        if let Some(replica) = &self.replica {
            // Not waited for: if it is lost, a new owner delivers the entry once more, and
            // receivers drop the repeat by its command id.
            let lane = Lane::Partition(keyspace::outbox_partition(id));
            replica.append_unwaited(lane, journal::encode(&[(key, None)]));
        }
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
        let key = keyspace::catalog(key);
        let previous = self
            .tree
            .compare_and_swap(key.as_slice(), None::<&[u8]>, Some(value))?;
        match previous {
            Ok(()) => {
                if let Some(replica) = &self.replica {
                    // The catalog lane is open on every node (first writer wins per entry).
                    let record = journal::encode(&[(key, Some(value.to_vec()))]);
                    replica
                        .append(Lane::Catalog, record)
                        .map_err(Error::Replica)?;
                }
                Ok(None)
            }
            Err(e) => Ok(e.current.map(|v| v.to_vec())),
        }
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
