//! A durable entity: how an actor turns one command into one atomic commit.
//!
//! decide → apply → write state + handled command id + outbox + ledger in one atomic commit →
//! hand the outbox to delivery. A command id that was already handled answers with the reply
//! recorded the first time, so redelivery changes nothing twice.

use crate::outbox::{OutboxEntry, Publication};
use crate::replies::{Answer, Reply};
use crate::Error;
use keel_domain::effects::Effect;
use keel_domain::inventory::LedgerEntry;
use keel_store::{Commit, Store, TimerChange};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A domain state machine the runtime can host.
pub(crate) trait Entity:
    Clone + Serialize + DeserializeOwned + Send + Unpin + 'static
{
    /// The entity's kind, as named in spans and metrics (`order`, `sku_location`, …).
    const KIND: &'static str;
    /// What names the entity (it is not part of the stored state).
    type Id: Clone + Send + Unpin + 'static;
    type Command: Serialize + Clone + Send + Unpin + 'static;
    type Event: Serialize;

    /// Decides `command` (pure).
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, keel_domain::Error>;
    /// Applies one event; a stock event also yields its ledger entry.
    fn apply(&mut self, event: &Self::Event, at: u64) -> Option<LedgerEntry>;
    /// The messages this event owes other actors.
    fn effects(&self, id: &Self::Id, event: &Self::Event) -> Vec<Effect>;
    /// What subscribers hear about the state after `events` (none: the entity was created).
    fn publications(&self, id: &Self::Id, events: &[Self::Event]) -> Vec<Publication>;
    /// The answer to the command that produced `events`.
    fn reply(&self, _events: &[Self::Event]) -> Reply {
        Reply::Done
    }
    /// Marker keys this state sets or clears (written in the same commit).
    fn marks(&self, _id: &Self::Id) -> Vec<(String, bool)> {
        Vec::new()
    }
    /// The timers this state wants (due time, name): a decision that changes them sets and
    /// cancels the difference in its own commit, so a timer lives exactly as long as the
    /// state that wants it.
    fn timers(&self) -> Vec<(u64, &'static str)> {
        Vec::new()
    }

    /// A small copy of what others may ask for (never the whole state of a hot entity).
    type Summary: Clone + Send + 'static;
    fn summary(&self) -> Self::Summary;

    /// The stored blob. Collections that grow with the entity's traffic belong in rows, so
    /// that one command writes O(1) bytes however many orders a hot SKU-location has seen.
    fn encode(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Rebuilds the state from its blob and rows.
    fn decode(blob: &[u8], _rows: Vec<(String, Vec<u8>)>) -> Result<Self, Error> {
        Ok(serde_json::from_slice(blob)?)
    }

    /// The rows `events` changed, read from the state after applying them (`None`: delete).
    fn rows(&self, _events: &[Self::Event]) -> Vec<(String, Option<Vec<u8>>)> {
        Vec::new()
    }
}

/// The record kept for a handled command: a digest of the command (to tell a replay from a
/// conflicting reuse of its id) and the reply it got.
///
/// Stores written before digests hold the whole command instead; both are read.
#[derive(Serialize, Deserialize)]
struct Handled {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    digest: Option<String>,
    reply: Reply,
}

impl Handled {
    fn new(command: &serde_json::Value, reply: Reply) -> Result<Self, Error> {
        Ok(Handled {
            command: None,
            digest: Some(digest(command)?),
            reply,
        })
    }

    /// Whether `command` is the one this record was kept for.
    fn recorded(&self, command: &serde_json::Value) -> Result<bool, Error> {
        Ok(match (&self.command, &self.digest) {
            (Some(recorded), _) => recorded == command,
            (None, Some(recorded)) => *recorded == digest(command)?,
            (None, None) => false,
        })
    }
}

/// The first 128 bits of the SHA-256 of the command's JSON (keys sorted: a `Value`'s maps are
/// ordered), in hex: a command's JSON is 100–300 bytes and every handled id keeps a record
/// for the retention, so the record keeps this instead.
fn digest(command: &serde_json::Value) -> Result<String, Error> {
    use sha2::Digest;
    let hash = sha2::Sha256::digest(serde_json::to_vec(command)?);
    Ok(hash[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// Where and when a decision is written: the store, whether publications go through the
/// outbox (the bus keeps them) or straight on, and the node clock's time of the decision.
pub(crate) struct Writing<'a> {
    pub store: &'a Store,
    pub durable_events: bool,
    /// Milliseconds since the Unix epoch (ledger entries, orders closing).
    pub at: u64,
}

/// What a batch of commands owes others.
#[derive(Default)]
pub(crate) struct Batch {
    /// Committed messages, with their outbox ids.
    pub outbox: Vec<(u64, OutboxEntry)>,
    /// Publications for a bus that is not durable: not stored, delivered after the outbox.
    pub published: Vec<OutboxEntry>,
}

/// An entity loaded from the store with the version its state was read at.
pub(crate) struct Durable<E: Entity> {
    pub id: E::Id,
    pub key: String,
    pub state: Option<E>,
    pub version: u64,
}

impl<E: Entity> Durable<E> {
    /// Loads the entity stored under `key` (absent entities have version 0).
    pub(crate) fn load(store: &Store, id: E::Id, key: String) -> Result<Self, Error> {
        let (state, version) = match store.load(&key)? {
            Some(v) => {
                let rows = store.rows(&key, "").collect::<Result<Vec<_>, _>>()?;
                (Some(E::decode(&v.bytes, rows)?), v.version)
            }
            None => (None, 0),
        };
        Ok(Durable {
            id,
            key,
            state,
            version,
        })
    }

    /// Loads the entity stored under `key`, live or else archived (an archived state has no
    /// rows: only entities without rows are archived).
    pub(crate) fn load_with_archive(store: &Store, id: E::Id, key: String) -> Result<Self, Error> {
        let live = Durable::load(store, id, key)?;
        if live.state.is_some() {
            return Ok(live);
        }
        Ok(match store.load_archived(&live.key)? {
            Some(v) => Durable {
                state: Some(E::decode(&v.bytes, Vec::new())?),
                version: v.version,
                ..live
            },
            None => live,
        })
    }

    /// Creates the entity with `state` (e.g. a placed order) and no events.
    pub(crate) fn create(&mut self, w: &Writing, state: E) -> Result<Batch, Error> {
        let (mut outbox, mut published) = (Vec::new(), Vec::new());
        let publications = state.publications(&self.id, &[]);
        route_publications(
            publications,
            (&self.key, self.version + 1),
            w.durable_events,
            &mut outbox,
            &mut published,
        );
        let before = self.state.as_ref().map(|s| s.marks(&self.id));
        let marks = changed_marks(before, state.marks(&self.id));
        let timers_before = self.state.as_ref().map(Entity::timers);
        let timers = changed_timers(timers_before, state.timers());
        self.state = Some(state);
        let parts = Parts {
            outbox,
            marks,
            timers,
            ..Parts::default()
        };
        Ok(Batch {
            outbox: self.write(w, parts)?,
            published,
        })
    }

    /// Executes `command` against the state (or `initial` when the entity is new); answers
    /// what it owes others (a refusal is the error).
    ///
    /// `command_id` makes the command idempotent: a repeat answers the recorded reply, a
    /// different command under the same id is a conflict. Publications go to the outbox when
    /// the bus keeps them, else they are handed back in `published`.
    pub(crate) fn execute(
        &mut self,
        w: &Writing,
        command_id: Option<&str>,
        command: &E::Command,
        initial: impl Fn() -> E,
    ) -> Result<Batch, Error> {
        let (mut answers, batch) = self.execute_all(w, &[(command_id, command)], &initial)?;
        answers
            .pop()
            .unwrap_or_else(|| Err(Error::Internal("a batch of one without its answer".into())))?;
        Ok(batch)
    }

    /// Executes `requests` in order against the state (or `initial` when the entity is new)
    /// and writes all they decided as one record: a hot entity with many commands waiting
    /// decides them in one pass and writes its state, its rows and its publication once.
    /// Answers each request (a refused one changes nothing), and what the batch owes others.
    pub(crate) fn execute_all(
        &mut self,
        w: &Writing,
        requests: &[(Option<&str>, &E::Command)],
        initial: &dyn Fn() -> E,
    ) -> Result<(Vec<Result<Answer, Error>>, Batch), Error> {
        let store = w.store;
        // Decide on the live state and apply in place (no copy of a large state per command);
        // if the commit fails the state is reloaded from the store.
        let marks_before = self.state.as_ref().map(|s| s.marks(&self.id));
        let timers_before = self.state.as_ref().map(Entity::timers);
        let mut answers: Vec<Result<Answer, Error>> = Vec::with_capacity(requests.len());
        let (mut handled, mut ledger, mut effects, mut events) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (i, (command_id, command)) in requests.iter().enumerate() {
            // Only an identified command needs its JSON: to recognise a replay, and to record it.
            let command_json = command_id
                .map(|_| serde_json::to_value(command))
                .transpose()?;
            if let (Some(id), Some(json)) = (command_id, &command_json) {
                let earlier = requests[..i]
                    .iter()
                    .position(|(other, _)| other == command_id);
                let recorded = match earlier {
                    // The same id twice in one batch: the second is a repeat of the first.
                    Some(j) => match &answers[j] {
                        Ok(first) => Some(Handled {
                            command: Some(serde_json::to_value(requests[j].1)?),
                            digest: None,
                            reply: first.reply.clone(),
                        }),
                        Err(e) => {
                            answers.push(Err(e.clone()));
                            continue;
                        }
                    },
                    None => recorded(store, id, w.at)?,
                };
                if let Some(handled) = recorded {
                    answers.push(replay(id, handled, json));
                    continue;
                }
            }
            let state = self.state.get_or_insert_with(initial);
            let decided = match state.decide(command) {
                Ok(decided) => decided,
                Err(refusal) => {
                    answers.push(Err(refusal.into()));
                    continue;
                }
            };
            for event in &decided {
                if let Some(entry) = state.apply(event, w.at) {
                    ledger.push((entry.seq, serde_json::to_vec(&entry)?));
                }
                effects.extend(state.effects(&self.id, event));
            }
            let reply = state.reply(&decided);
            if let (Some(id), Some(command)) = (command_id, command_json) {
                let record = Handled::new(&command, reply.clone())?;
                handled.push(((*id).to_owned(), serde_json::to_vec(&record)?));
            }
            answers.push(Ok(Answer {
                reply,
                replayed: false,
            }));
            events.extend(decided);
        }
        let Some(state) = self
            .state
            .as_ref()
            .filter(|_| !handled.is_empty() || !events.is_empty())
        else {
            // Nothing to record: no-ops without ids (and refusals) leave the store untouched.
            return Ok((answers, Batch::default()));
        };
        let version = self.version + 1;
        let trace = keel_telemetry::traceparent(&tracing::Span::current());
        let mut outbox: Vec<OutboxEntry> = effects
            .into_iter()
            .enumerate()
            .map(|(i, effect)| OutboxEntry::Effect {
                command_id: format!("{}#{version}.{i}", self.key),
                effect,
                trace: trace.clone(),
            })
            .collect();
        let mut published = Vec::new();
        if !events.is_empty() {
            let publications = state.publications(&self.id, &events);
            route_publications(
                publications,
                (&self.key, version),
                w.durable_events,
                &mut outbox,
                &mut published,
            );
        }
        let parts = Parts {
            handled,
            outbox,
            ledger,
            marks: changed_marks(marks_before, state.marks(&self.id)),
            rows: state.rows(&events),
            timers: changed_timers(timers_before, state.timers()),
        };
        match self.write(w, parts) {
            Ok(outbox) => Ok((answers, Batch { outbox, published })),
            Err(Error::AlreadyHandled(id)) if requests.len() == 1 => {
                // The same document id reached another entity first (e.g. one receipt id
                // posted for two SKUs): answer as that first handling did.
                let answer = match recorded(store, &id, w.at)? {
                    Some(handled) => replay(&id, handled, &serde_json::to_value(requests[0].1)?),
                    None => Err(Error::Internal(format!("{id} is handled but not recorded"))),
                };
                Ok((vec![answer], Batch::default()))
            }
            Err(Error::AlreadyHandled(_)) => {
                // The state was reloaded: decide the batch again one by one, so that only the
                // command whose id was handled elsewhere is answered from that record.
                let mut answers = Vec::with_capacity(requests.len());
                let mut batch = Batch::default();
                for request in requests {
                    let (mut one, owed) = self.execute_all(w, &[*request], initial)?;
                    answers.append(&mut one);
                    batch.outbox.extend(owed.outbox);
                    batch.published.extend(owed.published);
                }
                Ok((answers, batch))
            }
            Err(e) => Err(e),
        }
    }

    /// Commits the (already updated) state with `parts`; on failure the state is reloaded.
    fn write(&mut self, w: &Writing, parts: Parts) -> Result<Vec<(u64, OutboxEntry)>, Error> {
        let store = w.store;
        let Parts {
            handled,
            outbox,
            ledger,
            marks,
            rows,
            timers,
        } = parts;
        let result = self.commit(store, |state| {
            Ok(Commit {
                at: w.at,
                state: state.encode()?,
                handled,
                outbox: outbox
                    .iter()
                    .map(serde_json::to_vec)
                    .collect::<Result<_, _>>()?,
                ledger,
                marks,
                rows,
                timers,
                ..Commit::default()
            })
        });
        if result.is_err() {
            // The in-memory state ran ahead of the store: go back to what is durable.
            *self = Durable::load(store, self.id.clone(), self.key.clone())?;
        }
        let ids = result?;
        self.version += 1;
        Ok(ids.into_iter().zip(outbox).collect())
    }

    /// Builds the commit from the current state (moving the parts in) and writes it.
    fn commit(
        &self,
        store: &Store,
        build: impl FnOnce(&E) -> Result<Commit, serde_json::Error>,
    ) -> Result<Vec<u64>, Error> {
        let state = self
            .state
            .as_ref()
            .ok_or_else(|| Error::Internal(format!("{} has no state to write", self.key)))?;
        let commit = Commit {
            key: self.key.clone(),
            expected_version: self.version,
            version: self.version + 1,
            ..build(state)?
        };
        store.commit(&commit).map_err(|e| match e {
            keel_store::Error::VersionConflict { .. } => {
                Error::Unavailable(format!("{} changed concurrently, retry", self.key))
            }
            keel_store::Error::AlreadyHandled(id) => Error::AlreadyHandled(id),
            e => e.into(),
        })
    }
}

/// Sends publications through the outbox when the bus keeps messages, else straight on. Each
/// gets the id `{entity}#{version}.e{i}`, the same however often the decision is replayed.
fn route_publications(
    publications: Vec<Publication>,
    (key, version): (&str, u64),
    durable_events: bool,
    outbox: &mut Vec<OutboxEntry>,
    published: &mut Vec<OutboxEntry>,
) {
    let target = if durable_events { outbox } else { published };
    target.extend(
        publications
            .into_iter()
            .enumerate()
            .map(|(i, publication)| OutboxEntry::Publish {
                message_id: format!("{key}#{version}.e{i}"),
                publication,
                trace: keel_telemetry::traceparent(&tracing::Span::current()),
            }),
    );
}

/// The marks of `after` that differ from `before` (`None`: nothing stored yet, so every mark
/// is clear): each sled write costs about 10 µs, so a mark is written only when it changes.
fn changed_marks(
    before: Option<Vec<(String, bool)>>,
    after: Vec<(String, bool)>,
) -> Vec<(String, bool)> {
    let before = before.unwrap_or_default();
    after
        .into_iter()
        .filter(|(key, set)| {
            let was = before.iter().any(|(k, s)| k == key && *s);
            was != *set
        })
        .collect()
}

/// The timers to cancel (wanted before, not after) and to set (wanted after, not before).
fn changed_timers(
    before: Option<Vec<(u64, &'static str)>>,
    after: Vec<(u64, &'static str)>,
) -> Vec<TimerChange> {
    let before = before.unwrap_or_default();
    let change = |set: bool| {
        move |&(due, name): &(u64, &'static str)| TimerChange {
            due,
            name: name.to_owned(),
            set,
        }
    };
    let cancelled = before
        .iter()
        .filter(|t| !after.contains(t))
        .map(change(false));
    let set = after
        .iter()
        .filter(|t| !before.contains(t))
        .map(change(true));
    cancelled.chain(set).collect()
}

/// Everything a decision writes besides the state itself.
#[derive(Default)]
struct Parts {
    handled: Vec<(String, Vec<u8>)>,
    outbox: Vec<OutboxEntry>,
    ledger: Vec<(u64, Vec<u8>)>,
    marks: Vec<(String, bool)>,
    rows: Vec<(String, Option<Vec<u8>>)>,
    timers: Vec<TimerChange>,
}

/// The record kept for the command `id`, if it is remembered at `now`.
fn recorded(store: &Store, id: &str, now: u64) -> Result<Option<Handled>, Error> {
    match store.dedupe(id, now)? {
        Some(raw) => Ok(Some(serde_json::from_slice(&raw)?)),
        None => Ok(None),
    }
}

/// The recorded answer to a repeat of `command`; another command under the same id is a
/// conflict.
fn replay(id: &str, handled: Handled, command: &serde_json::Value) -> Result<Answer, Error> {
    if !handled.recorded(command)? {
        return Err(keel_domain::Error::Conflict(format!(
            "{} was already used for a different request",
            id.rsplit(':').next().unwrap_or(id)
        ))
        .into());
    }
    Ok(Answer {
        reply: handled.reply,
        replayed: true,
    })
}

#[cfg(test)]
mod tests {
    use super::{changed_marks, changed_timers, replay, Durable, Handled, Writing};
    use crate::replies::Reply;
    use keel_domain::inventory::{SkuLocation, StockCommand};
    use keel_domain::{DocumentId, LocationId, OrderId, SkuId};

    #[test]
    fn a_batch_is_decided_in_order_and_written_as_one_version() {
        let dir = tempfile::tempdir().unwrap();
        let store = keel_store::Store::open(dir.path(), &keel_store::Options::default()).unwrap();
        let id = (SkuId::parse("A").unwrap(), LocationId::parse("L").unwrap());
        let mut d = Durable::<SkuLocation>::load(&store, id, "s/A@L".into()).unwrap();
        let w = Writing {
            store: &store,
            durable_events: true,
            at: 1,
        };
        let receipt = StockCommand::Receive {
            receipt: DocumentId::parse("r1").unwrap(),
            quantity: 3,
        };
        let reserve = |order: &str| StockCommand::Reserve {
            order: OrderId::parse(order).unwrap(),
            quantity: 2,
        };
        let ship = StockCommand::Ship {
            order: OrderId::parse("o9").unwrap(),
            fulfillment: keel_domain::FulfillmentId::new(&OrderId::parse("o9").unwrap(), 1),
            quantity: 1,
        };
        let (a, b) = (reserve("o1"), reserve("o2"));
        let requests = [
            (Some("receipt:r1"), &receipt),
            (Some("o1#a1.0"), &a),
            (Some("o1#a1.0"), &a),
            (Some("o2#a1.0"), &b),
            (None, &ship),
        ];
        let (answers, batch) = d.execute_all(&w, &requests, &SkuLocation::default).unwrap();
        let granted: Vec<Option<u64>> = answers
            .iter()
            .map(|a| {
                a.as_ref()
                    .ok()
                    .map(|a| a.reply.clone().grant().unwrap().granted)
            })
            .collect();
        assert_eq!(granted, [Some(0), Some(2), Some(2), Some(1), None]);
        assert!(
            answers[2].as_ref().unwrap().replayed,
            "a repeat within the batch"
        );
        assert!(answers[4].is_err(), "a refusal is answered alone");
        assert_eq!(d.version, 1, "one record for the whole batch");
        assert_eq!(store.load("s/A@L").unwrap().unwrap().version, 1);
        assert_eq!(batch.outbox.len(), 1, "one position event for the batch");
        assert!(store.dedupe("o2#a1.0", 1).unwrap().is_some());
        let position = d.state.as_ref().unwrap().position;
        assert_eq!((position.on_hand, position.allocated), (3, 3));
    }

    #[test]
    fn timers_a_state_stops_wanting_are_cancelled_and_new_ones_set() {
        let changes = changed_timers(Some(vec![(5, "a"), (9, "b")]), vec![(9, "b"), (7, "c")]);
        let summary: Vec<(u64, &str, bool)> = changes
            .iter()
            .map(|c| (c.due, c.name.as_str(), c.set))
            .collect();
        assert_eq!(summary, [(5, "a", false), (7, "c", true)]);
        assert!(changed_timers(None, Vec::new()).is_empty());
    }

    fn marks(list: &[(&str, bool)]) -> Vec<(String, bool)> {
        list.iter().map(|(k, s)| ((*k).to_owned(), *s)).collect()
    }

    #[test]
    fn only_marks_that_change_are_written() {
        // A new entity: only the marks it sets.
        let fresh = changed_marks(None, marks(&[("a", true), ("b", false)]));
        assert_eq!(fresh, marks(&[("a", true)]));
        // Unchanged marks are left alone; a set one cleared, a clear one set.
        let before = Some(marks(&[("a", true), ("b", false), ("c", true)]));
        let after = marks(&[("a", false), ("b", true), ("c", true)]);
        assert_eq!(
            changed_marks(before, after),
            marks(&[("a", false), ("b", true)])
        );
    }

    #[test]
    fn a_record_tells_a_replay_from_another_command_under_its_id_old_layout_or_new() {
        let reserve = serde_json::json!({"type": "reserve", "order": "o1", "quantity": 3});
        let other = serde_json::json!({"type": "reserve", "order": "o1", "quantity": 4});
        let new = serde_json::to_vec(&Handled::new(&reserve, Reply::Done).unwrap()).unwrap();
        assert!(
            new.len() < 80,
            "a digest, not the command: {}",
            String::from_utf8_lossy(&new)
        );
        let old =
            serde_json::to_vec(&serde_json::json!({"command": reserve, "reply": null})).unwrap();
        for raw in [new, old] {
            let read = |raw: &[u8]| serde_json::from_slice::<Handled>(raw).unwrap();
            let answer = replay("o1#a1.0", read(&raw), &reserve).unwrap();
            assert!(answer.replayed);
            assert!(replay("o1#a1.0", read(&raw), &other).is_err());
        }
    }
}
