//! A durable entity: how an actor turns one command into one atomic commit.
//!
//! decide → apply → write state + handled command id + outbox + ledger in one transaction →
//! hand the outbox to delivery. A command id that was already handled answers with the reply
//! recorded the first time, so redelivery changes nothing twice.

use crate::outbox::{OutboxEntry, Publication};
use crate::Error;
use keel_domain::effects::Effect;
use keel_domain::inventory::LedgerEntry;
use keel_store::{Commit, Store};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// A domain state machine the runtime can host.
pub(crate) trait Entity:
    Clone + Serialize + DeserializeOwned + Send + Unpin + 'static
{
    /// What names the entity (it is not part of the stored state).
    type Id: Clone + Send + Unpin + 'static;
    type Command: Serialize + Clone + Send + 'static;
    type Event: Serialize;

    /// Decides `command` (pure).
    fn decide(&self, command: &Self::Command) -> Result<Vec<Self::Event>, keel_domain::Error>;
    /// Applies one event; a stock event also yields its ledger entry.
    fn apply(&mut self, event: &Self::Event, at: u64) -> Option<LedgerEntry>;
    /// The messages this event owes other actors.
    fn effects(&self, id: &Self::Id, event: &Self::Event) -> Vec<Effect>;
    /// What subscribers hear about the state after a change.
    fn publication(&self, id: &Self::Id) -> Option<Publication>;
    /// The answer to the command that produced `events`.
    fn reply(&self, _events: &[Self::Event]) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// Marker keys this state sets or clears (written in the same transaction).
    fn marks(&self, _id: &Self::Id) -> Vec<(String, bool)> {
        Vec::new()
    }
}

/// The record kept for a handled command: the command itself (to tell a replay from a
/// conflicting reuse of its id) and the reply it got.
#[derive(Serialize, Deserialize)]
struct Handled {
    command: serde_json::Value,
    reply: serde_json::Value,
}

/// What executing a command produced.
pub(crate) struct Executed {
    pub outbox: Vec<(u64, OutboxEntry)>,
    pub reply: serde_json::Value,
    /// The command id had been handled before: this is the recorded reply.
    pub replayed: bool,
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
            Some(v) => (Some(serde_json::from_slice(&v.bytes)?), v.version),
            None => (None, 0),
        };
        Ok(Durable {
            id,
            key,
            state,
            version,
        })
    }

    /// Creates the entity with `state` (e.g. a placed order) and no events.
    pub(crate) fn create(&mut self, store: &Store, state: E) -> Result<(), Error> {
        let outbox = state
            .publication(&self.id)
            .map(OutboxEntry::Publish)
            .into_iter()
            .collect();
        let marks = state.marks(&self.id);
        self.write(store, state, Vec::new(), outbox, Vec::new(), marks)?;
        Ok(())
    }

    /// Executes `command` against the state (or `initial` when the entity is new).
    ///
    /// `command_id` makes the command idempotent: a repeat answers the recorded reply, a
    /// different command under the same id is a conflict.
    pub(crate) fn execute(
        &mut self,
        store: &Store,
        command_id: Option<&str>,
        command: &E::Command,
        initial: impl FnOnce() -> E,
    ) -> Result<Executed, Error> {
        let command_json = serde_json::to_value(command)?;
        if let Some(id) = command_id {
            if let Some(raw) = store.dedupe(id)? {
                return replay(id, &raw, &command_json);
            }
        }
        let mut state = self.state.clone().unwrap_or_else(initial);
        let events = state.decide(command)?;
        let at = crate::keys::now_ms();
        let mut ledger = Vec::new();
        let mut effects = Vec::new();
        for event in &events {
            if let Some(entry) = state.apply(event, at) {
                ledger.push((entry.seq, serde_json::to_vec(&entry)?));
            }
            effects.extend(state.effects(&self.id, event));
        }
        let answer = state.reply(&events);
        let handled = match command_id {
            Some(id) => vec![(
                id.to_owned(),
                serde_json::to_vec(&Handled {
                    command: command_json.clone(),
                    reply: answer.clone(),
                })?,
            )],
            None if events.is_empty() => {
                // Nothing to record: a no-op without an id leaves the store untouched.
                return Ok(Executed {
                    outbox: Vec::new(),
                    reply: answer,
                    replayed: false,
                });
            }
            None => Vec::new(),
        };
        let version = self.version + 1;
        let mut outbox: Vec<OutboxEntry> = effects
            .into_iter()
            .enumerate()
            .map(|(i, effect)| OutboxEntry::Effect {
                command_id: format!("{}#{version}.{i}", self.key),
                effect,
            })
            .collect();
        if !events.is_empty() {
            outbox.extend(state.publication(&self.id).map(OutboxEntry::Publish));
        }
        let marks = state.marks(&self.id);
        let outbox = match self.write(store, state, handled, outbox, ledger, marks) {
            Err(Error::AlreadyHandled(id)) => {
                // The same document id reached another entity first (e.g. one receipt id
                // posted for two SKUs): answer as that first handling did.
                let raw = store.dedupe(&id)?.unwrap_or_default();
                return replay(&id, &raw, &command_json);
            }
            other => other?,
        };
        Ok(Executed {
            outbox,
            reply: answer,
            replayed: false,
        })
    }

    fn write(
        &mut self,
        store: &Store,
        state: E,
        handled: Vec<(String, Vec<u8>)>,
        outbox: Vec<OutboxEntry>,
        ledger: Vec<(u64, Vec<u8>)>,
        marks: Vec<(String, bool)>,
    ) -> Result<Vec<(u64, OutboxEntry)>, Error> {
        let commit = Commit {
            key: self.key.clone(),
            expected_version: self.version,
            version: self.version + 1,
            state: serde_json::to_vec(&state)?,
            handled,
            outbox: outbox
                .iter()
                .map(serde_json::to_vec)
                .collect::<Result<_, _>>()?,
            ledger,
            marks,
        };
        let ids = match store.commit(&commit) {
            Ok(ids) => ids,
            Err(keel_store::Error::VersionConflict { .. }) => {
                // Another activation wrote first: adopt its state; the caller may retry.
                *self = Durable::load(store, self.id.clone(), self.key.clone())?;
                return Err(Error::Unavailable(format!(
                    "{} changed concurrently, retry",
                    self.key
                )));
            }
            Err(keel_store::Error::AlreadyHandled(id)) => return Err(Error::AlreadyHandled(id)),
            Err(e) => return Err(e.into()),
        };
        self.state = Some(state);
        self.version += 1;
        Ok(ids.into_iter().zip(outbox).collect())
    }
}

fn replay(id: &str, raw: &[u8], command: &serde_json::Value) -> Result<Executed, Error> {
    let handled: Handled = serde_json::from_slice(raw)?;
    if &handled.command != command {
        return Err(keel_domain::Error::Conflict(format!(
            "{} was already used for a different request",
            id.rsplit(':').next().unwrap_or(id)
        ))
        .into());
    }
    Ok(Executed {
        outbox: Vec::new(),
        reply: handled.reply,
        replayed: true,
    })
}
