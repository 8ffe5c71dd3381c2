//! The checkpoint thread: writes what the log's rounds did to the keys' own places.
//!
//! Every interval (sooner once enough log bytes wait, or when somebody waits for it) it takes
//! the rounds written since the last checkpoint, folds them into each key's newest value (one
//! write per key, however many versions it went through), writes them to sled, then removes
//! those rounds' log values, oldest first. Rounds keep being written meanwhile. A crash before
//! the removals leaves the rounds to replay when the store opens, a crash after them leaves
//! nothing to replay, and one in between leaves the newest rounds; replaying them over values
//! at least as new is harmless, since a record holds values, not operations.

use super::{answer, CrashPoint, Shared, Written, CHECKPOINTS, CHECKPOINT_WRITES};
use crate::record::{self, Write};
use crate::{keyspace, ledger_pages, Error};
use sled::IVec;
use std::collections::BTreeMap;
use std::time::Instant;

/// Runs until the log closes (without a last checkpoint: the next open replays the log).
pub(super) fn run(shared: &Shared) {
    while let Some(taken) = next_checkpoint(shared) {
        let result = checkpoint(shared, &taken.written);
        if let Err(e) = &result {
            tracing::error!(error = %e, "checkpoint failed; the log keeps its rounds");
        }
        let waiters = taken.written.waiters;
        match result {
            // Its writes are durable with the next round's fsync (sled's log is sequential).
            Ok(()) if !waiters.is_empty() => {
                shared.pending.lock().flush.extend(waiters);
                shared.wake.notify_one();
            }
            result => answer(waiters, &result),
        }
    }
}

/// Waits until a checkpoint is due, then takes the rounds it covers; holds the checkpoint lock
/// while it works (so `clear` cannot interleave). `None`: the log closed.
fn next_checkpoint(shared: &Shared) -> Option<Taken<'_>> {
    loop {
        {
            let mut written = shared.written.lock();
            loop {
                if written.closed {
                    return None;
                }
                let due_at = written.since.map(|since| since + shared.policy.interval);
                let due = !written.waiters.is_empty()
                    || written.bytes >= shared.policy.max_bytes
                    || due_at.is_some_and(|at| at <= Instant::now());
                if due {
                    break;
                }
                match due_at {
                    Some(at) => {
                        shared
                            .checkpoint_due
                            .wait_for(&mut written, at.saturating_duration_since(Instant::now()));
                    }
                    None => shared.checkpoint_due.wait(&mut written),
                }
            }
        }
        let guard = shared.checkpointing.lock();
        let mut written = shared.written.lock();
        if written.closed {
            return None;
        }
        // A `clear` may have emptied it between the two locks: wait again then.
        if !written.rounds.is_empty() || !written.waiters.is_empty() {
            let taken = std::mem::take(&mut *written);
            return Some(Taken {
                _guard: guard,
                written: taken,
            });
        }
    }
}

/// The rounds one checkpoint covers, with the checkpoint lock.
struct Taken<'a> {
    _guard: parking_lot::MutexGuard<'a, ()>,
    written: Written,
}

/// Writes each key the rounds touched, once, then removes their log values; then forgets them
/// from the memtable.
fn checkpoint(shared: &Shared, taken: &Written) -> Result<(), Error> {
    let Some(&(upto, _)) = taken.rounds.last() else {
        return Ok(());
    };
    let folded = fold(
        taken
            .rounds
            .iter()
            .flat_map(|(_, records)| records.iter().map(|(_, writes)| writes)),
    );
    let writes = write_back(&shared.tree, &folded, &taken.log_keys, |point| {
        crash_point(shared, point)
    })?;
    // sled holds every value now: readers may fall through to it.
    shared.mem.write().checkpointed(upto);
    shared.counters.add(CHECKPOINTS, 1);
    shared.counters.add(CHECKPOINT_WRITES, writes as u64);
    Ok(())
}

/// Ends the process abruptly if the fault tests chose `point`, once what was written before it
/// is on disk.
fn crash_point(shared: &Shared, point: CrashPoint) {
    if shared.policy.crash_at == Some(point) {
        let flushed = shared.db.flush();
        tracing::error!(?point, ?flushed, "crash point reached: aborting");
        std::process::abort();
    }
}

/// Each key's last value over `records`, in order.
fn fold<'a>(records: impl Iterator<Item = &'a Vec<Write>>) -> BTreeMap<&'a [u8], &'a Option<IVec>> {
    let mut folded = BTreeMap::new();
    for writes in records {
        for (key, value) in writes {
            folded.insert(key.as_slice(), value);
        }
    }
    folded
}

/// Writes each of `folded` to its place, then removes `log_keys` (oldest first); answers how
/// many writes that took. `at` is called at each crash point on the way.
///
/// Plain writes, not one sled batch: a batch holds sled's global write lock (every reader and
/// writer of the store waits) for as long as it applies, measured as 200 ms stalls of every
/// reply. Order alone keeps a crash harmless: sled recovers a prefix of its writes, so a round's
/// log value is gone only if every value before its removal was written, and a replay of the
/// rounds left only moves keys forward to their newest values (and may write a ledger page
/// overlapping one written before, which readers resolve: entries never change). A deletion of a key sled does not
/// hold (an outbox entry written and delivered since the last checkpoint) is left out: a lookup
/// costs less than a write.
fn write_back(
    tree: &sled::Tree,
    folded: &BTreeMap<&[u8], &Option<IVec>>,
    log_keys: &[impl AsRef<[u8]>],
    mut at: impl FnMut(CrashPoint),
) -> Result<usize, Error> {
    let mut writes = 0;
    // Each entity's new ledger entries, for one page per entity (the keys come in order, so
    // an entity's entries come in sequence order).
    let mut pages: BTreeMap<&[u8], Vec<(u64, &[u8])>> = BTreeMap::new();
    for (i, (key, value)) in folded.iter().enumerate() {
        if i == folded.len() / 2 {
            at(CrashPoint::CheckpointWrites);
        }
        if let Some((entity, seq, entry)) = ledger_entry(key, value) {
            pages.entry(entity).or_default().push((seq, entry));
            continue;
        }
        match value {
            Some(v) => tree.insert(*key, v.clone())?,
            None if tree.contains_key(key)? => tree.remove(*key)?,
            None => continue,
        };
        writes += 1;
    }
    for (entity, entries) in &pages {
        let Some(&(first, _)) = entries.first() else {
            continue;
        };
        let page = ledger_pages::encode(entries.iter().copied());
        tree.insert(keyspace::ledger_page_at(entity, first), page)?;
        writes += 1;
    }
    for (i, key) in log_keys.iter().enumerate() {
        if i == log_keys.len() / 2 {
            at(CrashPoint::LogTruncation);
        }
        tree.remove(key.as_ref())?;
    }
    Ok(writes + log_keys.len())
}

/// A single-entry ledger write, as its entity's key prefix, sequence number and entry: a
/// checkpoint files it into its entity's page (`ledger_pages.rs`) instead of its own key.
fn ledger_entry<'k, 'v>(
    key: &'k [u8],
    value: &'v Option<IVec>,
) -> Option<(&'k [u8], u64, &'v [u8])> {
    if !key.starts_with(keyspace::LEDGER_PREFIX) {
        return None;
    }
    Some((
        keyspace::ledger_entity_of_key(key)?,
        keyspace::ledger_seq(key)?,
        value.as_deref()?,
    ))
}

/// Applies every round left in the log to sled and drops them, as a checkpoint would; answers
/// how many rounds there were.
pub(super) fn replay(tree: &sled::Tree) -> Result<usize, Error> {
    let mut log_keys = Vec::new();
    let mut records = Vec::new();
    for item in tree.scan_prefix(keyspace::LOG_PREFIX) {
        let (key, value) = item?;
        records.push(record::decode(&value)?);
        log_keys.push(key);
    }
    let mut rounds: Vec<u64> = log_keys.iter().map(|k| keyspace::log_round(k)).collect();
    rounds.dedup();
    write_back(tree, &fold(records.iter()), &log_keys, |_| {})?;
    Ok(rounds.len())
}
