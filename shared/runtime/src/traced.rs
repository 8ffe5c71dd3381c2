//! Trace context across an actor's mailbox.

use actix::Message;

/// A message with the span it was sent from: an actix mailbox does not carry the sender's
/// span, so the handler opens its own span as a child of `parent` and one order stays one
/// trace from the API request through every actor it touches.
#[derive(Debug, Clone)]
pub(crate) struct Traced<M> {
    pub msg: M,
    pub parent: tracing::Span,
}

impl<M: Message> Message for Traced<M> {
    type Result = M::Result;
}
