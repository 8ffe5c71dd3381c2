//! The domain's error type and the stable machine codes clients match on.

use serde::{Deserialize, Serialize};

/// The stable, machine-readable error codes of Keel's public API (HTTP and NATS alike).
///
/// Clients and tests match on these, never on the human message. The set only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedRequest,
    InvalidId,
    InvalidQuantity,
    UnknownSku,
    UnknownLocation,
    UnknownChannel,
    UnknownOrder,
    UnknownFulfillment,
    NotFound,
    MethodNotAllowed,
    Conflict,
    InvalidTransition,
    InsufficientStock,
    PayloadTooLarge,
    UnsupportedVersion,
    Unavailable,
    Internal,
    /// An order placed on a hold whose lines or channel differ from the hold's.
    HoldMismatch,
    /// The hold expired, was released, or went to another order.
    HoldExpired,
    UnknownHold,
    /// A command batch from a node whose epoch for the commands' partition is older than one
    /// the receiver already applied: another node owns that partition now (between nodes only).
    StaleEpoch,
}

impl ErrorCode {
    /// Every code, for documentation and round-trip tests.
    pub const ALL: [ErrorCode; 21] = [
        ErrorCode::MalformedRequest,
        ErrorCode::InvalidId,
        ErrorCode::InvalidQuantity,
        ErrorCode::UnknownSku,
        ErrorCode::UnknownLocation,
        ErrorCode::UnknownChannel,
        ErrorCode::UnknownOrder,
        ErrorCode::UnknownFulfillment,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Conflict,
        ErrorCode::InvalidTransition,
        ErrorCode::InsufficientStock,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedVersion,
        ErrorCode::Unavailable,
        ErrorCode::Internal,
        ErrorCode::HoldMismatch,
        ErrorCode::HoldExpired,
        ErrorCode::UnknownHold,
        ErrorCode::StaleEpoch,
    ];

    /// The wire spelling, e.g. `unknown_sku`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::MalformedRequest => "malformed_request",
            ErrorCode::InvalidId => "invalid_id",
            ErrorCode::InvalidQuantity => "invalid_quantity",
            ErrorCode::UnknownSku => "unknown_sku",
            ErrorCode::UnknownLocation => "unknown_location",
            ErrorCode::UnknownChannel => "unknown_channel",
            ErrorCode::UnknownOrder => "unknown_order",
            ErrorCode::UnknownFulfillment => "unknown_fulfillment",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::Conflict => "conflict",
            ErrorCode::InvalidTransition => "invalid_transition",
            ErrorCode::InsufficientStock => "insufficient_stock",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedVersion => "unsupported_version",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Internal => "internal",
            ErrorCode::HoldMismatch => "hold_mismatch",
            ErrorCode::HoldExpired => "hold_expired",
            ErrorCode::UnknownHold => "unknown_hold",
            ErrorCode::StaleEpoch => "stale_epoch",
        }
    }

    /// Parses the wire spelling back; unknown spellings are `None`.
    pub fn parse(s: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.as_str() == s)
    }

    /// The HTTP status this code maps to (the NATS API carries the code itself).
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::MalformedRequest
            | ErrorCode::InvalidId
            | ErrorCode::InvalidQuantity
            | ErrorCode::UnsupportedVersion => 400,
            ErrorCode::UnknownSku
            | ErrorCode::UnknownLocation
            | ErrorCode::UnknownChannel
            | ErrorCode::UnknownOrder
            | ErrorCode::UnknownFulfillment
            | ErrorCode::NotFound
            | ErrorCode::UnknownHold => 404,
            ErrorCode::MethodNotAllowed => 405,
            ErrorCode::Conflict
            | ErrorCode::InvalidTransition
            | ErrorCode::InsufficientStock
            | ErrorCode::HoldMismatch
            | ErrorCode::HoldExpired
            | ErrorCode::StaleEpoch => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::Unavailable => 503,
            ErrorCode::Internal => 500,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A rule of the domain refused a command. Each variant maps to one [`ErrorCode`].
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

impl Error {
    /// The stable code a client sees for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Error::Malformed(_) => ErrorCode::MalformedRequest,
            Error::InvalidId { .. } => ErrorCode::InvalidId,
            Error::InvalidQuantity(_) => ErrorCode::InvalidQuantity,
            Error::UnknownSku(_) => ErrorCode::UnknownSku,
            Error::UnknownLocation(_) => ErrorCode::UnknownLocation,
            Error::UnknownChannel(_) => ErrorCode::UnknownChannel,
            Error::UnknownOrder(_) => ErrorCode::UnknownOrder,
            Error::UnknownFulfillment(_) => ErrorCode::UnknownFulfillment,
            Error::Conflict(_) => ErrorCode::Conflict,
            Error::InvalidTransition(_) => ErrorCode::InvalidTransition,
            Error::InsufficientStock(_) => ErrorCode::InsufficientStock,
            Error::HoldMismatch(_) => ErrorCode::HoldMismatch,
            Error::HoldExpired(_) => ErrorCode::HoldExpired,
            Error::UnknownHold(_) => ErrorCode::UnknownHold,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_through_their_wire_spelling() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
        assert_eq!(ErrorCode::parse("nope"), None);
    }

    #[test]
    fn client_errors_map_to_4xx() {
        for code in ErrorCode::ALL {
            let status = code.http_status();
            let server_side = matches!(code, ErrorCode::Unavailable | ErrorCode::Internal);
            assert_eq!(status >= 500, server_side, "{code} -> {status}");
        }
    }
}
