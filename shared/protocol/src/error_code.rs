//! The stable machine codes clients match on, their HTTP statuses, and which code each domain
//! error answers with.

use serde::{Deserialize, Serialize};

/// The stable, machine-readable error codes of Keel's public API (HTTP and NATS alike).
///
/// Clients and tests match on these, never on the human message. The set only grows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The body is not valid JSON, misses a field, has a wrong type or duplicate order lines.
    MalformedRequest,
    /// An identifier breaks the id rule (1-64 characters of `[A-Za-z0-9_-]`).
    InvalidId,
    /// A quantity is zero, negative, fractional or above the limit.
    InvalidQuantity,
    /// The request names a SKU the catalog does not have.
    UnknownSku,
    /// The request names a location the catalog does not have.
    UnknownLocation,
    /// The request names a channel the catalog does not have.
    UnknownChannel,
    /// No such order.
    UnknownOrder,
    /// No such fulfillment.
    UnknownFulfillment,
    /// No such route or operation.
    NotFound,
    /// The route exists, the method does not.
    MethodNotAllowed,
    /// The same id with a different body.
    Conflict,
    /// The entity's state does not allow the command (e.g. cancelling a shipped order).
    InvalidTransition,
    /// An adjustment would cut into stock that is allocated or held.
    InsufficientStock,
    /// The body is above the request size limit.
    PayloadTooLarge,
    /// A request on another version's subjects (NATS only).
    UnsupportedVersion,
    /// The node cannot take the request now; retrying with the same id is safe.
    Unavailable,
    /// A bug or a storage failure; retrying with the same id is safe.
    Internal,
    /// An order placed on a hold whose lines or channel differ from the hold's.
    HoldMismatch,
    /// The hold expired, was released, or went to another order.
    HoldExpired,
    /// No such cart hold.
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

/// The code a client sees when a domain rule refused its command: one per variant.
impl From<&keel_domain::Error> for ErrorCode {
    fn from(e: &keel_domain::Error) -> Self {
        use keel_domain::Error;
        match e {
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
    use keel_domain::Error;

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

    #[test]
    fn every_domain_error_answers_with_its_own_code() {
        let s = || "x".to_owned();
        let cases = [
            (Error::Malformed(s()), "malformed_request", 400),
            (
                Error::InvalidId {
                    kind: "sku",
                    id: s(),
                },
                "invalid_id",
                400,
            ),
            (Error::InvalidQuantity(s()), "invalid_quantity", 400),
            (Error::UnknownSku(s()), "unknown_sku", 404),
            (Error::UnknownLocation(s()), "unknown_location", 404),
            (Error::UnknownChannel(s()), "unknown_channel", 404),
            (Error::UnknownOrder(s()), "unknown_order", 404),
            (Error::UnknownFulfillment(s()), "unknown_fulfillment", 404),
            (Error::Conflict(s()), "conflict", 409),
            (Error::InvalidTransition(s()), "invalid_transition", 409),
            (Error::InsufficientStock(s()), "insufficient_stock", 409),
            (Error::HoldMismatch(s()), "hold_mismatch", 409),
            (Error::HoldExpired(s()), "hold_expired", 409),
            (Error::UnknownHold(s()), "unknown_hold", 404),
        ];
        for (error, wire, status) in &cases {
            // Exhaustive on purpose: a new domain error does not compile here until it is
            // listed, as a reminder that it needs a case above.
            match error {
                Error::Malformed(_)
                | Error::InvalidId { .. }
                | Error::InvalidQuantity(_)
                | Error::UnknownSku(_)
                | Error::UnknownLocation(_)
                | Error::UnknownChannel(_)
                | Error::UnknownOrder(_)
                | Error::UnknownFulfillment(_)
                | Error::Conflict(_)
                | Error::InvalidTransition(_)
                | Error::InsufficientStock(_)
                | Error::HoldMismatch(_)
                | Error::HoldExpired(_)
                | Error::UnknownHold(_) => {}
            }
            let code = ErrorCode::from(error);
            assert_eq!(
                (code.as_str(), code.http_status()),
                (*wire, *status),
                "{error}"
            );
        }
    }
}
