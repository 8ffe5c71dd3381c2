//! The public message contract: one serde type per JSON payload on a `keel.v1.` subject.
//!
//! The node builds what it sends from these types and parses what it receives into them, and
//! [`schemas`] generates a JSON Schema from each, committed under `docs/schemas/` (a test fails
//! when the types and the committed files differ).
//!
//! - [`requests`]: the bodies of the request-reply API (`keel.v1.api.*`).
//! - [`replies`]: what the API answers, including the error body.
//! - [`events`]: what `keel.v1.evt.*` carries after every change.
//! - [`wms`]: what warehouse systems publish (`keel.v1.wms.*`).

mod catalog;
pub mod events;
pub mod replies;
pub mod requests;
mod rules;
pub mod status;
pub mod wms;

pub use catalog::schemas;
