//! The outbox: messages an actor owes others, written with its state and delivered until done
//! (by the relay, `relay.rs`), and how a durable bus carries them.

use bytes::Bytes;
use keel_domain::effects::Effect;
use serde::{Deserialize, Serialize};

/// A state-change notice for subscribers of the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Publication {
    pub subject: String,
    pub payload: serde_json::Value,
}

/// One undelivered message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum OutboxEntry {
    /// A command to another actor, with the id that makes it idempotent there.
    Effect {
        command_id: String,
        effect: Effect,
        /// The `traceparent` of the decision that owes it: its delivery continues that trace.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },
    /// An event for bus subscribers, with the id that lets a durable bus drop a repeat.
    Publish {
        message_id: String,
        publication: Publication,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        trace: Option<String>,
    },
}

impl OutboxEntry {
    /// The trace this message continues.
    pub(crate) fn trace(&self) -> Option<&str> {
        match self {
            OutboxEntry::Effect { trace, .. } | OutboxEntry::Publish { trace, .. } => {
                trace.as_deref()
            }
        }
    }

    /// The entity whose messages must stay in order (or the subject, for publications).
    pub(crate) fn target(&self) -> String {
        match self {
            OutboxEntry::Effect { effect, .. } => target_key(effect),
            OutboxEntry::Publish { publication, .. } => publication.subject.clone(),
        }
    }
}

/// An entry as a durable bus carries it: a command on its target's subject (in the target's
/// partition, see `partition_of`), an event on its own, with its id (so the bus drops a
/// repeat) and its trace context in the headers.
pub(crate) fn outgoing(
    entry: &OutboxEntry,
    partition_of: &dyn Fn(&str) -> u32,
) -> Result<keel_bus::Outgoing, serde_json::Error> {
    let (subject, id, payload) = match entry {
        OutboxEntry::Effect {
            command_id, effect, ..
        } => (
            command_subject(effect, partition_of(&target_key(effect))),
            command_id,
            Bytes::from(serde_json::to_vec(entry)?),
        ),
        OutboxEntry::Publish {
            message_id,
            publication,
            ..
        } => (
            publication.subject.clone(),
            message_id,
            publication_payload(publication),
        ),
    };
    let mut headers =
        keel_bus::Headers::from([(keel_bus::MESSAGE_ID_HEADER.to_owned(), id.clone())]);
    if let Some(traceparent) = entry.trace() {
        headers.insert("traceparent".to_owned(), traceparent.to_owned());
    }
    Ok(keel_bus::Outgoing {
        subject,
        headers,
        payload,
    })
}

/// Encodes a publication for the bus.
pub(crate) fn publication_payload(p: &Publication) -> Bytes {
    Bytes::from(serde_json::to_vec(&p.payload).unwrap_or_default())
}

/// The entity key of `effect`'s target.
pub(crate) fn target_key(effect: &Effect) -> String {
    match effect {
        Effect::Stock { sku, location, .. } => crate::keys::sku_location(sku, location),
        Effect::Order { order, .. } => crate::keys::order(order),
        Effect::Warehouse { location, .. } => crate::keys::warehouse(location),
        Effect::Hold { hold, .. } => crate::keys::hold(hold),
    }
}

/// The subject that carries a command to `effect`'s target, in the target's `partition`, over
/// a durable bus: one subject per target entity, so a consumer can keep each target's
/// commands in order, under the partition's prefix, which its serving node consumes.
pub(crate) fn command_subject(effect: &Effect, partition: u32) -> String {
    match effect {
        Effect::Stock { sku, location, .. } => {
            format!("keel.v1.cmd.{partition}.stock.{location}.{sku}")
        }
        Effect::Order { order, .. } => format!("keel.v1.cmd.{partition}.order.{order}"),
        Effect::Warehouse { location, .. } => {
            format!("keel.v1.cmd.{partition}.warehouse.{location}")
        }
        Effect::Hold { hold, .. } => format!("keel.v1.cmd.{partition}.hold.{hold}"),
    }
}

/// Whether a command subject carries a command to a SKU-location.
pub(crate) fn is_stock_command(subject: &str) -> bool {
    subject.split('.').nth(4) == Some("stock")
}
