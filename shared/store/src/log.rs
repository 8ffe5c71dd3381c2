//! The partition log: the truth of the store, written in rounds.
//!
//! A commit hands its writes to the log, which puts them in the memtable (readable at once)
//! and in the current round's buffer. One thread writes rounds: it takes every buffered
//! record, inserts one value per partition (`L:{round}{partition}`: the records of that
//! partition in commit order) and, when anyone waits for durability, fsyncs once for all of
//! them. sled recovers its log as a contiguous prefix, so a round is on disk whole or not at all,
//! and so is everything before it.
//!
//! Every interval (or once enough bytes are waiting) the same thread checkpoints: it folds the
//! rounds written since the last checkpoint into each key's newest value (one write per key,
//! however many versions it went through) and applies them to sled in one atomic batch together
//! with the removal of those rounds' log values. A crash before the batch leaves the rounds to
//! be replayed when the store opens; a crash after it leaves nothing to replay. Either way a
//! record applies idempotently: it holds values.

use crate::memtable::{Memtable, Merged};
use crate::record::{self, Write};
use crate::{keyspace, Error};
use parking_lot::{Condvar, Mutex, RwLock};
use sled::IVec;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), Error>>;

/// A record as the log keeps it: its partition and its writes.
type Record = (u32, Vec<Write>);

/// How often the log is checkpointed.
#[derive(Debug, Clone, Copy)]
pub struct CheckpointPolicy {
    /// Checkpoint at least this often while anything is waiting.
    pub interval: Duration,
    /// Checkpoint sooner once this many log bytes are waiting (bounds the memtable).
    pub max_bytes: usize,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            interval: Duration::from_secs(1),
            max_bytes: 16 * 1024 * 1024,
        }
    }
}

/// Rounds of unwaited records (outbox deliveries, restored records) are written at least this
/// often; a waiter starts a round at once.
const UNWAITED_ROUND_DELAY: Duration = Duration::from_millis(50);

/// Counters of the log's rounds and checkpoints, to show what a commit costs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// fsyncs run.
    pub flushes: u64,
    /// Callers of `flush`/`sync` served by them.
    pub waiters: u64,
    /// Rounds written.
    pub rounds: u64,
    /// Records (commits, deliveries, restored records) the rounds carried.
    pub records: u64,
    /// sled key writes the rounds made (one per partition with records per round).
    pub log_writes: u64,
    /// Bytes the rounds wrote.
    pub log_bytes: u64,
    /// Checkpoints run.
    pub checkpoints: u64,
    /// sled key writes the checkpoints made (each key once per checkpoint, plus the log values
    /// they removed).
    pub checkpoint_writes: u64,
}

#[derive(Default)]
struct Counters([AtomicU64; 8]);

impl Counters {
    fn add(&self, i: usize, n: u64) {
        self.0[i].fetch_add(n, Ordering::Relaxed);
    }
    fn get(&self, i: usize) -> u64 {
        self.0[i].load(Ordering::Relaxed)
    }
}

const FLUSHES: usize = 0;
const WAITERS: usize = 1;
const ROUNDS: usize = 2;
const RECORDS: usize = 3;
const LOG_WRITES: usize = 4;
const LOG_BYTES: usize = 5;
const CHECKPOINTS: usize = 6;
const CHECKPOINT_WRITES: usize = 7;

/// Records waiting for the next round, and who waits for it.
#[derive(Default)]
struct Pending {
    /// The round the buffered records will be written in.
    round: u64,
    records: Vec<Record>,
    /// Callers waiting for the next round's fsync.
    flush: Vec<Waiter>,
    /// Callers waiting for the next checkpoint (and its fsync).
    checkpoint: Vec<Waiter>,
    /// Bumped by `clear`: a round taken before it is dropped, not written.
    clears: u64,
    closed: bool,
}

impl Pending {
    fn waited(&self) -> bool {
        !self.flush.is_empty() || !self.checkpoint.is_empty()
    }
}

/// Rounds written to the log and not yet checkpointed (owned by the round thread; `clear`
/// takes it too).
#[derive(Default)]
struct Written {
    rounds: Vec<(u64, Vec<Record>)>,
    log_keys: Vec<Vec<u8>>,
    bytes: usize,
    since: Option<Instant>,
}

struct Shared {
    db: sled::Db,
    tree: sled::Tree,
    mem: RwLock<Memtable>,
    pending: Mutex<Pending>,
    wake: Condvar,
    written: Mutex<Written>,
    policy: CheckpointPolicy,
    counters: Counters,
}

/// A cheap, cloneable handle to the log; the last one stops the round thread after a final
/// round (no checkpoint: the next open replays it).
#[derive(Clone)]
pub(crate) struct Log {
    shared: Arc<Shared>,
    _thread: Arc<RoundThread>,
}

struct RoundThread {
    shared: Arc<Shared>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Drop for RoundThread {
    fn drop(&mut self) {
        self.shared.pending.lock().closed = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

impl Log {
    /// Replays what the log holds onto sled (a checkpoint of it), then starts the round thread.
    pub(crate) fn open(
        db: sled::Db,
        tree: sled::Tree,
        policy: CheckpointPolicy,
    ) -> Result<Log, Error> {
        let replayed = replay(&tree)?;
        if replayed > 0 {
            db.flush()?;
            tracing::info!(rounds = replayed, "replayed the partition log");
        }
        let shared = Arc::new(Shared {
            db,
            tree,
            mem: RwLock::default(),
            pending: Mutex::new(Pending {
                round: 1,
                ..Pending::default()
            }),
            wake: Condvar::new(),
            written: Mutex::default(),
            policy,
            counters: Counters::default(),
        });
        let handle = std::thread::Builder::new()
            .name("keel-log".into())
            .spawn({
                let shared = Arc::clone(&shared);
                move || run(&shared)
            })
            .expect("spawning the log's round thread");
        Ok(Log {
            _thread: Arc::new(RoundThread {
                shared: Arc::clone(&shared),
                handle: Some(handle),
            }),
            shared,
        })
    }

    /// Appends a record of `partition` to the current round; readable at once.
    pub(crate) fn append(&self, partition: u32, writes: Vec<Write>) {
        let mut pending = self.shared.pending.lock();
        self.shared.mem.write().insert(&writes, pending.round);
        pending.records.push((partition, writes));
    }

    /// The newest value of `key`: the log's if it wrote the key since the last checkpoint.
    pub(crate) fn get(&self, key: &[u8]) -> Result<Option<IVec>, Error> {
        if let Some(entry) = self.shared.mem.read().get(key) {
            return Ok(entry.value.clone());
        }
        Ok(self.shared.tree.get(key)?)
    }

    /// Every key from `from` (inclusive) to `to` (exclusive; `None`: the end), in order.
    pub(crate) fn range(
        &self,
        from: &[u8],
        to: Option<&[u8]>,
    ) -> impl Iterator<Item = Result<(IVec, IVec), Error>> {
        let mem = self.shared.mem.read().range(from, to);
        let tree = match to {
            Some(to) => self.shared.tree.range(from.to_vec()..to.to_vec()),
            None => self.shared.tree.range(from.to_vec()..),
        };
        Merged::new(mem, tree)
    }

    /// Every key that starts with `prefix`, in order.
    pub(crate) fn scan_prefix(
        &self,
        prefix: &[u8],
    ) -> impl Iterator<Item = Result<(IVec, IVec), Error>> {
        self.range(prefix, keyspace::prefix_end(prefix).as_deref())
    }

    /// Resolves once every record appended before the call is in a round on disk.
    pub(crate) async fn flush(&self) -> Result<(), Error> {
        self.wait(|pending, tx| pending.flush.push(tx)).await
    }

    /// Resolves once every record appended before the call is checkpointed and on disk.
    pub(crate) async fn checkpoint(&self) -> Result<(), Error> {
        self.wait(|pending, tx| pending.checkpoint.push(tx)).await
    }

    async fn wait(&self, enqueue: impl FnOnce(&mut Pending, Waiter)) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        {
            let mut pending = self.shared.pending.lock();
            if pending.closed {
                return Err(Error::Closed);
            }
            enqueue(&mut pending, tx);
        }
        self.shared.wake.notify_one();
        rx.await.map_err(|_| Error::Closed)?
    }

    /// Forgets every key, checkpointed or not.
    pub(crate) fn clear(&self) -> Result<(), Error> {
        let mut written = self.shared.written.lock();
        let mut pending = self.shared.pending.lock();
        let mut mem = self.shared.mem.write();
        *written = Written::default();
        pending.records.clear();
        pending.clears += 1;
        mem.clear();
        self.shared.tree.clear()?;
        Ok(())
    }

    pub(crate) fn stats(&self) -> LogStats {
        let c = &self.shared.counters;
        LogStats {
            flushes: c.get(FLUSHES),
            waiters: c.get(WAITERS),
            rounds: c.get(ROUNDS),
            records: c.get(RECORDS),
            log_writes: c.get(LOG_WRITES),
            log_bytes: c.get(LOG_BYTES),
            checkpoints: c.get(CHECKPOINTS),
            checkpoint_writes: c.get(CHECKPOINT_WRITES),
        }
    }

    /// Keys the memtable holds (written since the last checkpoint).
    pub(crate) fn memtable_len(&self) -> usize {
        self.shared.mem.read().len()
    }
}

/// A round as the round thread takes it from [`Pending`].
struct Round {
    number: u64,
    clears: u64,
    closing: bool,
    records: Vec<Record>,
    flush: Vec<Waiter>,
    checkpoint: Vec<Waiter>,
}

/// The round thread: ends when the last handle is dropped, after writing what was appended.
fn run(shared: &Shared) {
    loop {
        let Some(round) = next_round(shared) else {
            return;
        };
        let mut written = shared.written.lock();
        let records = if shared.pending.lock().clears == round.clears {
            round.records
        } else {
            Vec::new()
        };
        let result = write_round(shared, &mut written, round.number, records);
        let waited = !round.flush.is_empty() || !round.checkpoint.is_empty() || round.closing;
        let result = result.and_then(|()| flush_if(shared, waited, round.flush.len()));
        answer(round.flush, &result);
        let due = written
            .since
            .is_some_and(|t| t.elapsed() >= shared.policy.interval)
            || written.bytes >= shared.policy.max_bytes;
        if result.is_ok() && (due || !round.checkpoint.is_empty()) {
            let checked = checkpoint(shared, &mut written);
            let checked = checked.and_then(|()| flush_if(shared, !round.checkpoint.is_empty(), 0));
            if let Err(e) = &checked {
                tracing::error!(error = %e, "checkpoint failed; the log keeps the rounds");
            }
            answer(round.checkpoint, &checked);
        } else {
            answer(round.checkpoint, &result);
        }
        if let Err(e) = result {
            tracing::error!(error = %e, "writing a round of the partition log failed");
        }
    }
}

/// Waits for work: a waiter, a record that waited long enough, or a checkpoint that is due.
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
        let checkpoint_at = shared
            .written
            .try_lock()
            .and_then(|w| w.since)
            .map(|since| since + shared.policy.interval);
        let records_at = (!pending.records.is_empty()).then(|| idle_since + UNWAITED_ROUND_DELAY);
        let now = Instant::now();
        let deadline = [checkpoint_at, records_at].into_iter().flatten().min();
        match deadline {
            Some(at) if at <= now => break,
            Some(at) => {
                shared.wake.wait_for(&mut pending, at - now);
            }
            None => {
                shared.wake.wait(&mut pending);
                idle_since = Instant::now();
            }
        }
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

/// Inserts one log value per partition with records in this round.
fn write_round(
    shared: &Shared,
    written: &mut Written,
    number: u64,
    records: Vec<Record>,
) -> Result<(), Error> {
    if records.is_empty() {
        return Ok(());
    }
    let mut by_partition: BTreeMap<u32, Vec<&Vec<Write>>> = BTreeMap::new();
    for (partition, writes) in &records {
        by_partition.entry(*partition).or_default().push(writes);
    }
    let mut bytes = 0;
    for (partition, parts) in &by_partition {
        let value = record::encode(parts.iter().flat_map(|w| w.iter()));
        bytes += value.len();
        let key = keyspace::log(number, *partition);
        shared.tree.insert(key.as_slice(), value)?;
        written.log_keys.push(key);
    }
    let c = &shared.counters;
    c.add(ROUNDS, 1);
    c.add(RECORDS, records.len() as u64);
    c.add(LOG_WRITES, by_partition.len() as u64);
    c.add(LOG_BYTES, bytes as u64);
    written.bytes += bytes;
    written.since.get_or_insert_with(Instant::now);
    written.rounds.push((number, records));
    Ok(())
}

fn flush_if(shared: &Shared, waited: bool, waiters: usize) -> Result<(), Error> {
    if waited {
        shared.db.flush()?;
        shared.counters.add(FLUSHES, 1);
        shared.counters.add(WAITERS, waiters as u64);
    }
    Ok(())
}

fn answer(waiters: Vec<Waiter>, result: &Result<(), Error>) {
    for waiter in waiters {
        // A waiter that gave up (dropped) needs no answer.
        let _ = waiter.send(match result {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::Flush(e.to_string())),
        });
    }
}

/// Writes each key the written rounds touched, once, and removes their log values, in one
/// atomic batch; then forgets them from the memtable.
fn checkpoint(shared: &Shared, written: &mut Written) -> Result<(), Error> {
    let Some(&(upto, _)) = written.rounds.last() else {
        written.since = None;
        return Ok(());
    };
    let folded = fold(
        written
            .rounds
            .iter()
            .flat_map(|(_, records)| records.iter().map(|(_, writes)| writes)),
    );
    let (mut batch, mut writes) = batch_of(&shared.tree, &folded)?;
    for key in &written.log_keys {
        batch.remove(key.as_slice());
    }
    writes += written.log_keys.len();
    shared.tree.apply_batch(batch)?;
    // sled holds every value now: readers may fall through to it.
    shared.mem.write().checkpointed(upto);
    shared.counters.add(CHECKPOINTS, 1);
    shared.counters.add(CHECKPOINT_WRITES, writes as u64);
    *written = Written::default();
    Ok(())
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

/// The batch that writes `folded`, and how many writes it holds. A deletion of a key sled does
/// not hold (an outbox entry written and delivered since the last checkpoint) is left out: a
/// lookup costs less than a write.
fn batch_of(
    tree: &sled::Tree,
    folded: &BTreeMap<&[u8], &Option<IVec>>,
) -> Result<(sled::Batch, usize), Error> {
    let mut batch = sled::Batch::default();
    let mut writes = 0;
    for (key, value) in folded {
        match value {
            Some(v) => batch.insert(*key, v.clone()),
            None if tree.contains_key(key)? => batch.remove(*key),
            None => continue,
        }
        writes += 1;
    }
    Ok((batch, writes))
}

/// Applies every round left in the log to sled (with their removal, in one batch); answers
/// how many rounds there were.
fn replay(tree: &sled::Tree) -> Result<usize, Error> {
    let mut log_keys = Vec::new();
    let mut records = Vec::new();
    for item in tree.scan_prefix(keyspace::LOG_PREFIX) {
        let (key, value) = item?;
        records.push(record::decode(&value)?);
        log_keys.push(key);
    }
    let rounds = {
        let mut numbers: Vec<u64> = log_keys.iter().map(|k| keyspace::log_round(k)).collect();
        numbers.dedup();
        numbers.len()
    };
    let (mut batch, _) = batch_of(tree, &fold(records.iter()))?;
    for key in log_keys {
        batch.remove(key);
    }
    tree.apply_batch(batch)?;
    Ok(rounds)
}
