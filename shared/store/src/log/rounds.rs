//! The round thread: writes what commits appended, one sled value per partition and round, and
//! fsyncs once for everyone who waits.

use super::{
    answer, Record, Shared, Waiter, Written, FLUSHES, LOG_BYTES, LOG_WRITES, RECORDS, ROUNDS,
    WAITERS,
};
use crate::record::{self, Write};
use crate::{keyspace, Error};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Rounds of unwaited records (outbox deliveries, restored records) are written at least this
/// often; a waiter starts a round at once.
const UNWAITED_ROUND_DELAY: Duration = Duration::from_millis(50);

/// A round as the round thread takes it from the pending buffer.
struct Round {
    number: u64,
    clears: u64,
    closing: bool,
    records: Vec<Record>,
    flush: Vec<Waiter>,
    checkpoint: Vec<Waiter>,
}

/// A round on disk, for the checkpoint thread.
struct Done {
    number: u64,
    records: Vec<Record>,
    log_keys: Vec<Vec<u8>>,
    bytes: usize,
}

/// Runs until the log closes, after writing (and fsyncing) what was appended before.
pub(super) fn run(shared: &Shared) {
    while let Some(round) = next_round(shared) {
        let _round = shared.round_lock.lock();
        let records = if shared.pending.lock().clears == round.clears {
            round.records
        } else {
            Vec::new()
        };
        let waited = !round.flush.is_empty() || !round.checkpoint.is_empty() || round.closing;
        let started = std::time::Instant::now();
        let result = write_round(shared, round.number, records).and_then(|done| {
            if waited {
                shared.db.flush()?;
                shared.counters.add(FLUSHES, 1);
                shared.counters.add(WAITERS, round.flush.len() as u64);
            }
            Ok(done)
        });
        crate::timings::rounds(waited).observe(started.elapsed().as_secs_f64());
        match result {
            Ok(done) => {
                answer(round.flush, &Ok(()));
                let mut written = shared.written.lock();
                // The first round after a checkpoint starts the checkpoint thread's clock.
                let first = written.since.is_none();
                if let Some(done) = done {
                    written.push(done.number, done.records, done.log_keys, done.bytes);
                }
                written.waiters.extend(round.checkpoint);
                if first || !written.waiters.is_empty() || written.bytes >= shared.policy.max_bytes
                {
                    shared.checkpoint_due.notify_one();
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "writing a round of the partition log failed");
                let failed = Err(e);
                answer(round.flush, &failed);
                answer(round.checkpoint, &failed);
            }
        }
    }
}

impl Written {
    fn push(&mut self, number: u64, records: Vec<Record>, log_keys: Vec<Vec<u8>>, bytes: usize) {
        self.rounds.push((number, records));
        self.log_keys.extend(log_keys);
        self.bytes += bytes;
        self.since.get_or_insert_with(Instant::now);
    }
}

/// Waits for work: a waiter, or records that waited long enough. `None`: the log closed and
/// nothing is left to write.
fn next_round(shared: &Shared) -> Option<Round> {
    let mut pending = shared.pending.lock();
    let mut idle_since = Instant::now();
    loop {
        if pending.waited() || (pending.closed && !pending.records.is_empty()) {
            break;
        }
        if pending.closed {
            return None;
        }
        if pending.records.is_empty() {
            shared.wake.wait(&mut pending);
            idle_since = Instant::now();
            continue;
        }
        let at = idle_since + UNWAITED_ROUND_DELAY;
        if at <= Instant::now() {
            break;
        }
        shared
            .wake
            .wait_for(&mut pending, at.saturating_duration_since(Instant::now()));
    }
    let number = pending.round;
    pending.round += 1;
    Some(Round {
        number,
        clears: pending.clears,
        closing: pending.closed,
        records: std::mem::take(&mut pending.records),
        flush: std::mem::take(&mut pending.flush),
        checkpoint: std::mem::take(&mut pending.checkpoint),
    })
}

/// Inserts one log value per partition with records in this round (none when the log is
/// volatile: the round only hands its records to the checkpoint).
fn write_round(shared: &Shared, number: u64, records: Vec<Record>) -> Result<Option<Done>, Error> {
    if records.is_empty() {
        return Ok(None);
    }
    // `pending`: what the checkpoint is measured by (the log values, or the records they
    // would hold).
    let (log_keys, written, pending) = if shared.volatile {
        let held = records
            .iter()
            .flat_map(|(_, writes)| writes)
            .map(|(key, value)| key.len() + value.as_ref().map_or(0, |v| v.len()))
            .sum();
        (Vec::new(), 0, held)
    } else {
        let (log_keys, written) = write_log_values(shared, number, &records)?;
        (log_keys, written, written)
    };
    let c = &shared.counters;
    c.add(ROUNDS, 1);
    c.add(RECORDS, records.len() as u64);
    c.add(LOG_WRITES, log_keys.len() as u64);
    c.add(LOG_BYTES, written as u64);
    Ok(Some(Done {
        number,
        records,
        log_keys,
        bytes: pending,
    }))
}

/// Inserts one log value per partition with records; answers their keys and bytes.
fn write_log_values(
    shared: &Shared,
    number: u64,
    records: &[Record],
) -> Result<(Vec<Vec<u8>>, usize), Error> {
    let mut by_partition: BTreeMap<u32, Vec<&Vec<Write>>> = BTreeMap::new();
    for (partition, writes) in records {
        by_partition.entry(*partition).or_default().push(writes);
    }
    let (mut bytes, mut log_keys) = (0, Vec::with_capacity(by_partition.len()));
    for (partition, parts) in &by_partition {
        let value = record::encode(parts.iter().flat_map(|w| w.iter()));
        bytes += value.len();
        let key = keyspace::log(number, *partition);
        shared.tree.insert(key.as_slice(), value)?;
        log_keys.push(key);
    }
    Ok((log_keys, bytes))
}
