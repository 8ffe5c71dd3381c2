//! The actor that hosts a synchronous entity (SKU-location, warehouse node): each message is
//! decided and committed before the next one starts, so the actor is the entity's single writer.

use super::hosted::Hosted;
use super::{schedule_passivation, Passivating, Traced};
use crate::entity::{Durable, Entity};
use crate::router::Router;
use crate::Error;
use actix::prelude::*;
use std::marker::PhantomData;
use std::sync::{Arc, Weak};
use std::time::Instant;

/// Executes a command, idempotently when it carries an id; answers the entity's reply.
#[derive(Debug, Clone)]
pub(crate) struct Exec<C> {
    pub command_id: Option<String>,
    pub command: C,
}

impl<C: 'static> Message for Exec<C> {
    type Result = Result<ExecReply, Error>;
}

/// The entity's answer to an [`Exec`].
#[derive(Debug, Clone)]
pub(crate) struct ExecReply {
    pub reply: serde_json::Value,
    /// The command id had been handled before; this is the reply recorded then.
    pub replayed: bool,
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

/// Hosts one entity of type `E`.
pub(crate) struct EntityActor<E: Hosted> {
    durable: Result<Durable<E>, Error>,
    router: Arc<Router>,
    last_active: Instant,
}

impl<E: Hosted> EntityActor<E> {
    /// Activation: loads the entity's state from the store.
    pub(crate) fn activate(router: &Weak<Router>, key: String) -> Self {
        let router = router
            .upgrade()
            .expect("actors are activated by a live router");
        let durable = match E::parse_key(&key) {
            Some(id) => Durable::load(&router.store, id, key),
            None => Err(Error::Internal(format!("bad entity key {key}"))),
        };
        if let Ok(d) = &durable {
            E::observed(&router, &d.key, d.state.as_ref());
        }
        EntityActor {
            durable,
            router,
            last_active: Instant::now(),
        }
    }
}

impl<E: Hosted> Actor for EntityActor<E> {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        schedule_passivation(ctx, self.router.idle_after);
    }
}

impl<E: Hosted> Passivating for EntityActor<E> {
    fn last_active(&self) -> Instant {
        self.last_active
    }

    fn busy(&self) -> bool {
        false
    }

    fn forget(&self, addr: &Addr<Self>) {
        if let Ok(d) = &self.durable {
            E::directory(&self.router).remove(&d.key, addr);
        }
    }
}

impl<E: Hosted> Handler<Traced<Exec<E::Command>>> for EntityActor<E> {
    type Result = Result<ExecReply, Error>;

    fn handle(&mut self, traced: Traced<Exec<E::Command>>, _: &mut Self::Context) -> Self::Result {
        self.last_active = Instant::now();
        let Traced { msg, parent } = traced;
        let durable = self.durable.as_mut().map_err(|e| e.clone())?;
        let _span = tracing::info_span!(
            parent: &parent,
            "actor.exec",
            kind = E::KIND,
            key = %durable.key,
            command_id = msg.command_id.as_deref().unwrap_or("")
        )
        .entered();
        let executed = durable.execute(
            &self.router.writing(),
            msg.command_id.as_deref(),
            &msg.command,
            E::default,
        );
        // Also after a failure: the state was then reloaded from the store.
        E::observed(&self.router, &durable.key, durable.state.as_ref());
        let executed = executed?;
        // SKU-locations and warehouse nodes never wait on another actor: their outbox (orders
        // to notify, events to publish) is delivered by the relay.
        self.router.relay().submit(executed.outbox);
        self.router.relay().publish(executed.published);
        Ok(ExecReply {
            reply: executed.reply,
            replayed: executed.replayed,
        })
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
