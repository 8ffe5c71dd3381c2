use crate::dedupe::Retention;
use crate::log::Log;
use crate::record::{self, Write};
use crate::{keyspace, Error, Versioned};
use sled::IVec;

/// One actor's decision, written atomically by [`crate::Store::commit`].
#[derive(Debug, Default)]
pub struct Commit {
    /// The entity's key in the state tree.
    pub key: String,
    /// The version the decision was made on (0: the entity did not exist).
    pub expected_version: u64,
    /// The version written; must be greater than `expected_version`.
    pub version: u64,
    pub state: Vec<u8>,
    /// Command ids handled by this decision, with the record to answer a redelivery with.
    pub handled: Vec<(String, Vec<u8>)>,
    /// Messages owed to other actors or subscribers.
    pub outbox: Vec<Vec<u8>>,
    /// Ledger entries: (sequence number, entry) under this entity.
    pub ledger: Vec<(u64, Vec<u8>)>,
    /// Marker keys to set (`true`) or clear in the state tree, e.g. "order being allocated".
    pub marks: Vec<(String, bool)>,
    /// Rows of the entity's large collections (kept out of `state` so a write costs O(1)):
    /// (row name, new value, or `None` to delete).
    pub rows: Vec<(String, Option<Vec<u8>>)>,
    /// Timers of this entity to set or cancel.
    pub timers: Vec<TimerChange>,
    /// When the decision was taken (ms since the Unix epoch by the node's clock): the
    /// retention of its command ids counts from then.
    pub at: u64,
}

/// Setting (or cancelling) an entity's timer: it is due at `due`, milliseconds since the Unix
/// epoch by the node's clock, and is known by its `name` within the entity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimerChange {
    pub due: u64,
    pub name: String,
    /// `false`: cancel the timer set with this due time and name.
    pub set: bool,
}

/// A stored state: its version, big-endian, then its bytes.
pub(crate) fn split_version(raw: &[u8]) -> Versioned {
    let (v, bytes) = raw.split_at(8.min(raw.len()));
    let mut be = [0u8; 8];
    be[..v.len()].copy_from_slice(v);
    Versioned {
        version: u64::from_be_bytes(be),
        bytes: bytes.to_vec(),
    }
}

impl Commit {
    /// Appends the commit's writes to the log as one record once its version and command ids
    /// check out, holding the stripes of its entity and command ids so that no other commit
    /// can check or write them in between. `outbox_ids` gives the ids of its outbox entries;
    /// `replicate`, if any, gets the encoded record while the stripes are still held and before
    /// anything is written (the replica copies it, in the entity's commit order, or refuses it, and
    /// then nothing is written).
    pub(crate) fn apply(
        &self,
        log: &Log,
        partition: u32,
        stripes: &Stripes,
        retention: &Retention,
        outbox_ids: impl FnOnce(usize) -> Result<Vec<u64>, Error>,
        replicate: Option<impl FnOnce(&[u8]) -> Result<(), Error>>,
    ) -> Result<Vec<u64>, Error> {
        let state_key = keyspace::state(&self.key);
        let dedupe_keys: Vec<Vec<u8>> = self
            .handled
            .iter()
            .map(|(command, _)| retention.key(command, self.at))
            .collect();
        // Striped by the id itself, whichever bucket it lands in.
        let ids: Vec<Vec<u8>> = self
            .handled
            .iter()
            .map(|(command, _)| keyspace::dedupe(command))
            .collect();
        let _held = stripes.lock(std::iter::once(&state_key).chain(&ids));
        let found = log
            .get(&state_key)?
            .map_or(0, |raw| split_version(&raw).version);
        if found != self.expected_version {
            return Err(Error::VersionConflict {
                key: self.key.clone(),
                expected: self.expected_version,
                found,
            });
        }
        for (command, _) in &self.handled {
            for key in retention.candidates(command, self.at) {
                if log.get(&key)?.is_some() {
                    return Err(Error::AlreadyHandled(command.clone()));
                }
            }
        }
        let ids = outbox_ids(self.outbox.len())?;
        let writes = self.writes(state_key, dedupe_keys, &ids);
        if let Some(replicate) = replicate {
            replicate(&record::encode(&writes))?;
        }
        log.append(partition, writes);
        Ok(ids)
    }

    /// Every key this commit sets or deletes, with the values.
    pub(crate) fn writes(
        &self,
        state_key: Vec<u8>,
        dedupe_keys: Vec<Vec<u8>>,
        outbox_ids: &[u64],
    ) -> Vec<Write> {
        let mut state = Vec::with_capacity(8 + self.state.len());
        state.extend_from_slice(&self.version.to_be_bytes());
        state.extend_from_slice(&self.state);
        let value = |bytes: &[u8]| Some(IVec::from(bytes));
        let mut writes = vec![(state_key, Some(IVec::from(state)))];
        for (key, (_, record)) in dedupe_keys.into_iter().zip(&self.handled) {
            writes.push((key, value(record)));
        }
        for (id, entry) in outbox_ids.iter().zip(&self.outbox) {
            writes.push((keyspace::outbox(*id), value(entry)));
        }
        for (mark, set) in &self.marks {
            let mark_value = set.then(|| IVec::from(&0u64.to_be_bytes()[..]));
            writes.push((keyspace::state(mark), mark_value));
        }
        for (name, row) in &self.rows {
            writes.push((
                keyspace::row(&self.key, name),
                row.as_deref().and_then(value),
            ));
        }
        for (seq, entry) in &self.ledger {
            writes.push((keyspace::ledger(&self.key, *seq), value(entry)));
        }
        for timer in &self.timers {
            let key = keyspace::timer(timer.due, &self.key, &timer.name);
            writes.push((key, timer.set.then(|| IVec::from(&[][..]))));
        }
        writes
    }
}

/// Locks that serialise commits touching the same keys (an entity's state, a command id).
pub(crate) struct Stripes(Vec<parking_lot::Mutex<()>>);

const STRIPES: usize = 1024;

impl Stripes {
    pub(crate) fn new() -> Self {
        Stripes((0..STRIPES).map(|_| parking_lot::Mutex::new(())).collect())
    }

    /// Holds the stripes of `keys`, taken in index order so two commits never deadlock.
    pub(crate) fn lock<'a>(
        &self,
        keys: impl Iterator<Item = &'a Vec<u8>>,
    ) -> Vec<parking_lot::MutexGuard<'_, ()>> {
        let mut indices: Vec<usize> = keys.map(|k| stripe_of(k)).collect();
        indices.sort_unstable();
        indices.dedup();
        indices.into_iter().map(|i| self.0[i].lock()).collect()
    }
}

fn stripe_of(key: &[u8]) -> usize {
    // FNV-1a: stable and cheap; the stripe only has to be the same for the same key.
    let hash = key.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    });
    (hash % STRIPES as u64) as usize
}
