use keel_protocol::ErrorCode;

/// Why the runtime could not carry out a request.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// A domain rule refused the command; nothing changed.
    #[error(transparent)]
    Domain(#[from] keel_domain::Error),
    /// The node cannot take the request now (overloaded, shutting down); retrying is safe.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// A command id was recorded by another entity first (resolved inside the runtime).
    #[error("command {0} was already handled")]
    AlreadyHandled(String),
    /// No such API operation.
    #[error("not found: {0}")]
    NotFound(String),
    /// Storage or an invariant failed; retrying with the same id is safe.
    #[error("internal error: {0}")]
    Internal(String),
    /// The entity's partition is not served by this node now (it is being handed off, or
    /// lives elsewhere); nothing changed, and a retry reaches its owner.
    #[error("unavailable: {0}")]
    Moved(String),
    /// The node serving the entity answered with this error.
    #[error("{message}")]
    Remote { code: ErrorCode, message: String },
}

impl Error {
    /// The stable code a client sees.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Domain(e) => ErrorCode::from(e),
            Error::Unavailable(_) => ErrorCode::Unavailable,
            Error::NotFound(_) => ErrorCode::NotFound,
            Error::Internal(_) | Error::AlreadyHandled(_) => ErrorCode::Internal,
            Error::Moved(_) => ErrorCode::Unavailable,
            Error::Remote { code, .. } => *code,
        }
    }

    /// Whether a rule refused the command (here or on the node serving its target): sending
    /// it again would be refused again. A `stale_epoch` is not: it says this node no longer
    /// owns the sender's partition, not that the command is wrong (its new owner sends it).
    pub fn is_refusal(&self) -> bool {
        match self {
            Error::Domain(_) => true,
            Error::Remote { code, .. } => {
                code.http_status() < 500 && *code != ErrorCode::StaleEpoch
            }
            _ => false,
        }
    }
}

impl From<keel_store::Error> for Error {
    fn from(e: keel_store::Error) -> Self {
        match e {
            keel_store::Error::NotOwner(reason) => Error::Moved(reason),
            e => Error::Internal(e.to_string()),
        }
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::Internal(format!("stored data does not decode: {e}"))
    }
}

impl From<actix::MailboxError> for Error {
    fn from(e: actix::MailboxError) -> Self {
        Error::Unavailable(format!("actor mailbox: {e}"))
    }
}

impl From<keel_bus::Error> for Error {
    fn from(e: keel_bus::Error) -> Self {
        Error::Unavailable(format!("bus: {e}"))
    }
}
