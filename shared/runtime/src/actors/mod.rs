//! The actors a node hosts: one per order, per SKU-location and per warehouse node.

pub(crate) mod allocation;
mod entity_actor;
mod hold;
mod hosted;
mod hosts;
mod order;

pub(crate) use entity_actor::{EntityActor, Exec, Summary};
pub(crate) use hosted::{stock_reads, Hosted};
pub(crate) use hosts::Hosts;
pub(crate) use order::{Archive, OrderActor, OrderExec, Place, Resume};

use actix::prelude::*;
use std::time::{Duration, Instant};

/// An actor that stops itself after a quiet spell (its state is in the store).
pub(crate) trait Passivating: Actor<Context = Context<Self>> {
    fn last_active(&self) -> Instant;
    /// Whether work is in flight (then it must not stop).
    fn busy(&self) -> bool;
    /// Removes the actor from its directory.
    fn forget(&self, addr: &Addr<Self>);
}

/// Checks for idleness twice per idle period and passivates the actor when quiet (so an idle
/// actor lives one to one and a half periods). With tens of thousands of recently active
/// orders, checking much more often costs measurable CPU in timer ticks.
pub(crate) fn schedule_passivation<A: Passivating>(ctx: &mut Context<A>, idle_after: Duration) {
    let every = (idle_after / 2).max(Duration::from_millis(50));
    ctx.run_interval(every, move |actor, ctx| {
        if !actor.busy() && actor.last_active().elapsed() >= idle_after {
            actor.forget(&ctx.address());
            ctx.stop();
        }
    });
}
