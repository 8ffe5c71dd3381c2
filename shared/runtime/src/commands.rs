//! Commands between actors on a durable bus (JetStream): the relay publishes each one on its
//! target's subject (`keel.v1.cmd.…`, see `outbox::command_subject`); this consumer takes them
//! off the work queue and delivers each to its target actor (see `consumer` for ordering and
//! acknowledgement).

use crate::consumer;
use crate::outbox::OutboxEntry;
use crate::router::Router;
use crate::Error;
use futures::future::BoxFuture;
use futures::FutureExt;
use keel_bus::{Delivery, SharedBus};
use keel_domain::ErrorCode;
use keel_protocol::COMMAND_DEAD_LETTERS;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Counters of the durable consumers.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Commands applied (or found already applied) and acknowledged.
    pub consumed: AtomicU64,
    /// Warehouse confirmations applied from `keel.v1.wms.*` and acknowledged.
    pub wms_applied: AtomicU64,
    /// Messages that could not be applied at all and were set aside on `keel.v1.dlq.*`.
    pub dead_lettered: AtomicU64,
}

/// Applies one delivered command (a [`consumer::Settle`]).
pub(crate) fn settle(
    router: Arc<Router>,
    bus: SharedBus,
    delivery: Delivery,
) -> BoxFuture<'static, ()> {
    async move {
        let decoded = serde_json::from_slice::<OutboxEntry>(&delivery.message.payload);
        let (command_id, effect) = match decoded {
            Ok(OutboxEntry::Effect {
                command_id, effect, ..
            }) => (command_id, effect),
            Ok(OutboxEntry::Publish { .. }) => {
                let reason = "a publication, not a command";
                return set_aside(&router, &bus, delivery, reason).await;
            }
            Err(e) => {
                return set_aside(&router, &bus, delivery, &format!("undecodable: {e}")).await
            }
        };
        let stats = &router.relay().stats;
        let mut backoff = Duration::from_millis(5);
        let outcome = loop {
            match router.deliver_local(&command_id, &effect).await {
                Ok(reply) => break Ok(reply),
                Err(Error::Domain(refusal)) => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(command_id, ?effect, %refusal, "command refused by its target");
                    break Err(Error::Domain(refusal));
                }
                Err(e) => {
                    // Retried here, not handed back to JetStream: a later command for the same
                    // target must not overtake this one.
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(command_id, error = %e, "command delivery failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        // A sender waiting on it (an order's saga) goes on now; the store flushes its write
        // before that sender's own reply anyway (sled's log is sequential).
        router.settled(&command_id, outcome);
        consumer::acknowledge_when_durable(&router, delivery);
        router.commands.consumed.fetch_add(1, Ordering::Relaxed);
    }
    .boxed()
}

async fn set_aside(router: &Arc<Router>, bus: &SharedBus, delivery: Delivery, reason: &str) {
    let code = ErrorCode::MalformedRequest;
    if consumer::dead_letter(router, bus, delivery, COMMAND_DEAD_LETTERS, code, reason).await {
        router
            .commands
            .dead_lettered
            .fetch_add(1, Ordering::Relaxed);
    }
}
