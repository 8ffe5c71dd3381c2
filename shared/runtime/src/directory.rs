//! Virtual actors: activated on first message, passivated when idle.
//!
//! A directory maps an entity key to the address of its one live actor. Actors are spread over
//! the node's arbiters by a hash of the key, so both cores work and one entity always lands on
//! the same thread while it lives. A passivated actor removes itself; a message that races with
//! passivation sees a closed mailbox and is re-sent to a fresh activation. Should two
//! activations ever overlap, the store's version check lets only one of them write.

use crate::traced::Traced;
use crate::Error;
use actix::prelude::*;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

/// Creates the actor for a key (loading its state happens in the actor's constructor).
pub(crate) type Factory<A> = Arc<dyn Fn(String) -> A + Send + Sync>;

const SHARDS: usize = 64;

/// How many times a message is re-sent to a fresh activation after a mailbox closed under it.
const ACTIVATION_RETRIES: usize = 5;

/// The live actors of one kind.
pub(crate) struct Directory<A: Actor<Context = Context<A>>> {
    shards: Vec<Mutex<HashMap<String, Addr<A>>>>,
    arbiters: Arc<[ArbiterHandle]>,
    hasher: RandomState,
    factory: Factory<A>,
    mailbox: usize,
}

impl<A: Actor<Context = Context<A>>> Directory<A> {
    pub(crate) fn new(arbiters: Arc<[ArbiterHandle]>, mailbox: usize, factory: Factory<A>) -> Self {
        Directory {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            arbiters,
            hasher: RandomState::new(),
            factory,
            mailbox,
        }
    }

    fn hash(&self, key: &str) -> usize {
        // Truncation is fine: the hash only picks a shard and an arbiter.
        self.hasher.hash_one(key) as usize
    }

    /// The live actor for `key`, activating it if needed.
    pub(crate) fn get(&self, key: &str) -> Addr<A> {
        let h = self.hash(key);
        let mut shard = self.shards[h % SHARDS].lock();
        if let Some(addr) = shard.get(key).filter(|a| a.connected()) {
            return addr.clone();
        }
        let arbiter = &self.arbiters[(h / SHARDS) % self.arbiters.len()];
        let (factory, owned, mailbox) = (Arc::clone(&self.factory), key.to_owned(), self.mailbox);
        let addr = A::start_in_arbiter(arbiter, move |ctx| {
            ctx.set_mailbox_capacity(mailbox);
            factory(owned)
        });
        shard.insert(key.to_owned(), addr.clone());
        addr
    }

    /// Sends `msg` to the actor of `key`, re-activating it if its mailbox closed (passivation).
    /// The actor's handler continues the current span's trace.
    pub(crate) async fn ask<M>(&self, key: &str, msg: M) -> Result<M::Result, Error>
    where
        A: Handler<Traced<M>>,
        M: Message + Clone + Send + 'static,
        M::Result: Send,
    {
        let traced = Traced {
            msg,
            parent: tracing::Span::current(),
        };
        for _ in 0..ACTIVATION_RETRIES {
            let addr = self.get(key);
            match addr.send(traced.clone()).await {
                Ok(result) => return Ok(result),
                Err(MailboxError::Closed) => self.remove(key, &addr),
                Err(e) => return Err(e.into()),
            }
        }
        Err(Error::Unavailable(format!("{key} could not be activated")))
    }

    /// Forgets `addr` for `key` if it is still the registered one (passivation, dead mailbox).
    pub(crate) fn remove(&self, key: &str, addr: &Addr<A>) {
        let mut shard = self.shards[self.hash(key) % SHARDS].lock();
        if shard.get(key) == Some(addr) {
            shard.remove(key);
        }
    }

    /// Forgets every actor whose key `gone` selects (its partition was handed off: the next
    /// activation here loads what the store holds then).
    pub(crate) fn evict(&self, gone: impl Fn(&str) -> bool) {
        for shard in &self.shards {
            shard.lock().retain(|key, _| !gone(key));
        }
    }

    /// How many actors of this kind are active.
    pub(crate) fn active(&self) -> usize {
        self.shards.iter().map(|s| s.lock().len()).sum()
    }
}
