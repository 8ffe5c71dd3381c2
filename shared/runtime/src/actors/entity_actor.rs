//! The actor that hosts a synchronous entity (SKU-location, warehouse node, cart hold): the
//! entity's single writer. Commands are batched: each one waits in the actor, and once the
//! mailbox is drained the actor decides every waiting command in one pass and writes them as
//! one record (a hot SKU-location with 64 reservations waiting decides 64 and writes once),
//! then answers each.

use super::hosted::Hosted;
use super::{schedule_passivation, Hosts, Passivating};
use crate::entity::{Durable, Entity};
use crate::replies::Answer;
use crate::traced::Traced;
use crate::Error;
use actix::prelude::*;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Instant;
use tokio::sync::oneshot;

/// Executes a command, idempotently when it carries an id; answers the entity's reply.
#[derive(Debug, Clone)]
pub(crate) struct Exec<C> {
    pub command_id: Option<String>,
    pub command: C,
}

impl<C: 'static> Message for Exec<C> {
    type Result = Result<Answer, Error>;
}

/// Asks for the entity's summary (e.g. a SKU-location's position), never its whole state.
#[derive(Debug)]
pub(crate) struct Summary<E>(PhantomData<E>);

impl<E> Summary<E> {
    pub(crate) fn new() -> Self {
        Summary(PhantomData)
    }
}

impl<E> Clone for Summary<E> {
    fn clone(&self) -> Self {
        Summary::new()
    }
}

impl<E: Entity> Message for Summary<E> {
    type Result = Result<E::Summary, Error>;
}

/// A command waiting for the actor's next decision, and who waits for its answer.
struct Waiting<C> {
    command_id: Option<String>,
    command: C,
    parent: tracing::Span,
    answer: oneshot::Sender<Result<Answer, Error>>,
}

/// Decide every waiting command (sent to itself; actix runs it once the mailbox is drained).
struct Decide;

impl Message for Decide {
    type Result = ();
}

/// Hosts one entity of type `E`.
pub(crate) struct EntityActor<E: Hosted> {
    durable: Result<Durable<E>, Error>,
    hosts: Arc<Hosts>,
    last_active: Instant,
    waiting: Vec<Waiting<E::Command>>,
}

impl<E: Hosted> EntityActor<E> {
    /// Activation: loads the entity's state from the store.
    pub(crate) fn activate(hosts: &Weak<Hosts>, key: String) -> Self {
        let hosts = hosts
            .upgrade()
            .expect("actors are activated by a live registry");
        let durable = match E::parse_key(&key) {
            Some(id) => Durable::load(&hosts.mesh.store, id, key),
            None => Err(Error::Internal(format!("bad entity key {key}"))),
        };
        if let Ok(d) = &durable {
            E::observed(&hosts, &d.key, d.state.as_ref());
        }
        EntityActor {
            durable,
            hosts,
            last_active: Instant::now(),
            waiting: Vec::new(),
        }
    }
}

impl<E: Hosted> Actor for EntityActor<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        schedule_passivation(ctx, self.hosts.idle_after);
    }
}

impl<E: Hosted> Passivating for EntityActor<E> {
    fn last_active(&self) -> Instant {
        self.last_active
    }

    fn busy(&self) -> bool {
        !self.waiting.is_empty()
    }

    fn forget(&self, addr: &Addr<Self>) {
        if let Ok(d) = &self.durable {
            E::directory(&self.hosts).remove(&d.key, addr);
        }
    }
}

impl<E: Hosted> Handler<Traced<Exec<E::Command>>> for EntityActor<E> {
    type Result = ResponseActFuture<Self, Result<Answer, Error>>;

    fn handle(
        &mut self,
        traced: Traced<Exec<E::Command>>,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        self.last_active = Instant::now();
        let Traced { msg, parent } = traced;
        if self.waiting.is_empty() {
            ctx.notify(Decide);
        }
        let (answer, answered) = oneshot::channel();
        self.waiting.push(Waiting {
            command_id: msg.command_id,
            command: msg.command,
            parent,
            answer,
        });
        // Polled by the actor's own task (no task of its own): answered within the same
        // wake-up as the decision.
        Box::pin(fut::wrap_future(async move {
            answered
                .await
                .unwrap_or_else(|_| Err(Error::Unavailable("the actor stopped".into())))
        }))
    }
}

impl<E: Hosted> Handler<Decide> for EntityActor<E> {
    type Result = ();

    fn handle(&mut self, _: Decide, _: &mut Self::Context) {
        let waiting = std::mem::take(&mut self.waiting);
        let durable = match &mut self.durable {
            Ok(d) => d,
            Err(e) => {
                for w in waiting {
                    let _ = w.answer.send(Err(e.clone()));
                }
                return;
            }
        };
        // One span per command, in its sender's trace; the batch is written under the first.
        let spans: Vec<tracing::Span> = waiting
            .iter()
            .map(|w| {
                tracing::info_span!(
                    parent: &w.parent,
                    "actor.exec",
                    kind = E::KIND,
                    key = %durable.key,
                    command_id = w.command_id.as_deref().unwrap_or(""),
                    batch = waiting.len()
                )
            })
            .collect();
        let _entered = spans.first().map(tracing::Span::enter);
        let requests: Vec<(Option<&str>, &E::Command)> = waiting
            .iter()
            .map(|w| (w.command_id.as_deref(), &w.command))
            .collect();
        let decided = durable.execute_all(&self.hosts.mesh.writing(), &requests, &E::default);
        // Also after a failure: the state was then reloaded from the store.
        E::observed(&self.hosts, &durable.key, durable.state.as_ref());
        match decided {
            Ok((answers, batch)) => {
                // SKU-locations, warehouse nodes and holds never wait on another actor: what
                // they owe others (orders to notify, events to publish) goes to the relay.
                self.hosts.mesh.relay.submit(batch.outbox);
                self.hosts.mesh.relay.publish(batch.published);
                for (w, answer) in waiting.into_iter().zip(answers) {
                    let _ = w.answer.send(answer);
                }
            }
            Err(e) => {
                for w in waiting {
                    let _ = w.answer.send(Err(e.clone()));
                }
            }
        }
    }
}

impl<E: Hosted> Handler<Traced<Summary<E>>> for EntityActor<E> {
    type Result = Result<E::Summary, Error>;

    fn handle(&mut self, _: Traced<Summary<E>>, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        let durable = self.durable.as_ref().map_err(|e| e.clone())?;
        Ok(match &durable.state {
            Some(state) => state.summary(),
            None => E::default().summary(),
        })
    }
}
