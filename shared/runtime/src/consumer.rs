//! Settling what a durable consumer delivers (the warehouse confirmations): deliveries are
//! spread over shards by subject and each shard settles one delivery at a time, so the
//! messages of one subject (one warehouse location) are applied in the order they were
//! published. A delivery is
//! acknowledged only once its effect is on disk; a crash before that means a redelivery, which
//! the receivers' command-id dedupe turns into a no-op.

use crate::shards::Shards;
use futures::future::BoxFuture;
use futures::StreamExt;
use keel_bus::{Deliveries, Delivery, Headers, SharedBus};
use keel_protocol::{
    ErrorCode, DEAD_LETTER_ERROR_HEADER, DEAD_LETTER_REASON_HEADER, DEAD_LETTER_SUBJECT_HEADER,
};
use keel_store::Store;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::mpsc;
use tracing::Instrument;

/// How one delivery is applied, given what it is applied to (it acknowledges or dead-letters
/// the delivery itself).
pub(crate) type Settle<T> = fn(Arc<T>, SharedBus, Delivery) -> BoxFuture<'static, ()>;

/// Counters of the commands between nodes and of the warehouse consumer.
#[derive(Debug, Default)]
pub struct CommandStats {
    /// Commands other nodes sent in batches, applied here (or found already applied).
    pub consumed: AtomicU64,
    /// Command batches this node sent to other nodes and had answered.
    pub batches_sent: AtomicU64,
    /// Commands in those batches.
    pub sent: AtomicU64,
    /// Command batches refused here because they came from a stale owner (an older epoch).
    pub stale: AtomicU64,
    /// Warehouse confirmations applied from `keel.v1.wms.*` and acknowledged.
    pub wms_applied: AtomicU64,
    /// Messages that could not be applied at all and were set aside on `keel.v1.dlq.*`.
    pub dead_lettered: AtomicU64,
}

/// Shards that settle deliveries, each one at a time, fed by durable consumers. The queues are
/// not bounded here: JetStream bounds what a consumer has delivered and not yet acknowledged.
pub(crate) struct Pool {
    shards: Shards<Delivery>,
}

impl Pool {
    /// Starts the shards on the given actor threads; each delivery runs in a span named
    /// `span_name`, a child of the trace context in its headers.
    pub(crate) fn start<T: Send + Sync + 'static>(
        to: &Weak<T>,
        bus: &SharedBus,
        arbiters: &[actix::ArbiterHandle],
        span_name: &'static str,
        settle: Settle<T>,
    ) -> Pool {
        let shards = Shards::start(arbiters, |queue| {
            run_shard(to.clone(), Arc::clone(bus), queue, span_name, settle)
        });
        Pool { shards }
    }

    /// Queues a delivery on the shard of its subject (so one subject's messages are settled
    /// in order); false when the node is stopping.
    pub(crate) fn queue(&self, delivery: Delivery) -> bool {
        let subject = delivery.message.subject.clone();
        self.shards.send(subject.as_str(), delivery).is_ok()
    }
}

/// Feeds `deliveries` to `pool` until the stream ends or the returned handle aborts it (a
/// hand-off): unacknowledged messages are then redelivered to whoever takes the consumer over.
pub(crate) fn feed(
    mut deliveries: Deliveries,
    pool: Arc<Pool>,
    name: String,
) -> futures::future::AbortHandle {
    let (feeding, handle) = futures::future::abortable(async move {
        while let Some(delivery) = deliveries.next().await {
            if !pool.queue(delivery) {
                return;
            }
        }
        tracing::warn!(consumer = %name, "a durable consumer ended");
    });
    tokio::spawn(feeding);
    handle
}

async fn run_shard<T>(
    to: Weak<T>,
    bus: SharedBus,
    mut queue: mpsc::UnboundedReceiver<Delivery>,
    span_name: &'static str,
    settle: Settle<T>,
) {
    while let Some(delivery) = queue.recv().await {
        let Some(to) = to.upgrade() else {
            return;
        };
        let span = tracing::info_span!("consume", otel.name = span_name, subject = %delivery.message.subject);
        keel_telemetry::set_parent_from(&span, &delivery.message.headers);
        settle(to, Arc::clone(&bus), delivery)
            .instrument(span)
            .await;
    }
}

/// Acknowledges `delivery` once the store has flushed what was committed for it.
///
/// It runs on its own, so the shard goes on with the next delivery at once: the messages of a
/// subject are still applied one after the other, but a hot subject is no longer held to one
/// flush and one acknowledgement round trip per message (that capped a hot SKU-location near
/// a few hundred commands per second and made the p99 latency climb with clients). A flush
/// covers every earlier write, so acknowledging out of order loses nothing; a crash before the
/// acknowledgement means a redelivery, which the receiver's dedupe turns into a no-op.
pub(crate) fn acknowledge_when_durable(store: &Store, delivery: Delivery) {
    let store = store.clone();
    actix_rt::spawn(async move {
        let mut backoff = Duration::from_millis(10);
        while let Err(e) = store.flush().await {
            tracing::error!(error = %e, "flush failed; the message stays unacknowledged");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        if let Err(e) = delivery.ack().await {
            // JetStream redelivers it after the ack wait; the receiver's dedupe makes that
            // harmless.
            tracing::warn!(error = %e, "could not acknowledge a message");
        }
    });
}

/// Sets a message that cannot be applied aside on `subject` with its error code and the
/// reason, then acknowledges it. Returns whether it was set aside (if the dead letter could
/// not be published, the message stays unacknowledged and comes back).
pub(crate) async fn dead_letter(
    store: &Store,
    bus: &SharedBus,
    delivery: Delivery,
    subject: &str,
    code: ErrorCode,
    reason: &str,
) -> bool {
    match publish_dead_letter(bus, &delivery.message, subject, code, reason).await {
        Ok(()) => {
            acknowledge_when_durable(store, delivery);
            true
        }
        Err(e) => {
            tracing::error!(error = %e, "could not publish a dead letter");
            false
        }
    }
}

/// Publishes `message` on the dead-letter `subject` with its error code, the reason and the
/// subject it came on.
pub(crate) async fn publish_dead_letter(
    bus: &SharedBus,
    message: &keel_bus::Message,
    subject: &str,
    code: ErrorCode,
    reason: &str,
) -> Result<(), keel_bus::Error> {
    tracing::warn!(from = %message.subject, to = subject, %code, reason, "dead-lettering a message");
    let mut headers = Headers::from([
        (DEAD_LETTER_REASON_HEADER.to_owned(), reason.to_owned()),
        (
            DEAD_LETTER_ERROR_HEADER.to_owned(),
            code.as_str().to_owned(),
        ),
        (
            DEAD_LETTER_SUBJECT_HEADER.to_owned(),
            message.subject.clone(),
        ),
    ]);
    if let Some(id) = message.headers.get(keel_bus::MESSAGE_ID_HEADER) {
        headers.insert(keel_bus::MESSAGE_ID_HEADER.to_owned(), format!("dlq:{id}"));
    }
    keel_telemetry::inject(&tracing::Span::current(), &mut headers);
    bus.publish(subject, headers, message.payload.clone()).await
}
