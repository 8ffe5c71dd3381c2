//! What warehouse management systems publish to Keel.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A warehouse step of a fulfillment, published fire-and-forget (no reply) on
/// `keel.v1.wms.{location}.confirm` by the location's warehouse system. Same body and rules as
/// `keel.v1.api.fulfillments.confirm`; repeating a step is harmless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WmsConfirmation {
    /// The fulfillment id, `{order}-F{n}`.
    pub id: String,
    /// The step reached: steps follow picked → packed → shipped → delivered.
    #[schemars(extend("enum" = ["picked", "packed", "shipped", "delivered"]))]
    pub step: String,
}
