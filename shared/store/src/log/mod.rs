//! The partition log: the truth of the store, written in rounds.
//!
//! A commit hands its writes to the log, which puts them in the memtable (readable at once)
//! and in the current round's buffer. The round thread (`rounds.rs`) takes every buffered
//! record, inserts one value per partition (`L:{round}{partition}`: the records of that
//! partition in commit order) and, when anyone waits for durability, fsyncs once for all of
//! them. sled recovers its log as a contiguous prefix, so a round is on disk whole or not at all,
//! and so is everything before it. The checkpoint thread (`checkpoint.rs`) then writes each
//! key's newest value to its place and drops the rounds it covered.
//!
//! With a replica (a cluster's changelog) the log is **volatile**: rounds keep their records
//! for the checkpoint but write no log values. The replica is then the durable copy, and a
//! node that stops uncleanly throws its local copy away and restores it from the replica, so
//! log values would be written (and removed again) for nobody. A clean stop checkpoints first.

mod checkpoint;
mod rounds;

use crate::memtable::{Memtable, Merged};
use crate::record::Write;
use crate::{keyspace, Error};
use parking_lot::{Condvar, Mutex, RwLock};
use sled::IVec;
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
    /// For fault tests: end the process abruptly at this point of every checkpoint.
    pub crash_at: Option<CrashPoint>,
}

/// A point inside a checkpoint where a fault test makes the process die (after the writes
/// before it reached the disk, as a SIGKILL after sled's periodic flush would leave them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// Half of the checkpoint's keys are written.
    CheckpointWrites,
    /// Every key is written and half of the rounds' log values are removed.
    LogTruncation,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            interval: Duration::from_secs(1),
            max_bytes: 16 * 1024 * 1024,
            crash_at: None,
        }
    }
}

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

/// Rounds on disk that no checkpoint covers yet (the round thread adds, the checkpoint thread
/// takes).
#[derive(Default)]
struct Written {
    rounds: Vec<(u64, Vec<Record>)>,
    log_keys: Vec<Vec<u8>>,
    bytes: usize,
    /// When the oldest of `rounds` was written.
    since: Option<Instant>,
    /// Callers waiting for a checkpoint of everything in `rounds`.
    waiters: Vec<Waiter>,
    closed: bool,
}

struct Shared {
    db: sled::Db,
    tree: sled::Tree,
    mem: RwLock<Memtable>,
    pending: Mutex<Pending>,
    /// Wakes the round thread.
    wake: Condvar,
    written: Mutex<Written>,
    /// Wakes the checkpoint thread.
    checkpoint_due: Condvar,
    /// Held by the round thread for a round, and by the checkpoint thread for a checkpoint, so
    /// that `clear` never interleaves with either.
    round_lock: Mutex<()>,
    checkpointing: Mutex<()>,
    policy: CheckpointPolicy,
    /// Whether rounds write no log values (see the module's doc).
    volatile: bool,
    counters: Counters,
}

/// A cheap, cloneable handle to the log; the last one stops its threads after a final round
/// (no checkpoint: the next open replays the log).
#[derive(Clone)]
pub(crate) struct Log {
    shared: Arc<Shared>,
    _threads: Arc<Threads>,
}

struct Threads {
    shared: Arc<Shared>,
    rounds: Option<std::thread::JoinHandle<()>>,
    checkpoints: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Threads {
    fn drop(&mut self) {
        self.shared.pending.lock().closed = true;
        self.shared.wake.notify_all();
        if let Some(handle) = self.rounds.take() {
            let _ = handle.join();
        }
        self.shared.written.lock().closed = true;
        self.shared.checkpoint_due.notify_all();
        if let Some(handle) = self.checkpoints.take() {
            let _ = handle.join();
        }
    }
}

fn spawn(name: &str, shared: &Arc<Shared>, run: fn(&Shared)) -> std::thread::JoinHandle<()> {
    let shared = Arc::clone(shared);
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || run(&shared))
        .expect("spawning a thread of the partition log")
}

impl Log {
    /// Replays what the log holds onto sled (a checkpoint of it), then starts the round and
    /// checkpoint threads; `volatile`: its rounds write no log values.
    pub(crate) fn open(
        db: sled::Db,
        tree: sled::Tree,
        policy: CheckpointPolicy,
        volatile: bool,
    ) -> Result<Log, Error> {
        let replayed = checkpoint::replay(&tree)?;
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
            checkpoint_due: Condvar::new(),
            round_lock: Mutex::new(()),
            checkpointing: Mutex::new(()),
            policy,
            volatile,
            counters: Counters::default(),
        });
        let threads = Threads {
            shared: Arc::clone(&shared),
            rounds: Some(spawn("keel-log", &shared, rounds::run)),
            checkpoints: Some(spawn("keel-checkpoint", &shared, checkpoint::run)),
        };
        Ok(Log {
            _threads: Arc::new(threads),
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

    /// The checkpointed keys (all of them once the log is replayed and nothing is appended).
    pub(crate) fn tree(&self) -> &sled::Tree {
        &self.shared.tree
    }

    /// The greatest key at or before `key` that starts with `prefix`, among the keys only
    /// checkpoints write (ledger pages): sled's alone.
    pub(crate) fn floor_checkpointed(
        &self,
        key: &[u8],
        prefix: &[u8],
    ) -> Result<Option<IVec>, Error> {
        let mut after = key.to_vec();
        after.push(0);
        let found = self.shared.tree.get_lt(after)?;
        Ok(found.map(|(k, _)| k).filter(|k| k.starts_with(prefix)))
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
        let _checkpointing = self.shared.checkpointing.lock();
        let _round = self.shared.round_lock.lock();
        let mut written = self.shared.written.lock();
        let mut pending = self.shared.pending.lock();
        let mut mem = self.shared.mem.write();
        // Nothing is left to checkpoint: whoever waited for it is served.
        answer(std::mem::take(&mut written.waiters), &Ok(()));
        let closed = written.closed;
        *written = Written {
            closed,
            ..Written::default()
        };
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

/// Answers every waiter with `result`.
fn answer(waiters: Vec<Waiter>, result: &Result<(), Error>) {
    for waiter in waiters {
        // A waiter that gave up (dropped) needs no answer.
        let _ = waiter.send(match result {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::Flush(e.to_string())),
        });
    }
}
