//! Everything lives in one sled tree under typed key prefixes, so a decision's writes and its
//! journal record (`journal.rs`) are in one log and recovered together.

const STATE: &[u8] = b"s:";
const DEDUPE: &[u8] = b"d:";
const OUTBOX: &[u8] = b"o:";
const LEDGER: &[u8] = b"l:";
const ROW: &[u8] = b"r:";
const CATALOG: &[u8] = b"c:";
const JOURNAL: &[u8] = b"j:";

fn join(prefix: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut key = prefix.to_vec();
    for part in parts {
        key.extend_from_slice(part);
    }
    key
}

/// An entity's state (or a marker) key.
pub(crate) fn state(key: &str) -> Vec<u8> {
    join(STATE, &[key.as_bytes()])
}

/// A handled command id.
pub(crate) fn dedupe(command_id: &str) -> Vec<u8> {
    join(DEDUPE, &[command_id.as_bytes()])
}

/// All outbox entries (ids are big-endian, so they scan oldest first).
pub(crate) const OUTBOX_PREFIX: &[u8] = OUTBOX;

/// Bits of an outbox id below its partition.
const OUTBOX_PARTITION_SHIFT: u32 = 48;

/// An outbox id: the partition of the entity that owes the message in the high 16 bits, so
/// that ids from different nodes' changelogs never meet, and a sequence below.
pub(crate) fn outbox_id_of(partition: u32, sequence: u64) -> u64 {
    (u64::from(partition) << OUTBOX_PARTITION_SHIFT)
        | (sequence & ((1 << OUTBOX_PARTITION_SHIFT) - 1))
}

/// The partition an outbox id belongs to.
pub(crate) fn outbox_partition(id: u64) -> u32 {
    u32::try_from(id >> OUTBOX_PARTITION_SHIFT).unwrap_or(u32::MAX)
}

/// The sequence part of an outbox id.
pub(crate) fn outbox_sequence(id: u64) -> u64 {
    id & ((1 << OUTBOX_PARTITION_SHIFT) - 1)
}

/// An outbox entry.
pub(crate) fn outbox(id: u64) -> Vec<u8> {
    join(OUTBOX, &[&id.to_be_bytes()])
}

/// The id of an outbox key.
pub(crate) fn outbox_id(key: &[u8]) -> u64 {
    let mut be = [0u8; 8];
    let tail = &key[OUTBOX.len().min(key.len())..];
    let n = tail.len().min(8);
    be[..n].copy_from_slice(&tail[..n]);
    u64::from_be_bytes(be)
}

/// The ledger of an entity (`\0` ends the entity key, so prefixes of ids do not collide).
pub(crate) fn ledger_prefix(entity: &str) -> Vec<u8> {
    join(LEDGER, &[entity.as_bytes(), b"\0"])
}

/// One ledger entry.
pub(crate) fn ledger(entity: &str, seq: u64) -> Vec<u8> {
    join(LEDGER, &[entity.as_bytes(), b"\0", &seq.to_be_bytes()])
}

/// The rows of an entity.
pub(crate) fn row_prefix(entity: &str) -> Vec<u8> {
    join(ROW, &[entity.as_bytes(), b"\0"])
}

/// One row of an entity.
pub(crate) fn row(entity: &str, name: &str) -> Vec<u8> {
    join(ROW, &[entity.as_bytes(), b"\0", name.as_bytes()])
}

/// A catalog entry (`kind/id`).
pub(crate) fn catalog(key: &str) -> Vec<u8> {
    join(CATALOG, &[key.as_bytes()])
}

/// All journal records (see `journal.rs`).
pub(crate) const JOURNAL_PREFIX: &[u8] = JOURNAL;

/// The journal record of one commit in progress.
pub(crate) fn journal(id: u64) -> Vec<u8> {
    join(JOURNAL, &[&id.to_be_bytes()])
}
