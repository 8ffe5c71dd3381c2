//! The outbox: messages an actor owes others, written with its state and delivered until done
//! (by the relay, `relay.rs`), and how the bus carries a publication.

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

    /// The id that makes it idempotent: a command's id, a publication's message id.
    pub(crate) fn id(&self) -> &str {
        match self {
            OutboxEntry::Effect { command_id, .. } => command_id,
            OutboxEntry::Publish { message_id, .. } => message_id,
        }
    }

    /// The entity that owes it: every command and message id begins with its key and `#`.
    pub(crate) fn source_key(&self) -> &str {
        source_key(self.id())
    }

    /// The entity whose messages must stay in order (or the subject, for publications).
    pub(crate) fn target(&self) -> String {
        match self {
            OutboxEntry::Effect { effect, .. } => target_key(effect),
            OutboxEntry::Publish { publication, .. } => publication.subject.clone(),
        }
    }
}

/// A publication as the bus carries it: on its own subject, with its id (so a durable bus
/// drops a repeat) and its trace context in the headers.
pub(crate) fn outgoing(
    message_id: &str,
    publication: &Publication,
    trace: Option<&str>,
) -> keel_bus::Outgoing {
    let mut headers = keel_bus::Headers::from([(
        keel_bus::MESSAGE_ID_HEADER.to_owned(),
        message_id.to_owned(),
    )]);
    if let Some(traceparent) = trace {
        headers.insert("traceparent".to_owned(), traceparent.to_owned());
    }
    keel_bus::Outgoing {
        subject: publication.subject.clone(),
        headers,
        payload: publication_payload(publication),
    }
}

/// Encodes a publication for the bus.
pub(crate) fn publication_payload(p: &Publication) -> Bytes {
    Bytes::from(serde_json::to_vec(&p.payload).unwrap_or_default())
}

/// The key of the entity that issued a command or message id (`{key}#...`).
pub(crate) fn source_key(id: &str) -> &str {
    id.split_once('#').map_or(id, |(key, _)| key)
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
