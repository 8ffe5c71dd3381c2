//! Messages from a durable consumer: each one stays pending until it is acknowledged.

use std::fmt;
use std::time::Duration;

use futures::stream::BoxStream;

use crate::{BoxFuture, Error, Message};

/// The stream a durable consumer yields (see [`Bus::consume`](crate::Bus::consume)).
pub type Deliveries = BoxStream<'static, Delivery>;

/// How a delivery is settled with the bus that holds it.
pub trait Acknowledge: Send + Sync + 'static {
    /// Done with the message: the bus will not deliver it again.
    fn ack(&self) -> BoxFuture<Result<(), Error>>;
    /// Not done: deliver the message again after `delay`.
    fn retry_after(&self, delay: Duration) -> BoxFuture<Result<(), Error>>;
}

/// One message from a durable consumer, with its acknowledgement handle.
pub struct Delivery {
    /// The message as published.
    pub message: Message,
    /// How many times the message was delivered before this one (0 the first time).
    pub redeliveries: u64,
    acknowledge: Box<dyn Acknowledge>,
}

impl Delivery {
    /// Wraps a message from a durable consumer with the handle that settles it.
    pub fn new(message: Message, redeliveries: u64, acknowledge: Box<dyn Acknowledge>) -> Self {
        Delivery {
            message,
            redeliveries,
            acknowledge,
        }
    }

    /// A message from a plain subscription, which has nothing to acknowledge (so that one
    /// handler serves durable and plain sources alike).
    pub fn plain(message: Message) -> Self {
        Delivery::new(message, 0, Box::new(Unacknowledged))
    }

    /// Acknowledges the message (call only once its effect is durable).
    ///
    /// # Errors
    /// The bus' error when the acknowledgement could not be sent; the message will then be
    /// delivered again, which a receiver that dedupes shrugs off.
    pub async fn ack(self) -> Result<(), Error> {
        self.acknowledge.ack().await
    }

    /// Asks for the message again after `delay`.
    ///
    /// # Errors
    /// As [`Delivery::ack`]; an unsettled message is redelivered after the consumer's ack wait
    /// anyway.
    pub async fn retry_after(self, delay: Duration) -> Result<(), Error> {
        self.acknowledge.retry_after(delay).await
    }
}

impl fmt::Debug for Delivery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Delivery")
            .field("subject", &self.message.subject)
            .field("redeliveries", &self.redeliveries)
            .finish_non_exhaustive()
    }
}

/// Settling a message that no bus keeps: nothing to do.
struct Unacknowledged;

impl Acknowledge for Unacknowledged {
    fn ack(&self) -> BoxFuture<Result<(), Error>> {
        Box::pin(futures::future::ready(Ok(())))
    }

    fn retry_after(&self, _delay: Duration) -> BoxFuture<Result<(), Error>> {
        Box::pin(futures::future::ready(Ok(())))
    }
}
