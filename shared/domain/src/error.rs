//! The domain's error type: why a rule refused a command.

/// A rule of the domain refused a command. Each variant is one kind of refusal; keel-protocol
/// maps each to the stable code a client sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("invalid {kind} id {id:?}: ids are 1-64 characters of [A-Za-z0-9_-]")]
    InvalidId { kind: &'static str, id: String },
    #[error("invalid quantity: {0}")]
    InvalidQuantity(String),
    #[error("unknown sku {0}")]
    UnknownSku(String),
    #[error("unknown location {0}")]
    UnknownLocation(String),
    #[error("unknown channel {0}")]
    UnknownChannel(String),
    #[error("unknown order {0}")]
    UnknownOrder(String),
    #[error("unknown fulfillment {0}")]
    UnknownFulfillment(String),
    #[error("conflict: {0}")]
    Conflict(String),
    #[error("invalid transition: {0}")]
    InvalidTransition(String),
    #[error("insufficient stock: {0}")]
    InsufficientStock(String),
    #[error("hold mismatch: {0}")]
    HoldMismatch(String),
    #[error("hold expired: {0}")]
    HoldExpired(String),
    #[error("unknown hold {0}")]
    UnknownHold(String),
}
