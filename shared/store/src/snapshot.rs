//! A partition's snapshot: the state its records leave, folded key by key, so that the
//! records below it need not be kept (a changelog is then purged below its snapshot, and a
//! restore is the snapshot plus what came after).
//!
//! A snapshot is itself a record (`record.rs`) that only sets keys: applied to a store that
//! holds nothing of the partition, it leaves exactly what replaying every record it folded
//! would. Ids of commands between actors whose retention is over are left out of it, as
//! [`crate::Store::expire_dedupe`] drops them from a store.

use crate::dedupe::Retention;
use crate::record::{self, Write};
use crate::{keyspace, Error, Store};
use sled::IVec;
use std::collections::BTreeMap;

/// Records folded into the state they leave (see the module documentation).
#[derive(Debug)]
pub struct Fold {
    keys: BTreeMap<Vec<u8>, IVec>,
    retention: Retention,
}

impl Fold {
    /// Applies a record (or a snapshot) on top of what is folded so far; answers its writes.
    ///
    /// # Errors
    /// [`Error::Corrupt`] when the bytes are not a record.
    pub fn apply(&mut self, record: &[u8]) -> Result<usize, Error> {
        let writes = record::decode(record)?;
        let n = writes.len();
        for (key, value) in writes {
            match value {
                Some(value) => self.keys.insert(key, value),
                None => self.keys.remove(&key),
            };
        }
        Ok(n)
    }

    /// Keys the fold holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds no key.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The snapshot: every key it holds, as one record, without the ids of commands between
    /// actors that are no longer remembered at `now` (ms since the Unix epoch).
    pub fn encode(&self, now: u64) -> Vec<u8> {
        let (expired_from, expired_to) =
            keyspace::expiring_dedupe_below(self.retention.oldest_kept(now));
        let writes: Vec<Write> = self
            .keys
            .iter()
            .filter(|(key, _)| !(**key >= expired_from && **key < expired_to))
            .map(|(key, value)| (key.clone(), Some(value.clone())))
            .collect();
        record::encode(&writes)
    }
}

impl Store {
    /// An empty fold with this store's retention of command ids.
    pub fn fold(&self) -> Fold {
        Fold {
            keys: BTreeMap::new(),
            retention: self.retention,
        }
    }

    /// Forgets every local key of `partition` (states, markers, archives, ledgers, rows,
    /// timers, outbox entries), before a snapshot of it is applied over a local copy that may
    /// be older than the snapshot: keys the partition deleted since cannot be told apart
    /// otherwise. Ids of handled commands stay (they are never deleted by a record, so what a
    /// local copy holds of them is true of the partition). Not replicated. Answers how many
    /// keys went. Needs a replica (which places keys in partitions); without one it forgets
    /// nothing.
    pub fn forget_partition(&self, partition: u32) -> Result<usize, Error> {
        let Some(replica) = &self.replica else {
            return Ok(0);
        };
        let mut forgotten = 0;
        for prefix in keyspace::PARTITIONED_PREFIXES {
            let mut writes: Vec<Write> = Vec::new();
            for item in self.log.scan_prefix(prefix) {
                let (key, _) = item?;
                let of = keyspace::partition_of_key(&key, |entity| replica.partition_of(entity));
                if of == Some(partition) {
                    writes.push((key.to_vec(), None));
                }
            }
            forgotten += writes.len();
            if !writes.is_empty() {
                self.log.append(crate::CATALOG_PARTITION, writes);
            }
        }
        Ok(forgotten)
    }
}
