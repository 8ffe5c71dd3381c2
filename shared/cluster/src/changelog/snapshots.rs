//! Each partition's snapshot, kept outside the node, so that its changelog can be purged below
//! it and a restore reads the snapshot and the messages after it instead of the whole history.
//!
//! A snapshot is the fold of a lane's records up to a changelog sequence ([`keel_store::Fold`]).
//! Its bytes are an object in the JetStream object store `KEEL_SNAPSHOTS`
//! (`p.{n}.{sequence}.{node}.{ms}`);
//! which object is current is the entry `p.{n}` of the KV bucket `KEEL_SNAPSHOT_HEADS`, moved
//! only forward, by revision compare-and-set. A snapshot is made from what the changelog holds
//! (the previous snapshot and the messages after it), never from a node's local copy, so it
//! is correct whoever makes it, a stale owner included; the compare-and-set keeps the head
//! from going back, and the changelog is purged only below a head already moved. A reader
//! that sees the head move while it reads starts over (the part it read may have been
//! purged).

use super::{read_after, subject, CHANGELOG_STREAM};
use crate::leases::{self, Bucket};
use crate::{Error, Partition};
use async_nats::jetstream::{self, kv, object_store};
use futures::StreamExt;
use keel_store::{Fold, Lane};
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The object store that holds the snapshots.
pub const SNAPSHOTS_BUCKET: &str = "KEEL_SNAPSHOTS";
/// The KV bucket naming each partition's current snapshot.
pub const SNAPSHOT_HEADS_BUCKET: &str = "KEEL_SNAPSHOT_HEADS";

/// How long a read of the changelog waits for its next message.
const READ_IDLE: Duration = Duration::from_secs(10);

/// A partition's current snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// The changelog stream sequence it folds every message of the lane up to (inclusive).
    pub sequence: u64,
    /// Its object in [`SNAPSHOTS_BUCKET`].
    pub object: String,
    /// Its size.
    pub bytes: u64,
    /// The node that made it.
    pub node: String,
}

/// What a snapshot took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Taken {
    /// The new head.
    pub head: Head,
    /// Changelog messages folded into it (after the previous snapshot).
    pub messages: u64,
    /// Changelog messages purged below it.
    pub purged: u64,
}

/// The cluster's snapshots: their bucket and their heads.
#[derive(Clone)]
pub struct Snapshots {
    js: jetstream::Context,
    heads: kv::Store,
    objects: object_store::ObjectStore,
}

impl std::fmt::Debug for Snapshots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshots").finish_non_exhaustive()
    }
}

fn key(partition: Partition) -> String {
    format!("p.{partition}")
}

impl Snapshots {
    /// Opens the buckets, creating them (with `replicas` copies) when missing.
    pub async fn open(js: &jetstream::Context, replicas: usize) -> Result<Snapshots, Error> {
        let heads = leases::open(
            js,
            Bucket {
                name: SNAPSHOT_HEADS_BUCKET,
                max_age: Duration::ZERO,
                replicas,
            },
        )
        .await?;
        let objects = match js.get_object_store(SNAPSHOTS_BUCKET).await {
            Ok(objects) => objects,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket: SNAPSHOTS_BUCKET.to_owned(),
                    description: Some("Keel: each partition's snapshot".to_owned()),
                    storage: jetstream::stream::StorageType::File,
                    num_replicas: replicas.max(1),
                    ..Default::default()
                })
                .await
                .map_err(|e| Error::unavailable("creating the snapshot bucket", e))?,
        };
        Ok(Snapshots {
            js: js.clone(),
            heads,
            objects,
        })
    }

    /// The current snapshot of `partition`, if it has one, with its entry's revision.
    pub async fn head(&self, partition: Partition) -> Result<Option<(Head, u64)>, Error> {
        let entry = self
            .heads
            .entry(key(partition))
            .await
            .map_err(|e| Error::unavailable("reading a snapshot head", e))?;
        let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
            return Ok(None);
        };
        let head = serde_json::from_slice(&entry.value).map_err(|e| Error::Corrupt {
            key: format!("{SNAPSHOT_HEADS_BUCKET}/{}", key(partition)),
            reason: e.to_string(),
        })?;
        Ok(Some((head, entry.revision)))
    }

    /// The bytes of a snapshot.
    pub async fn read(&self, head: &Head) -> Result<Vec<u8>, Error> {
        let mut object = self
            .objects
            .get(&head.object)
            .await
            .map_err(|e| Error::unavailable("opening a snapshot", e))?;
        let mut bytes = Vec::with_capacity(usize::try_from(head.bytes).unwrap_or(0));
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(|e| Error::unavailable("reading a snapshot", e))?;
        Ok(bytes)
    }

    /// Makes a new snapshot of `partition` by `node`: `fold` (empty, with the store's retention)
    /// gets the current snapshot and every message of the lane after it up to its last one,
    /// which is stored, made the head, and the changelog purged below it. `None` when there
    /// was nothing new, or another snapshot moved the head meanwhile (this one is dropped).
    /// `now` (ms since the Unix epoch) decides which command ids are past their retention.
    pub async fn take(
        &self,
        partition: Partition,
        mut fold: Fold,
        node: &str,
        now: u64,
    ) -> Result<Option<Taken>, Error> {
        let lane = Lane::Partition(partition);
        let current = self.head(partition).await?;
        let after = current.as_ref().map_or(0, |(h, _)| h.sequence);
        let last = super::head(&self.js, lane).await?;
        if last <= after {
            return Ok(None);
        }
        if let Some((head, _)) = &current {
            fold.apply(&self.read(head).await?)
                .map_err(|e| Error::Restore(format!("snapshot {}: {e}", head.object)))?;
        }
        let messages = self.fold_messages(lane, &mut fold, after, last).await?;
        let bytes = fold.encode(now);
        let head = Head {
            sequence: last,
            // Unique per attempt: a snapshot dropped for losing the race deletes its own object,
            // never the winner's (two nodes may fold the same messages).
            object: format!("{}.{last}.{node}.{now}", key(partition)),
            bytes: bytes.len() as u64,
            node: node.to_owned(),
        };
        self.objects
            .put(head.object.as_str(), &mut bytes.as_slice())
            .await
            .map_err(|e| Error::unavailable("storing a snapshot", e))?;
        let value = serde_json::to_vec(&head).expect("a head serializes");
        let moved = match &current {
            Some((_, revision)) => self
                .heads
                .update(key(partition), value.into(), *revision)
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
            None => self
                .heads
                .create(key(partition), value.into())
                .await
                .map(drop)
                .map_err(|e| e.to_string()),
        };
        if let Err(reason) = moved {
            tracing::info!(partition, %reason, "another snapshot moved the head first; dropping this one");
            let _ = self.objects.delete(&head.object).await;
            return Ok(None);
        }
        let purged = self.purge_below(lane, last).await?;
        if let Some((old, _)) = current {
            if let Err(e) = self.objects.delete(&old.object).await {
                tracing::warn!(object = %old.object, error = %e, "could not delete a replaced snapshot");
            }
        }
        Ok(Some(Taken {
            head,
            messages,
            purged,
        }))
    }

    /// Folds the messages of `lane` after stream sequence `after` up to `last` into `fold`.
    async fn fold_messages(
        &self,
        lane: Lane,
        fold: &mut Fold,
        after: u64,
        last: u64,
    ) -> Result<u64, Error> {
        let stream = self
            .js
            .get_stream_no_info(CHANGELOG_STREAM)
            .await
            .map_err(|e| Error::unavailable("opening the changelog", e))?;
        let mut messages =
            read_after(&stream, subject(lane), after, "reading for a snapshot").await?;
        let mut folded = 0;
        loop {
            let next = tokio::time::timeout(READ_IDLE, messages.next())
                .await
                .map_err(|_| Error::unavailable("reading for a snapshot", "no message"))?;
            let Some(message) = next else { break };
            let message = message.map_err(|e| Error::unavailable("reading for a snapshot", e))?;
            let sequence = message
                .info()
                .map_err(|e| Error::unavailable("reading a changelog message", e))?
                .stream_sequence;
            fold.apply(&message.payload)
                .map_err(|e| Error::Restore(format!("sequence {sequence}: {e}")))?;
            folded += 1;
            if sequence >= last {
                break;
            }
        }
        Ok(folded)
    }

    /// Purges `lane`'s messages below stream sequence `below` (the head's own message stays:
    /// the lane's sequence chain goes on from it).
    async fn purge_below(&self, lane: Lane, below: u64) -> Result<u64, Error> {
        let stream = self
            .js
            .get_stream_no_info(CHANGELOG_STREAM)
            .await
            .map_err(|e| Error::unavailable("opening the changelog", e))?;
        stream
            .purge()
            .filter(subject(lane))
            .sequence(below)
            .await
            .map(|r| r.purged)
            .map_err(|e| Error::unavailable("purging the changelog below a snapshot", e))
    }
}
