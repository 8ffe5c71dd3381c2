//! The order actor: single writer of one order and its fulfillments.
//!
//! Its handlers are asynchronous (the reservation saga waits on SKU-locations), so they run as
//! atomic responses: no other message of this order interleaves. The state is moved into the
//! handler's future and put back when it completes.

use super::allocation;
use super::{schedule_passivation, Hosts, Passivating};
use crate::entity::Durable;
use crate::traced::Traced;
use crate::Error;
use actix::prelude::*;
use keel_domain::order::{Order, OrderCommand, OrderRequest};
use keel_domain::OrderId;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Instant;
use tracing::Instrument;

/// Place an order (idempotent by id: same request answers the stored order, `created: false`).
#[derive(Debug, Clone)]
pub(crate) struct Place {
    pub request: OrderRequest,
}

impl Message for Place {
    type Result = Result<(Order, bool), Error>;
}

/// Execute an order command (cancel, confirmation, or a message from another actor).
#[derive(Debug, Clone)]
pub(crate) struct OrderExec {
    pub command_id: Option<String>,
    pub command: OrderCommand,
}

impl Message for OrderExec {
    type Result = Result<Order, Error>;
}

/// Finish an allocation a crash interrupted.
#[derive(Debug, Clone)]
pub(crate) struct Resume;

impl Message for Resume {
    type Result = Result<(), Error>;
}

/// Archive the order if it closed at or before `cutoff` (milliseconds since the Unix epoch);
/// answers whether it did. The actor then stops: a later message activates the order again,
/// from the archive.
#[derive(Debug, Clone)]
pub(crate) struct Archive {
    pub cutoff: u64,
}

impl Message for Archive {
    type Result = Result<bool, Error>;
}

/// Hosts one order.
pub(crate) struct OrderActor {
    key: String,
    /// `None` while a handler owns it.
    durable: Option<Result<Durable<Order>, Error>>,
    hosts: Arc<Hosts>,
    last_active: Instant,
}

impl OrderActor {
    /// Activation: loads the order from the store.
    pub(crate) fn activate(hosts: &Weak<Hosts>, key: String) -> Self {
        let hosts = hosts
            .upgrade()
            .expect("actors are activated by a live registry");
        let durable = match key.strip_prefix("o/").map(OrderId::parse) {
            Some(Ok(id)) => Durable::load_with_archive(&hosts.mesh.store, id, key.clone()),
            _ => Err(Error::Internal(format!("bad order key {key}"))),
        };
        OrderActor {
            key,
            durable: Some(durable),
            hosts,
            last_active: Instant::now(),
        }
    }

    /// Runs `work` with the order's state moved in; puts the state back when it completes.
    fn atomically<R, F, Fut>(
        &mut self,
        name: &'static str,
        parent: &tracing::Span,
        work: F,
    ) -> AtomicResponse<Self, Result<R, Error>>
    where
        R: 'static,
        F: FnOnce(Arc<Hosts>, Durable<Order>) -> Fut,
        Fut: Future<Output = (Durable<Order>, Result<R, Error>)> + 'static,
    {
        self.last_active = Instant::now();
        let taken = self.durable.take().expect("atomic handlers never overlap");
        let durable = match taken {
            Ok(d) => d,
            Err(e) => {
                self.durable = Some(Err(e.clone()));
                return AtomicResponse::new(Box::pin(fut::ready(Err(e))));
            }
        };
        let span =
            tracing::info_span!(parent: parent, "actor.order", key = %self.key, message = name);
        let work = work(Arc::clone(&self.hosts), durable).instrument(span);
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            |(durable, result), actor, _| {
                actor.durable = Some(Ok(durable));
                actor.last_active = Instant::now();
                result
            },
        )))
    }
}

impl Actor for OrderActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        schedule_passivation(ctx, self.hosts.idle_after);
    }
}

impl Passivating for OrderActor {
    fn last_active(&self) -> Instant {
        self.last_active
    }

    fn busy(&self) -> bool {
        self.durable.is_none()
    }

    fn forget(&self, addr: &Addr<Self>) {
        self.hosts.orders.remove(&self.key, addr);
    }
}

impl Handler<Traced<Place>> for OrderActor {
    type Result = AtomicResponse<Self, Result<(Order, bool), Error>>;

    fn handle(&mut self, traced: Traced<Place>, _ctx: &mut Self::Context) -> Self::Result {
        let Traced { msg, parent } = traced;
        self.atomically("place", &parent, |hosts, mut durable| async move {
            let result = allocation::place(&hosts, &mut durable, msg.request).await;
            (durable, result)
        })
    }
}

impl Handler<Traced<OrderExec>> for OrderActor {
    type Result = AtomicResponse<Self, Result<Order, Error>>;

    fn handle(&mut self, traced: Traced<OrderExec>, _ctx: &mut Self::Context) -> Self::Result {
        let Traced { msg, parent } = traced;
        self.atomically("exec", &parent, |hosts, mut durable| async move {
            let result = allocation::execute(&hosts, &mut durable, msg).await;
            (durable, result)
        })
    }
}

impl Handler<Traced<Resume>> for OrderActor {
    type Result = AtomicResponse<Self, Result<(), Error>>;

    fn handle(&mut self, traced: Traced<Resume>, _ctx: &mut Self::Context) -> Self::Result {
        self.atomically("resume", &traced.parent, |hosts, mut durable| async move {
            let result = allocation::resume(&hosts, &mut durable).await;
            (durable, result)
        })
    }
}

impl Handler<Traced<Archive>> for OrderActor {
    type Result = Result<bool, Error>;

    fn handle(&mut self, traced: Traced<Archive>, ctx: &mut Self::Context) -> Self::Result {
        let _span = tracing::info_span!(parent: &traced.parent, "actor.order", key = %self.key, message = "archive").entered();
        // Never while an atomic handler owns the state: actix runs this one only between them.
        let d = match &self.durable {
            Some(Ok(d)) => d,
            Some(Err(e)) => return Err(e.clone()),
            None => return Ok(false),
        };
        let Some(order) = &d.state else {
            return Ok(false);
        };
        let due = order.closed_at.filter(|at| *at <= traced.msg.cutoff);
        let (Some(closed_at), true) = (due, order.is_closed()) else {
            return Ok(false);
        };
        let marker = crate::keys::archive_due(closed_at, &d.id);
        let encoded = crate::entity::Entity::encode(order)?;
        self.hosts
            .mesh
            .store
            .archive(&d.key, d.version, &encoded, &[marker])?;
        self.hosts.orders.remove(&self.key, &ctx.address());
        ctx.stop();
        Ok(true)
    }
}
