use crate::{Error, Trees, Versioned};
use sled::transaction::{ConflictableTransactionError, TransactionError, Transactional};

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

pub(crate) fn decode_id(key: &[u8]) -> u64 {
    let mut be = [0u8; 8];
    let n = key.len().min(8);
    be[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(be)
}

/// Keys under an entity in the ledger and rows trees: `{entity}\0…`.
pub(crate) fn ledger_prefix(entity: &str) -> Vec<u8> {
    let mut key = entity.as_bytes().to_vec();
    key.push(0);
    key
}

impl Commit {
    pub(crate) fn apply(&self, db: &sled::Db, trees: &Trees) -> Result<Vec<u64>, Error> {
        // Ids are drawn outside the transaction: its closure may run more than once.
        let ids = (0..self.outbox.len())
            .map(|_| db.generate_id())
            .collect::<Result<Vec<u64>, _>>()?;
        let mut state = Vec::with_capacity(8 + self.state.len());
        state.extend_from_slice(&self.version.to_be_bytes());
        state.extend_from_slice(&self.state);
        let trees = (
            &trees.states,
            &trees.dedupe,
            &trees.outbox,
            &trees.ledger,
            &trees.rows,
        );
        let result = trees.transaction(|(states, dedupe, outbox, ledger, rows)| {
            let found = states
                .get(&self.key)?
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
                if dedupe.get(command)?.is_some() {
                    return Err(ConflictableTransactionError::Abort(Error::AlreadyHandled(
                        command.clone(),
                    )));
                }
            }
            states.insert(self.key.as_bytes(), state.as_slice())?;
            for (command, record) in &self.handled {
                dedupe.insert(command.as_bytes(), record.as_slice())?;
            }
            for (id, entry) in ids.iter().zip(&self.outbox) {
                outbox.insert(&id.to_be_bytes(), entry.as_slice())?;
            }
            for (mark, set) in &self.marks {
                if *set {
                    states.insert(mark.as_bytes(), &0u64.to_be_bytes())?;
                } else {
                    states.remove(mark.as_bytes())?;
                }
            }
            for (name, value) in &self.rows {
                let mut key = ledger_prefix(&self.key);
                key.extend_from_slice(name.as_bytes());
                match value {
                    Some(v) => rows.insert(key, v.as_slice())?,
                    None => rows.remove(key)?,
                };
            }
            for (seq, entry) in &self.ledger {
                let mut key = ledger_prefix(&self.key);
                key.extend_from_slice(&seq.to_be_bytes());
                ledger.insert(key, entry.as_slice())?;
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
