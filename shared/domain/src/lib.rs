//! Keel's pure domain: the canonical data model and the state machines of the platform.
//!
//! Nothing here does I/O, awaits, or knows about actors: every rule is a plain function or a
//! `decide(state, command) -> Result<events>` / `apply(state, event)` pair, so that the rules can
//! be unit- and property-tested without a runtime. The runtime crate carries the effects out
//! (sled writes, messages between actors); this crate decides what they are.

pub mod catalog;
pub mod effects;
pub mod error;
pub mod hold;
pub mod id;
pub mod inventory;
pub mod order;
pub mod quantity;
pub mod sourcing;
pub mod warehouse;

pub use error::Error;
pub use id::{ChannelId, DocumentId, FulfillmentId, HoldId, LocationId, OrderId, SkuId};
