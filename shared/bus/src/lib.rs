//! Keel's message bus: the seam between Keel's actors/gateway and the transport that carries
//! their messages.
//!
//! The [`Bus`] trait exposes NATS semantics — dot-separated subjects with `*`/`>` wildcards
//! (see [`subject`]), fan-out publish/subscribe, queue groups that load-balance a subject over
//! their members, and request-reply with no-responders detection and timeouts — in a shape that
//! an async-nats client can implement directly. [`InProcessBus`] implements it inside one process
//! (single-node deployments and tests) with bounded, backpressured per-subscription channels, so
//! the same code later runs unchanged over NATS. Code should depend on [`SharedBus`]
//! (`Arc<dyn Bus>`) rather than on a concrete implementation.
//!
//! ```
//! use bytes::Bytes;
//! use futures::StreamExt;
//! use keel_bus::{Bus, Headers, InProcessBus, InProcessOptions, SharedBus};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), keel_bus::Error> {
//! let bus: SharedBus = InProcessBus::new(InProcessOptions::default()).into_shared();
//!
//! // A responder answering requests on `keel.v1.echo`.
//! let mut requests = bus.subscribe("keel.v1.echo").await?;
//! let responder = bus.clone();
//! tokio::spawn(async move {
//!     while let Some(request) = requests.next().await {
//!         let payload = request.payload.clone();
//!         responder.respond(&request, Headers::new(), payload).await.ok();
//!     }
//! });
//!
//! let reply = bus
//!     .request("keel.v1.echo", Headers::new(), Bytes::from_static(b"hi"), std::time::Duration::from_secs(1))
//!     .await?;
//! assert_eq!(reply.payload, "hi");
//! # Ok(())
//! # }
//! ```

mod delivery;
mod error;
mod in_process;
pub mod subject;
mod subscription;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::FutureExt;

pub use delivery::{Acknowledge, Deliveries, Delivery};
pub use error::Error;
pub use in_process::{InProcessBus, InProcessOptions};
pub use subscription::Subscription;

/// Message headers (NATS headers with a single value per key), ordered by key.
pub type Headers = std::collections::BTreeMap<String, String>;

/// The header a durable publisher sets so that the bus drops a repeated publish of the same
/// message (JetStream's `Nats-Msg-Id` deduplication).
pub const MESSAGE_ID_HEADER: &str = "Nats-Msg-Id";

/// A message as delivered to a subscriber.
#[derive(Clone, Debug, PartialEq)]
pub struct Message {
    /// The subject the message was published to.
    pub subject: String,
    /// The subject to send a reply to, if the publisher expects one (see [`Bus::respond`]).
    pub reply: Option<String>,
    /// Message headers.
    pub headers: Headers,
    /// The message body.
    pub payload: Bytes,
}

/// A message to publish with [`Bus::publish_in_order`].
#[derive(Clone, Debug, PartialEq)]
pub struct Outgoing {
    pub subject: String,
    pub headers: Headers,
    pub payload: Bytes,
}

/// Why [`Bus::publish_in_order`] stopped: the first `accepted` messages were published, the
/// next one failed with `error`. Later ones may have been published too, so a caller that
/// retries from the failed one should give every message an id ([`MESSAGE_ID_HEADER`]).
#[derive(Debug)]
pub struct PartialPublish {
    pub accepted: usize,
    pub error: Error,
}

/// The size NATS counts against its maximum payload: the payload plus the encoded headers.
pub fn encoded_size(headers: &Headers, payload: &[u8]) -> usize {
    if headers.is_empty() {
        return payload.len();
    }
    let lines: usize = headers.iter().map(|(k, v)| k.len() + v.len() + 4).sum();
    payload.len() + "NATS/1.0\r\n".len() + lines + "\r\n".len()
}

/// A counter a bus implementation reports about itself (reconnects, slow consumers …), for the
/// node's `/metrics`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// Prometheus name, `keel_<subsystem>_<name>_total`.
    pub name: &'static str,
    /// One line saying what it counts.
    pub help: &'static str,
    pub value: u64,
}

/// The boxed, `Send`, `'static` future returned by [`Bus`] methods (keeps the trait object-safe).
pub type BoxFuture<T> = futures::future::BoxFuture<'static, T>;

/// A message bus with NATS semantics.
///
/// Futures returned by the methods are lazy (nothing happens until they are polled) and do not
/// borrow the bus, so they can be moved into spawned tasks. They may be awaited on any tokio
/// runtime; [`Bus::request`] needs a runtime with the time driver enabled for its timeout.
pub trait Bus: Send + Sync + 'static {
    /// Whether published messages outlive this process (JetStream: yes; in-process: no).
    ///
    /// A publisher only needs a transactional outbox for messages a durable bus keeps; on a
    /// bus that dies with the process, storing them first buys nothing.
    fn durable(&self) -> bool {
        false
    }

    /// Whether the bus can carry messages right now (a NATS client between reconnects cannot).
    fn is_connected(&self) -> bool {
        true
    }

    /// The bus' own counters, for metrics.
    fn counters(&self) -> Vec<Counter> {
        Vec::new()
    }

    /// Consumes the durable stream `stream` as the durable consumer `consumer`, which sees only
    /// subjects matching `filter`. The caller takes the consumer over: it gets every message
    /// not yet acknowledged, also those a previous (crashed) holder had taken, in stream order.
    ///
    /// Messages stay pending until their [`Delivery`] is acknowledged; an unacknowledged one is
    /// redelivered. Only a durable bus has streams.
    ///
    /// # Errors
    /// [`Error::Unsupported`] on a bus that keeps nothing; [`Error::Unavailable`] when the
    /// consumer cannot be set up.
    fn consume(
        &self,
        stream: &str,
        consumer: &str,
        filter: &str,
    ) -> BoxFuture<Result<Deliveries, Error>> {
        let _ = (stream, consumer, filter);
        futures::future::ready(Err(Error::Unsupported(
            "durable consumers need a durable bus (JetStream)",
        )))
        .boxed()
    }

    /// Publishes a message to `subject` (which must not contain wildcards).
    ///
    /// Every matching subscription gets a copy, except that each matching queue group gets it
    /// exactly once (on one of its members). Publishing to a subject nobody subscribes to
    /// succeeds and the message is discarded. Waits while a receiving subscription's buffer is
    /// full (backpressure).
    ///
    /// # Errors
    /// [`Error::InvalidSubject`], [`Error::PayloadTooLarge`], [`Error::Closed`].
    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), Error>>;

    /// Publishes `messages` in order, like [`Bus::publish`] each, but a durable bus sends the
    /// next one without waiting for the previous one's acknowledgement (many in flight).
    ///
    /// # Errors
    /// [`PartialPublish`]: how many from the front were accepted, and why the next was not.
    fn publish_in_order(&self, messages: Vec<Outgoing>) -> BoxFuture<Result<(), PartialPublish>> {
        let publishes: Vec<_> = messages
            .into_iter()
            .map(|m| self.publish(&m.subject, m.headers, m.payload))
            .collect();
        async move {
            for (accepted, publish) in publishes.into_iter().enumerate() {
                publish
                    .await
                    .map_err(|error| PartialPublish { accepted, error })?;
            }
            Ok(())
        }
        .boxed()
    }

    /// Publishes like [`Bus::publish`], with `reply` as the message's reply subject (used to
    /// answer requests or to set up a reply-to flow).
    ///
    /// # Errors
    /// As [`Bus::publish`]; `reply` must be a valid subject too.
    fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), Error>>;

    /// Subscribes to all subjects matching `pattern` (may use `*` and `>` wildcards).
    ///
    /// # Errors
    /// [`Error::InvalidSubject`], [`Error::Closed`].
    fn subscribe(&self, pattern: &str) -> BoxFuture<Result<Subscription, Error>>;

    /// Subscribes to `pattern` as a member of the queue group `group`: each message is delivered
    /// to only one member of the group (load balancing).
    ///
    /// # Errors
    /// [`Error::InvalidSubject`] (also for an empty group name or one containing whitespace),
    /// [`Error::Closed`].
    fn queue_subscribe(&self, pattern: &str, group: &str)
        -> BoxFuture<Result<Subscription, Error>>;

    /// Sends a request to `subject` and waits up to `timeout` for the first reply.
    ///
    /// # Errors
    /// [`Error::NoResponders`] at once when no subscription matches `subject`,
    /// [`Error::Timeout`] when no reply arrived in time, and the errors of [`Bus::publish`].
    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Message, Error>>;

    /// Answers `request` by publishing to its reply subject. Succeeds without doing anything
    /// when the request has no reply subject.
    ///
    /// # Errors
    /// As [`Bus::publish`].
    fn respond(
        &self,
        request: &Message,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), Error>> {
        match &request.reply {
            Some(reply) => self.publish(reply, headers, payload),
            None => futures::future::ready(Ok(())).boxed(),
        }
    }
}

/// A shared, type-erased bus handle: what actors and the gateway hold.
pub type SharedBus = Arc<dyn Bus>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_are_counted_like_nats() {
        assert_eq!(encoded_size(&Headers::new(), b"xyz"), 3);
        let headers = Headers::from([("a".to_owned(), "bc".to_owned())]);
        // "NATS/1.0\r\n" + "a: bc\r\n" + "\r\n"
        assert_eq!(encoded_size(&headers, b""), 10 + 7 + 2);
    }
}
