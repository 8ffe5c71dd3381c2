//! Commands between actors on a durable bus (JetStream): the relay publishes each one on its
//! target's subject (`keel.v1.cmd.{partition}.…`, see `outbox::command_subject`); the node
//! serving the partition takes them off the work queue and delivers each to its target actor
//! (see `consumer` for ordering and acknowledgement). A sender waiting for the outcome on
//! another node gets it on its outcome subject once the effect is durable.

use crate::consumer;
use crate::mesh::{Mesh, Outcome};
use crate::outbox::OutboxEntry;
use crate::replies::{Answer, Reply};
use crate::Error;
use futures::future::BoxFuture;
use futures::FutureExt;
use keel_bus::{Delivery, Headers, SharedBus};
use keel_domain::ErrorCode;
use keel_protocol::{COMMAND_DEAD_LETTERS, OUTCOME_TO_HEADER};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Applies one delivered command (a [`consumer::Settle`]).
pub(crate) fn settle(
    mesh: Arc<Mesh>,
    bus: SharedBus,
    delivery: Delivery,
) -> BoxFuture<'static, ()> {
    async move {
        let decoded = serde_json::from_slice::<OutboxEntry>(&delivery.message.payload);
        let (command_id, effect) = match decoded {
            Ok(OutboxEntry::Effect {
                command_id, effect, ..
            }) => (command_id, effect),
            Ok(OutboxEntry::Publish { .. }) => {
                let reason = "a publication, not a command";
                return set_aside(&mesh, &bus, delivery, reason).await;
            }
            Err(e) => {
                return set_aside(&mesh, &bus, delivery, &format!("undecodable: {e}")).await
            }
        };
        let target = mesh.partitions.of(&crate::outbox::target_key(&effect));
        let Some(_work) = mesh.partitions.enter(target) else {
            // Handed off: left unacknowledged for the node that serves the partition now.
            return;
        };
        let stats = &mesh.relay.stats;
        let mut backoff = Duration::from_millis(5);
        let outcome = loop {
            match mesh.deliver_local(&command_id, &effect).await {
                Ok(reply) => break Ok(reply),
                Err(refusal) if refusal.is_refusal() => {
                    stats.refused.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(command_id, ?effect, %refusal, "command refused by its target");
                    break Err(refusal);
                }
                Err(Error::Moved(reason)) => {
                    tracing::info!(command_id, %reason, "the target's partition moved; left to its new owner");
                    return;
                }
                Err(e) => {
                    // Retried here, not handed back to JetStream: a later command for the same
                    // target must not overtake this one.
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(command_id, error = %e, "command delivery failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        };
        // A sender waiting on it here (an order's saga) goes on now; the store flushes its
        // write before that sender's own reply anyway (one flush covers every lane). A sender
        // on another node hears of it once it is durable.
        let outcome_to = delivery.message.headers.get(OUTCOME_TO_HEADER).cloned();
        if !mesh.settled(&command_id, outcome.clone()) {
            if let Some(subject) = outcome_to {
                answer_when_durable(&mesh, &bus, subject, &command_id, &outcome);
            }
        }
        consumer::acknowledge_when_durable(&mesh.store, delivery);
        mesh.commands.consumed.fetch_add(1, Ordering::Relaxed);
    }
    .boxed()
}

/// A command's outcome as it travels back to a sender on another node.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(crate) struct OutcomeMessage {
    command_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reply: Option<Reply>,
    #[serde(default)]
    replayed: bool,
    /// `(code, message)` when it failed or was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    error: Option<(ErrorCode, String)>,
}

impl OutcomeMessage {
    fn new(command_id: &str, outcome: &Outcome) -> Self {
        let (reply, replayed, error) = match outcome {
            Ok(Some(executed)) => (Some(executed.reply.clone()), executed.replayed, None),
            Ok(None) => (None, false, None),
            Err(e) => (None, false, Some((e.code(), e.to_string()))),
        };
        OutcomeMessage {
            command_id: command_id.to_owned(),
            reply,
            replayed,
            error,
        }
    }

    /// The command id and the outcome it carries.
    pub(crate) fn into_outcome(self) -> (String, Outcome) {
        let outcome = match (self.error, self.reply) {
            (Some((code, message)), _) => Err(Error::Remote { code, message }),
            (None, Some(reply)) => Ok(Some(Answer {
                reply,
                replayed: self.replayed,
            })),
            (None, None) => Ok(None),
        };
        (self.command_id, outcome)
    }
}

/// Sends `outcome` to `subject` once everything committed so far is durable (a sender may act
/// on it only then: its own flush does not cover this node's writes).
fn answer_when_durable(
    mesh: &Arc<Mesh>,
    bus: &SharedBus,
    subject: String,
    command_id: &str,
    outcome: &Outcome,
) {
    let (mesh, bus) = (Arc::clone(mesh), Arc::clone(bus));
    let message = OutcomeMessage::new(command_id, outcome);
    actix_rt::spawn(async move {
        if let Err(e) = mesh.store.flush().await {
            tracing::warn!(error = %e, "flush failed: the outcome is not sent (the sender times out and retries)");
            return;
        }
        let payload = serde_json::to_vec(&message).unwrap_or_default();
        if let Err(e) = bus.publish(&subject, Headers::new(), payload.into()).await {
            tracing::warn!(%subject, error = %e, "could not send an outcome");
        }
    });
}

async fn set_aside(mesh: &Arc<Mesh>, bus: &SharedBus, delivery: Delivery, reason: &str) {
    let code = ErrorCode::MalformedRequest;
    if consumer::dead_letter(
        &mesh.store,
        bus,
        delivery,
        COMMAND_DEAD_LETTERS,
        code,
        reason,
    )
    .await
    {
        mesh.commands.dead_lettered.fetch_add(1, Ordering::Relaxed);
    }
}
