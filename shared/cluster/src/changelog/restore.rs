//! Reading the changelog back: the last message of a lane, and replaying lanes into a store.

use super::snapshots::{Head, Snapshots};
use super::{subject, CHANGELOG_STREAM, CHANGELOG_SUBJECTS, NODE_HEADER};
use crate::{Error, Partition};
use async_nats::jetstream::{self, consumer, stream::LastRawMessageErrorKind};
use futures::StreamExt;
use keel_store::{Lane, Store};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// How long a restore waits for its next message before it gives up (the takeover is then
/// tried again): an ordered consumer that stopped delivering must not hold a takeover forever.
const RESTORE_IDLE: Duration = Duration::from_secs(10);
/// How long a follower waits for news before it checks whether it missed any.
const FOLLOW_IDLE: Duration = Duration::from_secs(15);

/// The last message on a lane's subject.
pub(crate) struct Last {
    pub sequence: u64,
    pub id: Option<String>,
    pub node: Option<String>,
}

pub(crate) async fn last_message(
    js: &jetstream::Context,
    subject: &str,
) -> Result<Option<Last>, Error> {
    // No stream info is needed for a message lookup: a takeover reads 129 of these at once.
    let stream = js
        .get_stream_no_info(CHANGELOG_STREAM)
        .await
        .map_err(|e| Error::unavailable("opening the changelog", e))?;
    match stream.get_last_raw_message_by_subject(subject).await {
        Ok(message) => {
            let header = |name: &str| message.headers.get(name).map(|v| v.as_str().to_owned());
            Ok(Some(Last {
                sequence: message.sequence,
                id: header(async_nats::header::NATS_MESSAGE_ID.as_ref()),
                node: header(NODE_HEADER),
            }))
        }
        Err(e) if e.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(e) => Err(Error::unavailable("reading the changelog", e)),
    }
}

/// The sequence of the last message on `lane` (0: none yet).
pub async fn head(js: &jetstream::Context, lane: Lane) -> Result<u64, Error> {
    Ok(last_message(js, &subject(lane))
        .await?
        .map_or(0, |last| last.sequence))
}

/// Whether `node` wrote the last message on `lane`: then nobody claimed the lane since, and
/// `node` may go on writing it.
pub async fn last_written_by(
    js: &jetstream::Context,
    lane: Lane,
    node: &str,
) -> Result<bool, Error> {
    Ok(last_message(js, &subject(lane))
        .await?
        .is_some_and(|last| last.node.as_deref() == Some(node)))
}

/// What a restore replayed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Restored {
    /// Changelog messages applied.
    pub messages: u64,
    /// Key writes they held.
    pub writes: u64,
    /// Bytes of records they held.
    pub bytes: u64,
    /// The last sequence applied per lane.
    pub heads: BTreeMap<Lane, u64>,
    /// The snapshot it started from (its sequence and size), if it read one.
    pub snapshot: Option<(u64, u64)>,
    /// How long it took.
    pub elapsed: Duration,
}

impl Restored {
    /// Adds what a later restore of the same lanes did (it goes on from where this one ended).
    pub fn add(&mut self, later: Restored) {
        self.messages += later.messages;
        self.writes += later.writes;
        self.bytes += later.bytes;
        self.elapsed += later.elapsed;
        self.snapshot = later.snapshot.or(self.snapshot);
        self.heads.extend(later.heads);
    }
}

/// Replays into `store` the changelog of `lane` (every lane when `None`) from the message
/// after stream sequence `after`, up to the last message present when it starts.
pub async fn restore(
    js: &jetstream::Context,
    store: &Store,
    lane: Option<Lane>,
    after: u64,
) -> Result<Restored, Error> {
    let started = Instant::now();
    let mut stream = js
        .get_stream(CHANGELOG_STREAM)
        .await
        .map_err(|e| Error::unavailable("opening the changelog", e))?;
    let (filter, last) = match lane {
        Some(lane) => (subject(lane), head(js, lane).await?),
        None => {
            let info = stream
                .info()
                .await
                .map_err(|e| Error::unavailable("reading the changelog's state", e))?;
            (CHANGELOG_SUBJECTS.to_owned(), info.state.last_sequence)
        }
    };
    let mut restored = Restored::default();
    if last > after {
        let mut messages = read_after(&stream, filter, after, "reading the changelog").await?;
        loop {
            let next = tokio::time::timeout(RESTORE_IDLE, messages.next())
                .await
                .map_err(|_| {
                    Error::unavailable(
                        "reading the changelog",
                        format!("no message for {RESTORE_IDLE:?} before sequence {last}"),
                    )
                })?;
            let Some(message) = next else {
                break;
            };
            let message = message.map_err(|e| Error::unavailable("reading the changelog", e))?;
            let sequence = message
                .info()
                .map_err(|e| Error::unavailable("reading a changelog message", e))?
                .stream_sequence;
            let writes = store
                .apply_record(&message.payload)
                .map_err(|e| Error::Restore(format!("sequence {sequence}: {e}")))?;
            restored.messages += 1;
            restored.writes += writes as u64;
            restored.bytes += message.payload.len() as u64;
            if let Some(lane) = lane_of(&message.subject) {
                restored.heads.insert(lane, sequence);
            }
            if sequence >= last {
                break;
            }
        }
    }
    restored.elapsed = started.elapsed();
    Ok(restored)
}

/// Brings `store`'s copy of `partition` to the head of its changelog. `local` is what the
/// store holds of the partition: `None` nothing, `Some(sequence)` the partition as of that
/// changelog sequence (`Some(0)`: something, of no known sequence). When the partition's
/// snapshot is ahead of that, the store forgets the partition, applies the snapshot and then
/// the messages after it; otherwise it replays the messages after `local`. Starts over when a
/// newer snapshot appears meanwhile (what it was reading may have been purged).
pub async fn restore_partition(
    js: &jetstream::Context,
    snapshots: &Snapshots,
    store: &Store,
    partition: Partition,
    mut local: Option<u64>,
) -> Result<Restored, Error> {
    let started = Instant::now();
    let lane = Lane::Partition(partition);
    loop {
        let before = snapshots.head(partition).await?.map(|(head, _)| head);
        let held = local.unwrap_or(0);
        let mut from = held;
        let mut snapshot = None;
        let ahead = before
            .as_ref()
            .filter(|h| h.sequence > held || local == Some(0));
        // Keys of unknown age, or older than a snapshot about to be applied, go first: the
        // snapshot holds no deletions.
        if local == Some(0) || (ahead.is_some() && local.is_some()) {
            store
                .forget_partition(partition)
                .map_err(|e| Error::Restore(e.to_string()))?;
        }
        if let Some(head) = ahead {
            let bytes = match snapshots.read(head).await {
                Ok(bytes) => bytes,
                // Replaced (and deleted) since the head was read: start over from the new one.
                Err(_) if moved(snapshots, partition, head).await? => {
                    local = Some(0);
                    continue;
                }
                Err(e) => return Err(e),
            };
            store
                .apply_record(&bytes)
                .map_err(|e| Error::Restore(format!("snapshot {}: {e}", head.object)))?;
            (from, snapshot) = (head.sequence, Some((head.sequence, head.bytes)));
        }
        let mut restored = restore(js, store, Some(lane), from).await?;
        let after = snapshots.head(partition).await?.map(|(head, _)| head);
        if after.as_ref().map(|h| h.sequence) == before.as_ref().map(|h| h.sequence) {
            restored.snapshot = snapshot;
            restored.heads.entry(lane).or_insert(from);
            restored.elapsed = started.elapsed();
            return Ok(restored);
        }
        tracing::info!(
            partition,
            "a newer snapshot appeared while restoring; starting over"
        );
        local = Some(0);
    }
}

/// Whether `partition`'s snapshot head is no longer `head`.
async fn moved(snapshots: &Snapshots, partition: Partition, head: &Head) -> Result<bool, Error> {
    let now = snapshots.head(partition).await?;
    Ok(now.is_none_or(|(now, _)| now != *head))
}

/// Applies every message of `lane` after stream sequence `after` to `store`, and then each
/// new one as it comes, calling `applied` with its sequence; runs until the process ends (a
/// broken reader is made again from the last sequence applied). This is how every node keeps
/// the catalog, which any node may add to, current.
pub async fn follow(
    js: jetstream::Context,
    store: Store,
    lane: Lane,
    mut after: u64,
    applied: impl Fn(u64) + Send,
) {
    loop {
        if let Err(e) = follow_from(&js, &store, lane, &mut after, &applied).await {
            tracing::warn!(?lane, after, error = %e, "following the changelog failed; again shortly");
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The messages on `filter` after stream sequence `after`, through an ordered consumer
/// (nothing to acknowledge, nothing left on the server when dropped).
pub(super) async fn read_after<I>(
    stream: &jetstream::stream::Stream<I>,
    filter: String,
    after: u64,
    what: &str,
) -> Result<consumer::pull::Ordered, Error> {
    stream
        .create_consumer(consumer::pull::OrderedConfig {
            filter_subject: filter,
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: after + 1,
            },
            ..Default::default()
        })
        .await
        .map_err(|e| Error::unavailable(what, e))?
        .messages()
        .await
        .map_err(|e| Error::unavailable(what, e))
}

async fn follow_from(
    js: &jetstream::Context,
    store: &Store,
    lane: Lane,
    after: &mut u64,
    applied: &(impl Fn(u64) + Send),
) -> Result<(), Error> {
    let stream = js
        .get_stream_no_info(CHANGELOG_STREAM)
        .await
        .map_err(|e| Error::unavailable("opening the changelog", e))?;
    let mut messages =
        read_after(&stream, subject(lane), *after, "following the changelog").await?;
    loop {
        let Ok(next) = tokio::time::timeout(FOLLOW_IDLE, messages.next()).await else {
            // Quiet, or a reader that stopped delivering: make a new one if it missed news.
            if head(js, lane).await? > *after {
                return Ok(());
            }
            continue;
        };
        let Some(message) = next else {
            return Ok(());
        };
        let message = message.map_err(|e| Error::unavailable("following the changelog", e))?;
        let sequence = message
            .info()
            .map_err(|e| Error::unavailable("reading a changelog message", e))?
            .stream_sequence;
        store
            .apply_record(&message.payload)
            .map_err(|e| Error::Restore(format!("sequence {sequence}: {e}")))?;
        *after = sequence;
        applied(sequence);
    }
}

/// The lane a changelog subject names.
pub fn lane_of(subject: &str) -> Option<Lane> {
    match keel_protocol::changelog::token(subject)? {
        "catalog" => Some(Lane::Catalog),
        p => p.parse().ok().map(Lane::Partition),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_name_their_lanes() {
        for lane in [Lane::Partition(0), Lane::Partition(127), Lane::Catalog] {
            assert_eq!(lane_of(&subject(lane)), Some(lane));
        }
        assert_eq!(lane_of("keel.v1.log.x"), None);
        assert_eq!(lane_of("keel.v1.evt.order"), None);
    }
}
