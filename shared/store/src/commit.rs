use crate::{keyspace, Error, Versioned};
use sled::transaction::{ConflictableTransactionError, TransactionError};

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
}

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
    pub(crate) fn apply(&self, db: &sled::Db, tree: &sled::Tree) -> Result<Vec<u64>, Error> {
        // Ids are drawn outside the transaction: its closure may run more than once.
        let ids = (0..self.outbox.len())
            .map(|_| db.generate_id())
            .collect::<Result<Vec<u64>, _>>()?;
        let mut state = Vec::with_capacity(8 + self.state.len());
        state.extend_from_slice(&self.version.to_be_bytes());
        state.extend_from_slice(&self.state);
        let state_key = keyspace::state(&self.key);
        let result = tree.transaction(|tx| {
            let found = tx
                .get(&state_key)?
                .map_or(0, |raw| split_version(&raw).version);
            if found != self.expected_version {
                return Err(ConflictableTransactionError::Abort(
                    Error::VersionConflict {
                        key: self.key.clone(),
                        expected: self.expected_version,
                        found,
                    },
                ));
            }
            for (command, _) in &self.handled {
                if tx.get(keyspace::dedupe(command))?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Error::AlreadyHandled(
                        command.clone(),
                    )));
                }
            }
            tx.insert(state_key.as_slice(), state.as_slice())?;
            for (command, record) in &self.handled {
                tx.insert(keyspace::dedupe(command), record.as_slice())?;
            }
            for (id, entry) in ids.iter().zip(&self.outbox) {
                tx.insert(keyspace::outbox(*id), entry.as_slice())?;
            }
            for (mark, set) in &self.marks {
                if *set {
                    tx.insert(keyspace::state(mark), &0u64.to_be_bytes())?;
                } else {
                    tx.remove(keyspace::state(mark))?;
                }
            }
            for (name, value) in &self.rows {
                match value {
                    Some(v) => tx.insert(keyspace::row(&self.key, name), v.as_slice())?,
                    None => tx.remove(keyspace::row(&self.key, name))?,
                };
            }
            for (seq, entry) in &self.ledger {
                tx.insert(keyspace::ledger(&self.key, *seq), entry.as_slice())?;
            }
            Ok(())
        });
        match result {
            Ok(()) => Ok(ids),
            Err(TransactionError::Abort(e)) => Err(e),
            Err(TransactionError::Storage(e)) => Err(Error::Sled(e)),
        }
    }
}
