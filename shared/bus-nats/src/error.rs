//! The crate's error type.

/// What can go wrong while setting the NATS bus up (once running, failures are
/// [`keel_bus::Error`]s).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No NATS server could be reached.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// A JetStream stream could not be created or updated.
    #[error("JetStream stream {stream}: {reason}")]
    Stream {
        /// The stream's name.
        stream: String,
        /// What the server said.
        reason: String,
    },
    /// The server is older than the oldest release Keel runs on.
    #[error("nats-server {found} is older than {minimum}, the oldest Keel runs on: upgrade the server (tests/run installs a current one)")]
    ServerTooOld {
        /// The version the server announced.
        found: String,
        /// [`crate::MIN_SERVER_VERSION`].
        minimum: &'static str,
    },
}
