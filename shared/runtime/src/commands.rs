//! Commands between actors on a durable bus (JetStream): the relay publishes each one on its
//! target's subject (`keel.v1.cmd.…`, see `outbox::command_subject`); this consumer takes them
//! off the work queue, delivers each to its target actor and acknowledges it only once the
//! target's decision is on disk. A crash before the acknowledgement means a redelivery, which
//! the target's command-id dedupe turns into a no-op.
//!
//! Deliveries are spread over shards by subject, and each shard settles one delivery at a
//! time, so one target's commands are applied in the order they were published.

use crate::outbox::OutboxEntry;
use crate::router::Router;
use crate::Error;
use futures::StreamExt;
use keel_bus::{Deliveries, Delivery, Headers, SharedBus};
use keel_protocol::{COMMAND_DEAD_LETTERS, DEAD_LETTER_REASON_HEADER};
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;

/// Settling shards per actor thread: enough deliveries in flight to hide a flush each.
const SHARDS_PER_WORKER: usize = 16;
/// Deliveries queued per shard before the consumer stops pulling (backpressure).
const SHARD_QUEUE: usize = 256;

/// Counters of the commands consumer.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Commands applied (or found already applied) and acknowledged.
    pub consumed: AtomicU64,
    /// Messages on a command subject that did not decode as a command (dead-lettered).
    pub dead_lettered: AtomicU64,
}

/// Starts settling `deliveries` on the given actor threads.
pub(crate) fn start(
    router: &Arc<Router>,
    bus: SharedBus,
    mut deliveries: Deliveries,
    arbiters: &[actix::ArbiterHandle],
) {
    let shards: Vec<mpsc::Sender<Delivery>> = arbiters
        .iter()
        .cycle()
        .take(arbiters.len() * SHARDS_PER_WORKER)
        .map(|arbiter| {
            let (tx, rx) = mpsc::channel(SHARD_QUEUE);
            arbiter.spawn(run_shard(Arc::downgrade(router), Arc::clone(&bus), rx));
            tx
        })
        .collect();
    let hasher = RandomState::new();
    arbiters[0].spawn(async move {
        while let Some(delivery) = deliveries.next().await {
            let shard = hasher.hash_one(&delivery.message.subject) as usize % shards.len();
            if shards[shard].send(delivery).await.is_err() {
                return; // the node is stopping; unacknowledged commands are redelivered
            }
        }
        tracing::warn!("the commands consumer ended");
    });
}

async fn run_shard(router: Weak<Router>, bus: SharedBus, mut queue: mpsc::Receiver<Delivery>) {
    while let Some(delivery) = queue.recv().await {
        let Some(router) = router.upgrade() else {
            return;
        };
        settle(&router, &bus, delivery).await;
    }
}

/// Applies one delivered command and acknowledges it once its effect is durable.
async fn settle(router: &Router, bus: &SharedBus, delivery: Delivery) {
    let (command_id, effect) =
        match serde_json::from_slice::<OutboxEntry>(&delivery.message.payload) {
            Ok(OutboxEntry::Effect { command_id, effect }) => (command_id, effect),
            Ok(OutboxEntry::Publish { .. }) => {
                return dead_letter(router, bus, delivery, "a publication, not a command").await
            }
            Err(e) => {
                return dead_letter(router, bus, delivery, &format!("undecodable: {e}")).await
            }
        };
    let stats = &router.relay().stats;
    let mut backoff = Duration::from_millis(5);
    loop {
        match router.deliver_local(&command_id, &effect).await {
            Ok(()) => break,
            Err(Error::Domain(refusal)) => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                tracing::error!(command_id, ?effect, %refusal, "command refused by its target");
                break;
            }
            Err(e) => {
                // Retried here, not handed back to JetStream: a later command for the same
                // target must not overtake this one.
                stats.retried.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(subject = %delivery.message.subject, error = %e, "command delivery failed, retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    acknowledge_when_durable(router, delivery).await;
    router.commands.consumed.fetch_add(1, Ordering::Relaxed);
}

/// Waits for the store to flush what was committed, then acknowledges `delivery`.
async fn acknowledge_when_durable(router: &Router, delivery: Delivery) {
    let mut backoff = Duration::from_millis(10);
    while let Err(e) = router.store.flush().await {
        tracing::error!(error = %e, "flush failed; the command stays unacknowledged");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(1));
    }
    if let Err(e) = delivery.ack().await {
        // JetStream redelivers it after the ack wait; the target's dedupe makes that harmless.
        tracing::warn!(error = %e, "could not acknowledge a command");
    }
}

/// Sets a message that is not a command aside on the dead-letter subject, with the reason.
async fn dead_letter(router: &Router, bus: &SharedBus, delivery: Delivery, reason: &str) {
    tracing::error!(subject = %delivery.message.subject, reason, "dead-lettering a command");
    let mut headers = Headers::from([
        (DEAD_LETTER_REASON_HEADER.to_owned(), reason.to_owned()),
        (
            "Keel-Original-Subject".to_owned(),
            delivery.message.subject.clone(),
        ),
    ]);
    if let Some(id) = delivery.message.headers.get(keel_bus::MESSAGE_ID_HEADER) {
        headers.insert(keel_bus::MESSAGE_ID_HEADER.to_owned(), format!("dlq:{id}"));
    }
    let payload = delivery.message.payload.clone();
    match bus.publish(COMMAND_DEAD_LETTERS, headers, payload).await {
        Ok(()) => {
            router
                .commands
                .dead_lettered
                .fetch_add(1, Ordering::Relaxed);
            acknowledge_when_durable(router, delivery).await;
        }
        // Not acknowledged: JetStream offers it again and the dead letter is retried then.
        Err(e) => tracing::error!(error = %e, "could not dead-letter a command"),
    }
}
