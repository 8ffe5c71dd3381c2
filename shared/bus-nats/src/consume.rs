//! Durable consumers: JetStream pull consumers whose messages are acknowledged explicitly.

use async_nats::jetstream::{self, consumer};
use futures::StreamExt;
use keel_bus::{Acknowledge, BoxFuture, Deliveries, Delivery};
use std::sync::Arc;
use std::time::Duration;

/// How long a delivered message may stay unacknowledged before JetStream sends it again. It
/// bounds how long the commands a crashed node had taken wait for the next one; a consumer
/// settles a message in milliseconds, and `MAX_ACK_PENDING` keeps its backlog well below this.
const ACK_WAIT: Duration = Duration::from_secs(5);
/// Messages delivered but not yet acknowledged, at most (flow control for a slow node).
const MAX_ACK_PENDING: i64 = 1024;
/// Messages one pull request asks for.
const PULL_BATCH: usize = 256;
/// How long one pull request waits on the server for messages.
const PULL_EXPIRES: Duration = Duration::from_secs(5);
/// How often the server confirms an idle pull request is alive.
const PULL_HEARTBEAT: Duration = Duration::from_secs(1);

/// (Re)creates the durable pull consumer on a work-queue stream and streams its messages:
/// everything not yet acknowledged, in stream order, then what comes.
pub(crate) async fn durable(
    jetstream: jetstream::Context,
    stream: &str,
    name: &str,
    filter: &str,
) -> Result<Deliveries, keel_bus::Error> {
    let unavailable = |what: &str, e: &dyn std::fmt::Display| {
        keel_bus::Error::Unavailable(format!("{what} {stream}/{name}: {e}"))
    };
    let stream_handle = jetstream
        .get_stream(stream)
        .await
        .map_err(|e| unavailable("stream", &e))?;
    let config = consumer::pull::Config {
        durable_name: Some(name.to_owned()),
        filter_subject: filter.to_owned(),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: ACK_WAIT,
        max_ack_pending: MAX_ACK_PENDING,
        ..consumer::pull::Config::default()
    };
    // Taking the consumer over starts it afresh: on a work queue the messages stay until
    // acknowledged, so a new consumer delivers everything not yet acknowledged — including what
    // a crashed predecessor had taken — in stream order. Keeping the old one would redeliver
    // those only after their ack wait, behind newer messages of the same subject (a
    // compensation could then overtake the reservation it undoes).
    match stream_handle.delete_consumer(name).await {
        Ok(_) => tracing::info!(stream, consumer = name, "took the durable consumer over"),
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(unavailable("taking over the consumer", &e)),
    }
    let consumer: consumer::PullConsumer = stream_handle
        .create_consumer(config)
        .await
        .map_err(|e| unavailable("consumer", &e))?;
    // Short pulls with frequent heartbeats: after a server restart a lost pull request is
    // noticed within about two heartbeats instead of the 15 s default.
    let messages = consumer
        .stream()
        .max_messages_per_batch(PULL_BATCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(|e| unavailable("messages of", &e))?;
    Ok(messages
        .filter_map(|item| async move {
            match item {
                Ok(message) => Some(delivery(message)),
                Err(e) => {
                    // Heartbeat gaps and reconnects surface here; the stream resumes by itself.
                    tracing::warn!(error = %e, "durable consumer interrupted");
                    None
                }
            }
        })
        .boxed())
}

fn is_not_found(e: &jetstream::stream::ConsumerError) -> bool {
    matches!(
        e.kind(),
        jetstream::stream::ConsumerErrorKind::JetStream(js)
            if js.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
    )
}

fn delivery(message: jetstream::Message) -> Delivery {
    let redeliveries = message
        .info()
        .map_or(0, |info| u64::try_from(info.delivered - 1).unwrap_or(0));
    let (message, acker) = message.split();
    Delivery::new(
        crate::convert::message(message),
        redeliveries,
        Box::new(JetStreamAck(Arc::new(acker))),
    )
}

struct JetStreamAck(Arc<jetstream::message::Acker>);

impl Acknowledge for JetStreamAck {
    fn ack(&self) -> BoxFuture<Result<(), keel_bus::Error>> {
        let acker = Arc::clone(&self.0);
        Box::pin(async move {
            acker
                .ack()
                .await
                .map_err(|e| keel_bus::Error::Unavailable(format!("ack: {e}")))
        })
    }

    fn retry_after(&self, delay: Duration) -> BoxFuture<Result<(), keel_bus::Error>> {
        let acker = Arc::clone(&self.0);
        Box::pin(async move {
            acker
                .ack_with(jetstream::AckKind::Nak(Some(delay)))
                .await
                .map_err(|e| keel_bus::Error::Unavailable(format!("nak: {e}")))
        })
    }
}
