//! [`Subscription`]: the stream of messages delivered to one subscriber.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures::stream::BoxStream;
use futures::Stream;
use tokio::sync::mpsc;

use crate::in_process::Registration;
use crate::Message;

/// A subscription: a [`Stream`] of the [`Message`]s that match its pattern.
///
/// Dropping it unsubscribes. The stream ends (yields `None`) when the bus is closed, after all
/// messages already delivered to it have been yielded.
///
/// A subscription applies backpressure: when its buffer is full, publishers wait until the
/// subscriber catches up. A subscriber must therefore keep polling (or drop) its subscriptions;
/// in particular it must not wait on a publish to a subject that it itself subscribes to while its
/// own buffer is full.
pub struct Subscription {
    pattern: String,
    queue_group: Option<String>,
    source: Source,
}

enum Source {
    /// The in-process bus' bounded channel; the registration is removed when dropped.
    InProcess {
        receiver: mpsc::Receiver<Message>,
        _registration: Registration,
    },
    /// Any other implementation (e.g. a NATS client's subscriber).
    Stream(BoxStream<'static, Message>),
}

impl Subscription {
    /// Wraps a stream of messages produced by another [`Bus`](crate::Bus) implementation (e.g. an
    /// async-nats subscriber mapped to [`Message`]s). Dropping the returned subscription drops the
    /// stream, which should unsubscribe.
    pub fn from_stream<S>(pattern: &str, queue_group: Option<&str>, stream: S) -> Self
    where
        S: Stream<Item = Message> + Send + 'static,
    {
        Self {
            pattern: pattern.to_owned(),
            queue_group: queue_group.map(str::to_owned),
            source: Source::Stream(Box::pin(stream)),
        }
    }

    pub(crate) fn in_process(
        pattern: &str,
        queue_group: Option<&str>,
        receiver: mpsc::Receiver<Message>,
        registration: Registration,
    ) -> Self {
        Self {
            pattern: pattern.to_owned(),
            queue_group: queue_group.map(str::to_owned),
            source: Source::InProcess {
                receiver,
                _registration: registration,
            },
        }
    }

    /// The subject pattern this subscription was created with.
    #[must_use]
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The queue group this subscription belongs to, if it is a queue subscription.
    #[must_use]
    pub fn queue_group(&self) -> Option<&str> {
        self.queue_group.as_deref()
    }

    /// Unsubscribes explicitly; equivalent to dropping the subscription. Messages still buffered
    /// are discarded.
    pub fn unsubscribe(self) {
        drop(self);
    }
}

impl Stream for Subscription {
    type Item = Message;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Message>> {
        match &mut self.get_mut().source {
            Source::InProcess { receiver, .. } => receiver.poll_recv(cx),
            Source::Stream(stream) => stream.as_mut().poll_next(cx),
        }
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::InProcess { .. } => "in-process",
            Source::Stream(_) => "stream",
        };
        f.debug_struct("Subscription")
            .field("pattern", &self.pattern)
            .field("queue_group", &self.queue_group)
            .field("kind", &kind)
            .finish()
    }
}
