//! Schema fragments for the rules a request's fields must follow. The node checks them itself
//! (each with its own error code); the schemas only describe them.

use crate::ErrorCode;
use schemars::{json_schema, Schema, SchemaGenerator};

/// An identifier: 1–64 characters of `[A-Za-z0-9_-]` (they become subject tokens).
pub(crate) const ID_PATTERN: &str = "^[A-Za-z0-9_-]{1,64}$";

/// An optional whole number, sent as a JSON number or a decimal string (query parameters
/// arrive as strings).
pub(crate) fn optional_whole(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["integer", "string", "null"],
        "minimum": 0,
        "pattern": "^[0-9]+$"
    })
}

/// An optional cursor: an order id (reservations) or a queue ticket (backorders, a whole
/// number or a decimal string).
pub(crate) fn optional_cursor(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": ["string", "integer", "null"],
        "minimum": 0
    })
}

/// An error code: one of [`ErrorCode::ALL`], in its wire spelling.
pub(crate) fn error_code(_: &mut SchemaGenerator) -> Schema {
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    json_schema!({ "type": "string", "enum": codes })
}
