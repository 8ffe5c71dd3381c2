//! The bus error type.

/// Everything that can go wrong when talking to a [`Bus`](crate::Bus).
///
/// The variants mirror the failures of a NATS client so that callers handle the in-process bus
/// and a NATS-backed bus identically.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// A subject, subscription pattern or queue group name is malformed. The string names the
    /// offending value and the reason.
    #[error("invalid subject: {0}")]
    InvalidSubject(String),
    /// A request was sent to a subject that nobody subscribes to (NATS "no responders"). The
    /// string is the request subject.
    #[error("no responders for subject `{0}`")]
    NoResponders(String),
    /// A request got no reply within its timeout. The string is the request subject.
    #[error("request to `{0}` timed out")]
    Timeout(String),
    /// The encoded message (payload plus NATS-encoded headers) exceeds the bus' maximum.
    #[error("message of {size} bytes exceeds the maximum payload of {max} bytes")]
    PayloadTooLarge {
        /// Size of the payload plus its NATS-encoded headers, in bytes.
        size: usize,
        /// The configured maximum, in bytes.
        max: usize,
    },
    /// The bus (connection) has been closed.
    #[error("the bus is closed")]
    Closed,
    /// The bus cannot do this at all (e.g. durable consumers on a bus that keeps nothing).
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The transport failed or is out of reach for now (disconnected, JetStream timed out);
    /// retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
}
