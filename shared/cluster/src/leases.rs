//! Partition leases and cluster membership in JetStream KV: no consensus of Keel's own.
//!
//! Three buckets:
//! - `KEEL_LEASES`: one key per partition (`p.{n}` → [`Lease`]), written only with revision
//!   compare-and-set. The bucket's `max_age` is the lease time: a lease its owner stops
//!   renewing disappears on the server, and only then can another node create it.
//! - `KEEL_EPOCHS`: per partition the last grant (epoch and owner), never expiring, so every
//!   new owner (a restarted node too) gets a higher epoch than anyone before it and the
//!   cluster knows who last held a partition's state; and the cluster's settings (`cluster`
//!   → [`Settings`]), fixed by the first node.
//! - `KEEL_MEMBERS`: one key per node ([`Member`]), refreshed by its heartbeat, expiring
//!   like a lease.
//!
//! An owner counts its lease valid only until `ttl − ttl/5` after it *sent* its last renewal;
//! the server expires it no earlier than `ttl` after it stored it. So the old owner has
//! stopped by its own clock before a new owner can exist — and a paused owner that wakes up
//! late still carries its old epoch, which receivers refuse once they know a higher one.

use crate::partition::{Partition, Partitioning};
use crate::Error;
use async_nats::jetstream::{self, kv};
use bytes::Bytes;
use futures::TryStreamExt;
use serde::{de::DeserializeOwned, Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Bucket of partition leases.
pub const LEASES_BUCKET: &str = "KEEL_LEASES";
/// Bucket of epochs and cluster settings.
pub const EPOCHS_BUCKET: &str = "KEEL_EPOCHS";
/// Bucket of members' heartbeats.
pub const MEMBERS_BUCKET: &str = "KEEL_MEMBERS";

const SETTINGS_KEY: &str = "cluster";

/// Who owns a partition, since which epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub owner: String,
    pub epoch: u64,
}

/// A node's heartbeat record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub node: String,
    /// Where its HTTP API listens (for operators).
    pub address: String,
    /// Unix milliseconds when it joined.
    pub joined_ms: u64,
    pub version: String,
    /// The bucket revision of the heartbeat this was read from (0 when not read from the
    /// bucket): it rises with every heartbeat, so an observer can tell a member that stopped
    /// beating from a live one by its own clock alone.
    #[serde(skip)]
    pub revision: u64,
}

/// The settings every node of a cluster must share, fixed when the cluster is created.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub partitions: u32,
}

/// A lease this node holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub partition: Partition,
    pub epoch: u64,
    revision: u64,
    valid_until: Instant,
}

impl Held {
    /// Whether this node may still act for the partition (by its own clock).
    pub fn is_valid(&self) -> bool {
        Instant::now() < self.valid_until
    }
}

/// How a node joins.
#[derive(Debug, Clone)]
pub struct JoinOptions {
    pub node: String,
    /// The partition count this node expects; the cluster's first node fixes it.
    pub partitions: u32,
    /// Lease and heartbeat lifetime when this node creates the buckets (an existing cluster's
    /// own setting wins).
    pub lease_ttl: Duration,
    /// JetStream replicas of the buckets (3 in production).
    pub replicas: usize,
}

/// A node's handle on the cluster's coordination buckets.
#[derive(Clone)]
pub struct Coordinator {
    node: String,
    partitioning: Partitioning,
    ttl: Duration,
    leases: kv::Store,
    epochs: kv::Store,
    members: kv::Store,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("node", &self.node)
            .field("partitioning", &self.partitioning)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Opens (creating when missing) the buckets and checks this node's settings against the
    /// cluster's.
    ///
    /// # Errors
    /// [`Error::Config`] when the cluster was created with another partition count;
    /// [`Error::Unavailable`] when JetStream cannot be reached.
    pub async fn join(
        js: &jetstream::Context,
        options: &JoinOptions,
    ) -> Result<Coordinator, Error> {
        let bucket = |name, max_age| Bucket {
            name,
            max_age,
            replicas: options.replicas,
        };
        let leases = open(js, bucket(LEASES_BUCKET, options.lease_ttl)).await?;
        let epochs = open(js, bucket(EPOCHS_BUCKET, Duration::ZERO)).await?;
        let members = open(js, bucket(MEMBERS_BUCKET, options.lease_ttl)).await?;
        let wanted = Settings {
            partitions: options.partitions.max(1),
        };
        let settings = match read::<Settings>(&epochs, SETTINGS_KEY).await? {
            Some((settings, _)) => settings,
            None => match epochs.create(SETTINGS_KEY, encode(&wanted)).await {
                Ok(_) => wanted,
                // Another node created the cluster at the same moment: its settings hold.
                Err(_) => read::<Settings>(&epochs, SETTINGS_KEY)
                    .await?
                    .map(|(s, _)| s)
                    .ok_or_else(|| Error::Unavailable("cluster settings vanished".into()))?,
            },
        };
        if settings != wanted {
            return Err(Error::Config(format!(
                "this node expects {} partitions, the cluster was created with {}; the count is \
                 fixed at creation",
                wanted.partitions, settings.partitions
            )));
        }
        Coordinator::assemble(options.node.clone(), settings, [leases, epochs, members]).await
    }

    /// Opens an existing cluster's buckets without joining it (for status and tools).
    ///
    /// # Errors
    /// [`Error::Config`] when no cluster was created on this NATS system.
    pub async fn observe(js: &jetstream::Context) -> Result<Coordinator, Error> {
        let missing = |_| Error::Config("no Keel cluster on this NATS system yet".into());
        let leases = js.get_key_value(LEASES_BUCKET).await.map_err(missing)?;
        let epochs = js.get_key_value(EPOCHS_BUCKET).await.map_err(missing)?;
        let members = js.get_key_value(MEMBERS_BUCKET).await.map_err(missing)?;
        let settings = read::<Settings>(&epochs, SETTINGS_KEY)
            .await?
            .ok_or_else(|| Error::Config("the cluster has no settings record".into()))?;
        Coordinator::assemble(String::new(), settings.0, [leases, epochs, members]).await
    }

    /// A coordinator on the opened buckets; the lease time is the leases bucket's own.
    async fn assemble(
        node: String,
        settings: Settings,
        [leases, epochs, members]: [kv::Store; 3],
    ) -> Result<Coordinator, Error> {
        let ttl = leases
            .status()
            .await
            .map_err(|e| Error::unavailable("reading the leases bucket", e))?
            .max_age();
        Ok(Coordinator {
            node,
            partitioning: Partitioning::new(settings.partitions),
            ttl,
            leases,
            epochs,
            members,
        })
    }

    /// The cluster's partitioning.
    pub fn partitioning(&self) -> Partitioning {
        self.partitioning
    }

    /// How long a lease or heartbeat lives without renewal.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Publishes this node's heartbeat.
    pub async fn heartbeat(&self, member: &Member) -> Result<(), Error> {
        self.members
            .put(&member.node, encode(member))
            .await
            .map(drop)
            .map_err(|e| Error::unavailable("heartbeat", e))
    }

    /// Removes this node's heartbeat (a graceful leave).
    pub async fn leave(&self) -> Result<(), Error> {
        self.members
            .delete(&self.node)
            .await
            .map_err(|e| Error::unavailable("leaving", e))
    }

    /// The live members (those whose heartbeat has not expired).
    pub async fn members(&self) -> Result<BTreeMap<String, Member>, Error> {
        let keys = keys(&self.members).await?;
        let mut members = BTreeMap::new();
        for key in keys {
            if let Some((mut member, revision)) = read::<Member>(&self.members, &key).await? {
                member.revision = revision;
                members.insert(key, member);
            }
        }
        Ok(members)
    }

    /// Every live lease, by partition.
    pub async fn leases(&self) -> Result<BTreeMap<Partition, Lease>, Error> {
        let mut leases = BTreeMap::new();
        for key in keys(&self.leases).await? {
            let Some(partition) = parse_key(&key) else {
                continue;
            };
            if let Some((lease, _)) = read::<Lease>(&self.leases, &key).await? {
                leases.insert(partition, lease);
            }
        }
        Ok(leases)
    }

    /// The last grant of `partition`'s lease (its epoch and to whom), live or not; `None`
    /// when it never had an owner.
    pub async fn last_grant(&self, partition: Partition) -> Result<Option<Lease>, Error> {
        Ok(read::<Lease>(&self.epochs, &key(partition))
            .await?
            .map(|(grant, _)| grant))
    }

    /// Takes `partition` if nobody holds it (or this node's previous incarnation does), with
    /// an epoch higher than any before. `None`: another node holds it.
    pub async fn acquire(&self, partition: Partition) -> Result<Option<Held>, Error> {
        let key = key(partition);
        let current = read::<Lease>(&self.leases, &key).await?;
        if let Some((lease, _)) = &current {
            if lease.owner != self.node {
                return Ok(None);
            }
        }
        // Claim the next epoch first: if this node dies before the lease is written, the
        // epoch is only skipped, never handed out twice.
        let epoch = self.next_epoch(&key).await?;
        let lease = encode(&Lease {
            owner: self.node.clone(),
            epoch,
        });
        let sent = Instant::now();
        let written = match current {
            Some((_, revision)) => self.leases.update(&key, lease, revision).await.ok(),
            None => self.leases.create(&key, lease).await.ok(),
        };
        Ok(written.map(|revision| self.held(partition, epoch, revision, sent)))
    }

    /// Renews a held lease.
    ///
    /// # Errors
    /// [`Error::Lost`] when the lease expired or changed hands meanwhile.
    pub async fn renew(&self, held: &Held) -> Result<Held, Error> {
        let lease = encode(&Lease {
            owner: self.node.clone(),
            epoch: held.epoch,
        });
        let sent = Instant::now();
        match self
            .leases
            .update(&key(held.partition), lease, held.revision)
            .await
        {
            Ok(revision) => Ok(self.held(held.partition, held.epoch, revision, sent)),
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                Err(Error::Lost(held.partition))
            }
            Err(e) => Err(Error::unavailable("renewing a lease", e)),
        }
    }

    /// Gives a held lease up (a handoff or a graceful leave), so the next owner need not wait
    /// for it to expire.
    pub async fn release(&self, held: &Held) -> Result<(), Error> {
        self.leases
            .delete_expect_revision(&key(held.partition), Some(held.revision))
            .await
            .map_err(|e| Error::unavailable("releasing a lease", e))
    }

    /// Yields whenever a lease is given back (a hand-off), so the node the partition moves
    /// to takes it at once instead of at its next poll. A lease that expires shows
    /// no event: poll for those.
    pub async fn releases(&self) -> Result<futures::stream::BoxStream<'static, ()>, Error> {
        use futures::StreamExt;
        let watch = self
            .leases
            .watch_all()
            .await
            .map_err(|e| Error::unavailable("watching the leases", e))?;
        Ok(watch
            .filter_map(|entry| {
                let released = entry.is_ok_and(|e| e.operation != kv::Operation::Put);
                futures::future::ready(released.then_some(()))
            })
            .boxed())
    }

    fn held(&self, partition: Partition, epoch: u64, revision: u64, sent: Instant) -> Held {
        Held {
            partition,
            epoch,
            revision,
            valid_until: sent + self.ttl - self.ttl / 5,
        }
    }

    /// Records the next grant of `key`'s partition to this node and returns its epoch.
    async fn next_epoch(&self, key: &str) -> Result<u64, Error> {
        loop {
            let last = read::<Lease>(&self.epochs, key).await?;
            let epoch = last.as_ref().map_or(0, |(grant, _)| grant.epoch) + 1;
            let grant = encode(&Lease {
                owner: self.node.clone(),
                epoch,
            });
            let claimed = match last {
                Some((_, revision)) => self.epochs.update(key, grant, revision).await.is_ok(),
                None => self.epochs.create(key, grant).await.is_ok(),
            };
            if claimed {
                return Ok(epoch);
            }
            // Another node claimed one at the same moment: read again.
        }
    }
}

/// The KV key of a partition's lease and epoch.
fn key(partition: Partition) -> String {
    format!("p.{partition}")
}

fn parse_key(key: &str) -> Option<Partition> {
    key.strip_prefix("p.")?.parse().ok()
}

/// A KV bucket: opened when it exists, else created as the stream async-nats' own
/// `create_key_value` would make (which first queries the account, in a form nats-server 2.9
/// does not answer).
pub(crate) async fn open(js: &jetstream::Context, bucket: Bucket) -> Result<kv::Store, Error> {
    if let Ok(store) = js.get_key_value(bucket.name).await {
        return Ok(store);
    }
    let stream = jetstream::stream::Config {
        name: format!("KV_{}", bucket.name),
        subjects: vec![format!("$KV.{}.>", bucket.name)],
        max_messages_per_subject: 1,
        max_age: bucket.max_age,
        storage: jetstream::stream::StorageType::File,
        num_replicas: bucket.replicas.max(1),
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: jetstream::stream::DiscardPolicy::New,
        ..Default::default()
    };
    // Losing a race with another node creating it is fine: the bucket is then there.
    let created = js.create_stream(stream).await.err();
    js.get_key_value(bucket.name)
        .await
        .map_err(|e| match created {
            Some(created) => {
                Error::unavailable(&format!("creating bucket {}", bucket.name), created)
            }
            None => Error::unavailable(&format!("opening bucket {}", bucket.name), e),
        })
}

/// What [`open`] creates.
pub(crate) struct Bucket {
    pub name: &'static str,
    /// How long an entry lives (zero: for good).
    pub max_age: Duration,
    pub replicas: usize,
}

/// The keys with a message in the bucket (deleted ones too: [`read`] skips those). Not
/// `kv::Store::keys`: on nats-server 2.9 its watcher can wait forever once keys expired or
/// were deleted (nats-io/nats-server#3481), which leases and heartbeats do all the time. The
/// stream's subject list is a plain request.
async fn keys(store: &kv::Store) -> Result<Vec<String>, Error> {
    let subjects = store
        .stream
        .info_with_subjects(format!("{}>", store.prefix))
        .await
        .map_err(|e| Error::unavailable("listing keys", e))?;
    let subjects: Vec<(String, usize)> = subjects
        .try_collect()
        .await
        .map_err(|e| Error::unavailable("listing keys", e))?;
    Ok(subjects
        .into_iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&store.prefix).map(str::to_owned))
        .collect())
}

/// A key's value and revision; `None` when absent or deleted.
async fn read<T: DeserializeOwned>(
    store: &kv::Store,
    key: &str,
) -> Result<Option<(T, u64)>, Error> {
    let entry = store
        .entry(key)
        .await
        .map_err(|e| Error::unavailable(&format!("reading {key}"), e))?;
    let Some(entry) = entry.filter(|e| e.operation == kv::Operation::Put) else {
        return Ok(None);
    };
    serde_json::from_slice(&entry.value)
        .map(|value| Some((value, entry.revision)))
        .map_err(|e| Error::Corrupt {
            key: key.to_owned(),
            reason: e.to_string(),
        })
}

fn encode<T: Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).unwrap_or_default())
}
