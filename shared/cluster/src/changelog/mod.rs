//! The durable copy of every partition outside the node: the JetStream stream
//! `KEEL_CHANGELOG`, one subject per partition (`keel.v1.log.{partition}`) and one for the
//! catalog (`keel.v1.log.catalog`). A message holds the journal records of one or more
//! commits (what `keel-store` writes, key by key, with the values), stamped with the owner's
//! epoch.
//!
//! **Fencing.** Every message on a partition's subject names the subject sequence it follows
//! (`Nats-Expected-Last-Subject-Sequence`), and a new owner's first message is a claim that
//! follows what it restored. So once a new owner has claimed a partition, anything the old
//! owner still sends is refused by JetStream: a paused owner that wakes up cannot write, and
//! since it acknowledges, replies and publishes only after its writes are in the changelog
//! ([`keel_store::Store::flush`]), it does nothing else either.
//!
//! **Restoring.** A new owner replays the partition's subject into its (emptied) store
//! ([`restore`]); sled is a cache of this log.
//!
//! **Snapshots.** Each partition's owner folds its lane into a snapshot once enough was
//! written since the last one ([`Snapshots`]), and the lane is purged below it: a restore is
//! the snapshot and the messages after it, and the changelog does not grow with history.

mod lanes;
mod restore;
mod snapshots;

use restore::read_after;
pub use restore::{follow, head, lane_of, last_written_by, restore, restore_partition, Restored};
pub use snapshots::{Head, Snapshots, Taken, SNAPSHOTS_BUCKET, SNAPSHOT_HEADS_BUCKET};

use crate::{Error, Partitioning};
use async_nats::jetstream::{self, context::PublishErrorKind, message::PublishMessage};
use futures::future::{BoxFuture, Either};
use futures::stream::FuturesUnordered;
use futures::{FutureExt, StreamExt};
use keel_store::{Durable, Lane, Replica};
use lanes::{lane_token, Batch, Lanes};
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// The changelog stream.
pub const CHANGELOG_STREAM: &str = "KEEL_CHANGELOG";
/// The subjects it captures.
pub const CHANGELOG_SUBJECTS: &str = keel_protocol::changelog::SUBJECTS;
/// The epoch of the owner that wrote a changelog message.
pub const EPOCH_HEADER: &str = "Keel-Epoch";
/// The node that wrote a changelog message.
pub const NODE_HEADER: &str = "Keel-Node";
/// Marks a new owner's claim (a message without writes).
pub const CLAIM_HEADER: &str = "Keel-Claim";

/// How often the writer looks at the fence again while it holds records back.
const FENCE_POLL: Duration = Duration::from_millis(50);

/// The subject of a lane.
pub fn subject(lane: Lane) -> String {
    keel_protocol::changelog::subject(&lane_token(lane))
}

/// Every lane of a cluster: its partitions and the catalog.
pub fn all_lanes(partitioning: Partitioning) -> Vec<Lane> {
    partitioning
        .all()
        .map(Lane::Partition)
        .chain(std::iter::once(Lane::Catalog))
        .collect()
}

/// Creates the changelog stream if it does not exist, with `replicas` copies (3 in
/// production: the copy must outlive a NATS server too).
pub async fn ensure_stream(js: &jetstream::Context, replicas: usize) -> Result<(), Error> {
    let config = jetstream::stream::Config {
        name: CHANGELOG_STREAM.to_owned(),
        subjects: vec![CHANGELOG_SUBJECTS.to_owned()],
        storage: jetstream::stream::StorageType::File,
        num_replicas: replicas.max(1),
        max_message_size: 1024 * 1024,
        duplicate_window: Duration::from_secs(120),
        ..Default::default()
    };
    js.get_or_create_stream(config)
        .await
        .map(drop)
        .map_err(|e| Error::unavailable("creating the changelog stream", e))
}

/// Whether this node may write now (it holds its partitions' leases, valid by its own clock).
pub type Fence = Arc<dyn Fn(Lane) -> bool + Send + Sync>;

/// Counters of the changelog writer.
#[derive(Debug, Default)]
pub struct ChangelogStats {
    /// Messages that landed in the changelog.
    pub batches: AtomicU64,
    /// Bytes of records they held.
    pub bytes: AtomicU64,
    /// Sends that failed and were retried.
    pub retried: AtomicU64,
    /// Snapshots made, their bytes, and the changelog messages purged below them.
    pub snapshots: AtomicU64,
    pub snapshot_bytes: AtomicU64,
    pub purged: AtomicU64,
    /// Snapshots that failed (tried again later).
    pub snapshot_failures: AtomicU64,
}

/// When this node snapshots the partitions it writes.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotPolicy {
    /// A partition is snapshotted once at least this many bytes, and at least as many as its
    /// last snapshot holds, were written to its changelog after that snapshot: so the
    /// snapshots' writing costs at most about what the commits wrote, and a restore reads at
    /// most about twice the partition's state.
    pub min_bytes: u64,
    /// How often the partitions are looked at.
    pub every: Duration,
}

impl Default for SnapshotPolicy {
    fn default() -> Self {
        SnapshotPolicy {
            min_bytes: 1024 * 1024,
            every: Duration::from_secs(1),
        }
    }
}

/// The node's changelog writer: a [`Replica`] for its store.
#[derive(Clone)]
pub struct Changelog {
    inner: Arc<Inner>,
}

struct Inner {
    js: jetstream::Context,
    node: String,
    /// This writer's incarnation, `{node}@{start ms}`, which begins every `Nats-Msg-Id`: a
    /// restarted node's messages must not look like repeats of its previous life's (the
    /// catalog lane's numbering starts again, and JetStream drops repeats for two minutes).
    incarnation: String,
    partitioning: Partitioning,
    lanes: Mutex<Lanes>,
    wake: Notify,
    durable: watch::Sender<u64>,
    fenced: watch::Sender<Option<String>>,
    fence: Fence,
    stats: ChangelogStats,
}

impl std::fmt::Debug for Changelog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changelog")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

/// How a send ended.
enum Sent {
    Landed(u64),
    Refused(String),
    Failed(String),
}

impl Changelog {
    /// Starts the writer of `node` (it sends only while `fence` says so). Must run inside a
    /// tokio runtime.
    pub fn start(
        js: jetstream::Context,
        node: &str,
        partitioning: Partitioning,
        fence: Fence,
    ) -> Changelog {
        let inner = Arc::new(Inner {
            js,
            node: node.to_owned(),
            incarnation: format!("{node}@{}", unix_ms()),
            partitioning,
            lanes: Mutex::new(Lanes::default()),
            wake: Notify::new(),
            durable: watch::channel(0).0,
            fenced: watch::channel(None).0,
            fence,
            stats: ChangelogStats::default(),
        });
        tokio::spawn(pump(Arc::clone(&inner)));
        Changelog { inner }
    }

    /// Claims `lane` for `epoch`: a message without writes that must follow subject sequence
    /// `head`, which is what this node restored. Answers the claim's sequence.
    ///
    /// # Errors
    /// [`Error::Stale`] when another writer added to the lane after `head` (restore the rest
    /// and claim again).
    pub async fn claim(&self, lane: Lane, epoch: u64, head: u64) -> Result<u64, Error> {
        let batch = Batch {
            lane,
            epoch,
            after: head,
            last: None,
            id: format!(
                "{}.{epoch}.{}.claim",
                self.inner.incarnation,
                lane_token(lane)
            ),
            payload: Vec::new(),
        };
        match send(&self.inner.js, &self.inner.node, &batch, true).await {
            Sent::Landed(sequence) => Ok(sequence),
            Sent::Refused(_) => Err(Error::Stale { lane, head }),
            Sent::Failed(reason) => Err(Error::Unavailable(reason)),
        }
    }

    /// Lets this node write `lane` at `epoch`, following subject sequence `last`.
    pub fn open(&self, lane: Lane, epoch: u64, last: u64) {
        self.inner.lanes.lock().open(lane, epoch, last);
        self.inner.wake.notify_one();
    }

    /// Stops writing `lane` (its partition is being handed off; call it once the store is
    /// flushed): later commits on it are refused. Answers its last subject sequence, which
    /// the local copy holds the partition at, if nothing was left to send.
    pub fn close(&self, lane: Lane) -> Option<u64> {
        self.inner.lanes.lock().close(lane)
    }

    /// Stamps `lane`'s next messages with `epoch` (its lease was taken again, nobody having
    /// claimed the lane meanwhile: the sequence chain goes on).
    pub fn set_epoch(&self, lane: Lane, epoch: u64) {
        self.inner.lanes.lock().set_epoch(lane, epoch);
    }

    /// The last subject sequence of every lane this node writes.
    pub fn heads(&self) -> BTreeMap<Lane, u64> {
        let lanes = self.inner.lanes.lock();
        lanes
            .heads()
            .into_iter()
            .map(|(l, (_, s))| (l, s))
            .collect()
    }

    /// Why the changelog refused this node's writes, once it did: another node owns one of its
    /// partitions now. Nothing this node commits can become durable after that.
    pub fn fenced(&self) -> watch::Receiver<Option<String>> {
        self.inner.fenced.subscribe()
    }

    /// The writer's counters.
    pub fn stats(&self) -> &ChangelogStats {
        &self.inner.stats
    }

    /// Notes what the restore of `lane` found, which the next snapshot's timing counts from.
    pub fn restored(&self, lane: Lane, restored: &Restored) {
        let snapshot = restored.snapshot.map_or(0, |(_, bytes)| bytes);
        self.inner
            .lanes
            .lock()
            .restored(lane, restored.bytes, snapshot);
    }

    /// Snapshots the partitions this node writes, by `policy`, one at a time, until the
    /// process ends; `fold` makes an empty fold (with the store's retention of command ids).
    pub fn keep_snapshotted(
        &self,
        snapshots: Snapshots,
        fold: impl Fn() -> keel_store::Fold + Send + 'static,
        policy: SnapshotPolicy,
    ) {
        let inner = Arc::clone(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(policy.every).await;
                let due = inner.lanes.lock().due_snapshots(policy.min_bytes);
                for (lane, tail) in due {
                    let Lane::Partition(partition) = lane else {
                        continue;
                    };
                    let now = u64::try_from(unix_ms()).unwrap_or(u64::MAX);
                    let taken = snapshots.take(partition, fold(), &inner.node, now).await;
                    let stats = &inner.stats;
                    let made = match taken {
                        Ok(Some(taken)) => {
                            stats.snapshots.fetch_add(1, Ordering::Relaxed);
                            stats
                                .snapshot_bytes
                                .fetch_add(taken.head.bytes, Ordering::Relaxed);
                            stats.purged.fetch_add(taken.purged, Ordering::Relaxed);
                            tracing::debug!(
                                partition,
                                sequence = taken.head.sequence,
                                bytes = taken.head.bytes,
                                folded = taken.messages,
                                purged = taken.purged,
                                "snapshot taken"
                            );
                            Some(taken.head.bytes)
                        }
                        Ok(None) => None,
                        Err(e) => {
                            stats.snapshot_failures.fetch_add(1, Ordering::Relaxed);
                            tracing::warn!(partition, error = %e, "snapshot failed; trying again later");
                            continue;
                        }
                    };
                    inner.lanes.lock().snapshotted(lane, tail, made);
                }
            }
        });
    }
}

impl Replica for Changelog {
    fn partition_of(&self, key: &str) -> u32 {
        self.inner
            .partitioning
            .of(&keel_protocol::entities::owner_of(key))
    }

    fn append(&self, lane: Lane, record: Vec<u8>) -> Result<(), String> {
        self.inner.lanes.lock().append(lane, record)?;
        self.inner.wake.notify_one();
        Ok(())
    }

    fn append_unwaited(&self, lane: Lane, record: Vec<u8>) {
        // No wake-up: it rides with the lane's next batch, or the pump's poll sends it late.
        let now = std::time::Instant::now();
        self.inner.lanes.lock().append_unwaited(lane, record, now);
    }

    fn durable(&self) -> Durable {
        wait_durable(Arc::clone(&self.inner), None)
    }

    fn durable_on(&self, lane: Lane) -> Durable {
        wait_durable(Arc::clone(&self.inner), Some(lane))
    }
}

/// Resolves once every record appended so far (to `lane`, or to every lane) is in the
/// changelog; fails once this node is fenced out or its lease of a lane with records to send
/// has lapsed. A wait on one lane is woken by that lane's landings only.
fn wait_durable(inner: Arc<Inner>, lane: Option<Lane>) -> Durable {
    let concerned = move |l: &Lane| lane.is_none_or(|lane| lane == *l);
    Box::pin(async move {
        let target = {
            let lanes = inner.lanes.lock();
            if let Some(lane) = lanes.unowned_with_records().find(concerned) {
                return Err(format!("{lane:?} is not owned by this node"));
            }
            lanes.appended()
        };
        let mut durable = inner.durable.subscribe();
        let mut fenced = inner.fenced.subscribe();
        loop {
            if let Some(reason) = fenced.borrow_and_update().clone() {
                return Err(reason);
            }
            // Seen before reading the lanes: a landing after this wakes the wait below.
            let watermark = *durable.borrow_and_update();
            // `Some`: the lane's own landing to wait for; `None`: the watermark's next move.
            let lane_landing = {
                let mut lanes = inner.lanes.lock();
                let lapsed = lanes
                    .with_records()
                    .filter(concerned)
                    .find(|l| !(inner.fence)(*l));
                if let Some(lane) = lapsed {
                    return Err(format!("this node's lease of {lane:?} has lapsed"));
                }
                match lane {
                    Some(lane) => match lanes.wait_on(lane, target) {
                        None => return Ok(()),
                        landing => landing,
                    },
                    None if watermark >= target => return Ok(()),
                    None => None,
                }
            };
            let landing = match lane_landing {
                Some(landing) => Either::Left(landing.map(drop)),
                None => Either::Right(durable.changed().map(drop)),
            };
            tokio::select! {
                () = landing => {}
                _ = fenced.changed() => {}
                () = tokio::time::sleep(FENCE_POLL) => {}
            }
        }
    })
}

/// Sends each lane's queued records, one batch in flight per lane, until the process ends.
/// (Sending in whole rounds, the next one taken when the last batch of the one before has
/// landed, was measured on 2026-12-07: it saved no messages, since an order's commits are
/// sequential saga steps that land in different rounds anyway, and it made three nodes
/// slower, every round waiting for its slowest lane.)
async fn pump(inner: Arc<Inner>) {
    let mut in_flight: FuturesUnordered<BoxFuture<'static, (Batch, Sent)>> =
        FuturesUnordered::new();
    loop {
        if inner.fenced.borrow().is_none() {
            let batches = inner.lanes.lock().take_batches(
                &inner.incarnation,
                std::time::Instant::now(),
                |lane| (inner.fence)(lane),
            );
            for batch in batches {
                in_flight.push(sending(&inner, batch, Duration::ZERO));
            }
        }
        tokio::select! {
            () = inner.wake.notified() => {}
            Some((batch, sent)) = in_flight.next() => {
                if let Some(retry) = settle(&inner, batch, sent) {
                    in_flight.push(sending(&inner, retry, RETRY_AFTER));
                }
            }
            () = tokio::time::sleep(FENCE_POLL) => {}
        }
    }
}

/// How long a failed send waits before it is sent again.
const RETRY_AFTER: Duration = Duration::from_millis(200);

fn sending(inner: &Arc<Inner>, batch: Batch, after: Duration) -> BoxFuture<'static, (Batch, Sent)> {
    let (js, node) = (inner.js.clone(), inner.node.clone());
    Box::pin(async move {
        tokio::time::sleep(after).await;
        let sent = send(&js, &node, &batch, false).await;
        (batch, sent)
    })
}

/// Books how a send ended; answers the batch to send again, if it failed.
fn settle(inner: &Inner, batch: Batch, sent: Sent) -> Option<Batch> {
    match sent {
        Sent::Landed(sequence) => {
            inner.stats.batches.fetch_add(1, Ordering::Relaxed);
            let bytes = u64::try_from(batch.payload.len()).unwrap_or(u64::MAX);
            inner.stats.bytes.fetch_add(bytes, Ordering::Relaxed);
            let mut lanes = inner.lanes.lock();
            lanes.landed(batch.lane, sequence);
            let below = lanes.durable_below();
            // Only a moved watermark wakes the waits for every lane.
            inner.durable.send_if_modified(|watermark| {
                let moved = *watermark != below;
                *watermark = below;
                moved
            });
            None
        }
        Sent::Refused(reason) => {
            tracing::error!(lane = ?batch.lane, epoch = batch.epoch, %reason, "the changelog refused this node's writes: fenced out");
            inner.fenced.send_replace(Some(reason));
            None
        }
        Sent::Failed(reason) => {
            inner.stats.retried.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(lane = ?batch.lane, %reason, "changelog send failed; retrying");
            // The same batch, with the same message id: if the first one landed after all,
            // JetStream's dedupe (or the check in `send`) recognises it.
            inner.lanes.lock().retry(batch.lane)
        }
    }
}

/// Publishes one batch (a claim when `claim`) and says how it ended. A refusal for a wrong
/// last subject sequence is checked against the subject's last message: if that is this very
/// batch (its acknowledgement was lost and this is a resend), it landed.
async fn send(js: &jetstream::Context, node: &str, batch: &Batch, claim: bool) -> Sent {
    let subject = subject(batch.lane);
    let mut message = PublishMessage::build()
        .payload(batch.payload.clone().into())
        .message_id(&batch.id)
        .header(EPOCH_HEADER, batch.epoch.to_string().as_str())
        .header(NODE_HEADER, node);
    if claim {
        message = message.header(CLAIM_HEADER, "1");
    }
    // The catalog is shared reference data with first-writer-wins entries: no sequence chain.
    if let Lane::Partition(_) = batch.lane {
        message = message.expected_last_subject_sequence(batch.after);
    }
    keel_bus_nats::count_sent(&subject);
    let acked = match js.send_publish(subject.clone(), message).await {
        Ok(ack) => ack.await,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    match acked {
        Ok(ack) => Sent::Landed(ack.sequence),
        Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
            match restore::last_message(js, &subject).await {
                Ok(Some(last)) if last.id.as_deref() == Some(batch.id.as_str()) => {
                    Sent::Landed(last.sequence)
                }
                Ok(last) => Sent::Refused(format!(
                    "{subject} moved past sequence {} (now at {}, written by {}): another node owns it",
                    batch.after,
                    last.as_ref().map_or(0, |l| l.sequence),
                    last.and_then(|l| l.node).unwrap_or_else(|| "?".into()),
                )),
                Err(e) => Sent::Failed(e.to_string()),
            }
        }
        Err(e) => Sent::Failed(e.to_string()),
    }
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}
