//! Everything lives in one sled tree under typed key prefixes: the partition log (`log/`) and
//! the state derived from it, which checkpoints write before they remove the log values they
//! cover.

const STATE: &[u8] = b"s:";
const DEDUPE: &[u8] = b"d:";
const OUTBOX: &[u8] = b"o:";
const LEDGER: &[u8] = b"l:";
const LEDGER_PAGE: &[u8] = b"p:";
const ROW: &[u8] = b"r:";
const CATALOG: &[u8] = b"c:";
const LOG: &[u8] = b"L:";
const TIMER: &[u8] = b"t:";
const ARCHIVE: &[u8] = b"a:";
const EXPIRING_DEDUPE: &[u8] = b"x:";
/// The pre-log store's per-commit journal (a data directory it left may still hold records).
const LEGACY_JOURNAL: &[u8] = b"j:";

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

/// An archived entity's last state (out of the `s:` keys that live entities are read from).
pub(crate) fn archive(key: &str) -> Vec<u8> {
    join(ARCHIVE, &[key.as_bytes()])
}

/// A handled command id kept for good (a client's document id; every id, before buckets).
pub(crate) fn dedupe(command_id: &str) -> Vec<u8> {
    join(DEDUPE, &[command_id.as_bytes()])
}

/// A handled command id in its retention bucket (see `dedupe.rs`): buckets first, so that
/// the old ones are dropped by one range.
pub(crate) fn expiring_dedupe(bucket: u64, command_id: &str) -> Vec<u8> {
    join(
        EXPIRING_DEDUPE,
        &[&bucket.to_be_bytes(), command_id.as_bytes()],
    )
}

/// Every expiring dedupe key of a bucket below `bucket`: from, to (exclusive).
pub(crate) fn expiring_dedupe_below(bucket: u64) -> (Vec<u8>, Vec<u8>) {
    (
        EXPIRING_DEDUPE.to_vec(),
        join(EXPIRING_DEDUPE, &[&bucket.to_be_bytes()]),
    )
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

/// Every single-entry ledger key.
pub(crate) const LEDGER_PREFIX: &[u8] = LEDGER;

/// The sequence number of a single-entry ledger key.
pub(crate) fn ledger_seq(key: &[u8]) -> Option<u64> {
    let seq = key.get(key.len().checked_sub(8)?..)?;
    Some(u64::from_be_bytes(seq.try_into().ok()?))
}

/// The ledger prefix of a single-entry ledger key's entity (`l:{entity}\0`).
pub(crate) fn ledger_entity_of_key(key: &[u8]) -> Option<&[u8]> {
    key.get(..key.len().checked_sub(8)?)
}

/// The pages of an entity's ledger (`\0` ends the entity key).
pub(crate) fn ledger_page_prefix(entity: &str) -> Vec<u8> {
    join(LEDGER_PAGE, &[entity.as_bytes(), b"\0"])
}

/// The page of the entity whose single-entry ledger keys start with `entity_prefix`
/// (`l:{entity}\0`) that begins at sequence number `first`.
pub(crate) fn ledger_page_at(entity_prefix: &[u8], first: u64) -> Vec<u8> {
    let entity = &entity_prefix[LEDGER.len().min(entity_prefix.len())..];
    join(LEDGER_PAGE, &[entity, &first.to_be_bytes()])
}

/// The key of an entity's ledger page that would begin at sequence number `first`.
pub(crate) fn ledger_page(entity: &str, first: u64) -> Vec<u8> {
    ledger_page_at(&ledger_prefix(entity), first)
}

/// The rows of an entity.
pub(crate) fn row_prefix(entity: &str) -> Vec<u8> {
    join(ROW, &[entity.as_bytes(), b"\0"])
}

/// One row of an entity.
pub(crate) fn row(entity: &str, name: &str) -> Vec<u8> {
    join(ROW, &[entity.as_bytes(), b"\0", name.as_bytes()])
}

/// Every timer, earliest due first.
pub(crate) const TIMER_PREFIX: &[u8] = TIMER;

/// A timer of `entity`: due time first (big-endian), so a scan up to "now" finds exactly the
/// due ones; `\0` ends the entity key.
pub(crate) fn timer(due: u64, entity: &str, name: &str) -> Vec<u8> {
    join(
        TIMER,
        &[
            &due.to_be_bytes(),
            entity.as_bytes(),
            b"\0",
            name.as_bytes(),
        ],
    )
}

/// The due time, entity and name of a timer key.
pub(crate) fn timer_parts(key: &[u8]) -> Option<(u64, String, String)> {
    let rest = key.strip_prefix(TIMER)?;
    let (due, rest) = rest.split_at_checked(8)?;
    let due = u64::from_be_bytes(due.try_into().ok()?);
    let end = rest.iter().position(|b| *b == 0)?;
    let entity = String::from_utf8(rest[..end].to_vec()).ok()?;
    let name = String::from_utf8(rest[end + 1..].to_vec()).ok()?;
    Some((due, entity, name))
}

/// A catalog entry (`kind/id`).
pub(crate) fn catalog(key: &str) -> Vec<u8> {
    join(CATALOG, &[key.as_bytes()])
}

/// Journal records the pre-log store may have left (see `Store::open`).
pub(crate) const LEGACY_JOURNAL_PREFIX: &[u8] = LEGACY_JOURNAL;

/// Every partition log value, in round order.
pub(crate) const LOG_PREFIX: &[u8] = LOG;

/// The log value of one partition's records in one round: rounds first, so that a scan of the
/// log is in commit order.
pub(crate) fn log(round: u64, partition: u32) -> Vec<u8> {
    join(LOG, &[&round.to_be_bytes(), &partition.to_be_bytes()])
}

/// The round of a log key.
pub(crate) fn log_round(key: &[u8]) -> u64 {
    let mut be = [0u8; 8];
    if let Some(round) = key.get(LOG.len()..LOG.len() + 8) {
        be.copy_from_slice(round);
    }
    u64::from_be_bytes(be)
}

/// The first key after every key that starts with `prefix` (`None`: no such key).
pub(crate) fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The kinds of keys that belong to one partition's entity (or, for outbox entries, name
/// their partition): what [`partition_of_key`] can place.
pub(crate) const PARTITIONED_PREFIXES: [&[u8]; 7] =
    [STATE, ARCHIVE, LEDGER, LEDGER_PAGE, ROW, TIMER, OUTBOX];

/// The partition a key of [`PARTITIONED_PREFIXES`] belongs to, given the partition of an
/// entity's (or marker's) key; `None` for any other key.
pub(crate) fn partition_of_key(key: &[u8], entity: impl Fn(&str) -> u32) -> Option<u32> {
    let (prefix, rest) = key.split_at_checked(STATE.len())?;
    let entity_of = |bytes: &[u8]| std::str::from_utf8(bytes).ok().map(&entity);
    match prefix {
        STATE | ARCHIVE => entity_of(rest),
        LEDGER | LEDGER_PAGE | ROW => entity_of(before_nul(rest)?),
        TIMER => entity_of(before_nul(rest.get(8..)?)?),
        OUTBOX => Some(outbox_partition(outbox_id(key))),
        _ => None,
    }
}

/// The bytes before the first `\0` (which ends an entity key inside a longer key).
fn before_nul(bytes: &[u8]) -> Option<&[u8]> {
    bytes.iter().position(|b| *b == 0).map(|end| &bytes[..end])
}
