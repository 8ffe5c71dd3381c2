//! Commands between actors that cross nodes. A sender batches the commands it owes one
//! partition that another node serves and sends them to that node on core NATS request-reply
//! (`keel.v1.fwd.{partition}.commands`, see `Mesh::deliver_in_order`); here the serving node
//! applies them in order, makes their effects durable and answers their outcomes. The sender
//! counts a command delivered only once it has that answer and sends it again otherwise; the
//! targets' command-id dedupe makes a repeat harmless. No JetStream work queue is involved.
//! A batch names the sender's epochs for the partitions its commands come from, and one from
//! a stale owner is refused (see `fences.rs`).

use crate::mesh::{Mesh, Outcome};
use crate::outbox::OutboxEntry;
use crate::replies::OutcomeMessage;
use crate::Error;
use keel_bus::Message;
use keel_protocol::{
    error_body, source_epochs, ErrorCode, ReplyStatus, COMMAND_DEAD_LETTERS, EPOCHS_HEADER,
};
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use tracing::Instrument;

/// Applies a batch of commands for `partition`, which this node serves, and answers their
/// outcomes, one per command in the batch's order, once their effects are durable. Commands
/// for different targets are applied concurrently (their actors batch what waits in their
/// mailboxes), each target's in the batch's order; after a command that failed for a reason
/// other than a refusal, its target's later commands are not applied and answer
/// `unavailable` (the sender sends them again).
pub(crate) async fn answer(
    mesh: &Mesh,
    partition: u32,
    request: &Message,
) -> (ReplyStatus, Vec<u8>) {
    let refuse =
        |code: ErrorCode, message: &str| (ReplyStatus::Error(code), error_body(code, message));
    let (entries, epochs) = match decode(request) {
        Ok(decoded) => decoded,
        Err(reason) => {
            set_aside(mesh, request, &reason).await;
            return refuse(ErrorCode::MalformedRequest, &reason);
        }
    };
    let Some(_work) = mesh.partitions.enter(partition) else {
        let message = format!("partition {partition} is not served here now");
        return refuse(ErrorCode::Unavailable, &message);
    };
    if let Err(stale) = mesh.fences.admit(&epochs) {
        mesh.commands.stale.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(partition, %stale, "refused a command batch from a stale owner");
        return refuse(ErrorCode::StaleEpoch, &stale.to_string());
    }
    let mut by_target: HashMap<String, Vec<&OutboxEntry>> = HashMap::new();
    for entry in &entries {
        by_target.entry(entry.target()).or_default().push(entry);
    }
    let applied: Vec<Vec<(&str, Outcome)>> = futures::future::join_all(
        by_target
            .values()
            .map(|group| apply_in_order(mesh, partition, group)),
    )
    .await;
    let mut outcomes: HashMap<&str, Outcome> = applied.into_iter().flatten().collect();
    let outcomes: Vec<OutcomeMessage> = entries
        .iter()
        .map(|entry| {
            let id = entry.id();
            let outcome = outcomes.remove(id).unwrap_or_else(|| {
                Err(Error::Unavailable(format!(
                    "{id} was not applied: an earlier command for its target failed"
                )))
            });
            OutcomeMessage::new(id, &outcome)
        })
        .collect();
    mesh.commands.consumed.fetch_add(
        u64::try_from(entries.len()).unwrap_or(u64::MAX),
        Ordering::Relaxed,
    );
    // The sender may act on an outcome only once it is durable: its own flush does not cover
    // this node's writes.
    if let Err(e) = mesh.store.flush().await {
        let message = format!("the batch's effects could not be made durable: {e}");
        return refuse(ErrorCode::Unavailable, &message);
    }
    if mesh.crash_before_batch_reply {
        tracing::error!(
            partition,
            "crash point reached: a command batch applied, not answered"
        );
        std::process::abort();
    }
    match serde_json::to_vec(&outcomes) {
        Ok(body) => (ReplyStatus::Ok, body),
        Err(e) => refuse(ErrorCode::Internal, &e.to_string()),
    }
}

/// The epochs a batch names, (partition, epoch) pairs.
type Epochs = Vec<(u32, u64)>;

/// A batch's commands and the epochs of the partitions they come from, or why it is malformed.
fn decode(request: &Message) -> Result<(Vec<OutboxEntry>, Epochs), String> {
    let entries = serde_json::from_slice::<Vec<OutboxEntry>>(&request.payload)
        .map_err(|e| format!("a command batch that does not decode: {e}"))?;
    let header = request
        .headers
        .get(EPOCHS_HEADER)
        .map_or("", String::as_str);
    let epochs = source_epochs(header).ok_or_else(|| {
        format!("a command batch whose {EPOCHS_HEADER} header does not parse: {header:?}")
    })?;
    Ok((entries, epochs))
}

/// Applies one target's commands of a batch in order, up to and including the first that
/// failed for a reason other than a refusal.
async fn apply_in_order<'a>(
    mesh: &Mesh,
    partition: u32,
    group: &[&'a OutboxEntry],
) -> Vec<(&'a str, Outcome)> {
    let mut outcomes = Vec::with_capacity(group.len());
    for entry in group {
        let (id, outcome) = apply(mesh, partition, entry).await;
        let stop = matches!(&outcome, Err(e) if !e.is_refusal());
        outcomes.push((id, outcome));
        if stop {
            break;
        }
    }
    outcomes
}

/// Applies one command of a batch; answers its id and outcome.
async fn apply<'a>(mesh: &Mesh, partition: u32, entry: &'a OutboxEntry) -> (&'a str, Outcome) {
    let (command_id, effect, trace) = match entry {
        OutboxEntry::Effect {
            command_id,
            effect,
            trace,
        } => (command_id, effect, trace),
        OutboxEntry::Publish { message_id, .. } => {
            let refusal = Error::Remote {
                code: ErrorCode::MalformedRequest,
                message: "a publication in a command batch".into(),
            };
            return (message_id, Err(refusal));
        }
    };
    let target = mesh.partitions.of(&crate::outbox::target_key(effect));
    if target != partition {
        let moved = Error::Moved(format!(
            "{command_id} is for partition {target}, sent to {partition}"
        ));
        return (command_id, Err(moved));
    }
    let span = tracing::info_span!("command.apply", command_id = %command_id);
    keel_telemetry::set_parent(&span, trace.as_deref());
    let outcome = mesh
        .deliver_local(command_id, effect)
        .instrument(span)
        .await;
    if let Err(refusal) = &outcome {
        if refusal.is_refusal() {
            mesh.relay.stats.refused.fetch_add(1, Ordering::Relaxed);
            tracing::error!(command_id, ?effect, %refusal, "command refused by its target");
        }
    }
    (command_id, outcome)
}

/// Sets a batch that does not decode aside on `keel.v1.dlq.commands`, for an operator.
async fn set_aside(mesh: &Mesh, request: &Message, reason: &str) {
    let code = ErrorCode::MalformedRequest;
    match crate::consumer::publish_dead_letter(
        &mesh.bus,
        request,
        COMMAND_DEAD_LETTERS,
        code,
        reason,
    )
    .await
    {
        Ok(()) => {
            mesh.commands.dead_lettered.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) => tracing::error!(error = %e, "could not publish a dead letter"),
    }
}
