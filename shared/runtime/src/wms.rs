//! Warehouse confirmations published fire-and-forget on `keel.v1.wms.{location}.confirm`
//! (see docs/subjects.md): applied like `keel.v1.api.fulfillments.confirm`, in publication
//! order per location. A message that cannot be applied gets no reply to carry its error, so
//! it is set aside on `keel.v1.dlq.wms.{location}` with its code and reason — never dropped.

use crate::actors::Hosts;
use crate::consumer;
use crate::Error;
use futures::future::BoxFuture;
use futures::FutureExt;
use keel_bus::{Delivery, SharedBus};
use keel_protocol::wire::wms::WmsConfirmation;
use keel_protocol::{subjects, wms_dead_letters, ErrorCode};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

/// Why a warehouse message was set aside.
struct Refusal {
    code: ErrorCode,
    reason: String,
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal {
            code: e.code(),
            reason: e.to_string(),
        }
    }
}

/// Applies one warehouse message (a [`consumer::Settle`]).
pub(crate) fn settle(
    hosts: Arc<Hosts>,
    bus: SharedBus,
    delivery: Delivery,
) -> BoxFuture<'static, ()> {
    async move {
        let location = location_of(&delivery.message.subject);
        let mut backoff = Duration::from_millis(5);
        let refusal = loop {
            match apply(&hosts, location, &delivery).await {
                Ok(()) => break None,
                Err(Error::Unavailable(e)) => {
                    // The node is busy or restarting an actor: try again in place (later
                    // confirmations of this location wait behind this one).
                    tracing::warn!(error = %e, "warehouse confirmation failed, retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
                Err(e) => break Some(Refusal::from(e)),
            }
        };
        match refusal {
            None => {
                consumer::acknowledge_when_durable(&hosts.mesh.store, delivery);
                hosts
                    .mesh
                    .commands
                    .wms_applied
                    .fetch_add(1, Ordering::Relaxed);
            }
            Some(Refusal { code, reason }) => {
                let subject = wms_dead_letters(location.unwrap_or("unknown"));
                if consumer::dead_letter(&hosts.mesh.store, &bus, delivery, &subject, code, &reason)
                    .await
                {
                    hosts
                        .mesh
                        .commands
                        .dead_lettered
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
    .boxed()
}

/// The `{location}` of `keel.v1.wms.{location}.confirm`.
fn location_of(subject: &str) -> Option<&str> {
    let mut tokens = subject.split('.');
    match (tokens.nth(3), tokens.next(), tokens.next()) {
        (Some(location), Some("confirm"), None) => Some(location),
        _ => None,
    }
}

async fn apply(
    hosts: &Arc<Hosts>,
    location: Option<&str>,
    delivery: &Delivery,
) -> Result<(), Error> {
    let malformed = |why: String| Error::Domain(keel_domain::Error::Malformed(why));
    let message = &delivery.message;
    let location = location.ok_or_else(|| {
        malformed(format!(
            "{} is not keel.v1.wms.{{location}}.confirm",
            message.subject
        ))
    })?;
    if !message.headers.contains_key(keel_bus::MESSAGE_ID_HEADER) {
        return Err(malformed(format!(
            "a warehouse message needs a {} header (unique per confirmation)",
            keel_bus::MESSAGE_ID_HEADER
        )));
    }
    let confirmation: WmsConfirmation = serde_json::from_slice(&message.payload)
        .map_err(|e| malformed(format!("not a confirmation {{\"id\",\"step\"}}: {e}")))?;
    let by_id = serde_json::json!({ "id": confirmation.id }).to_string();
    let (_, fulfillment) =
        crate::api::dispatch(hosts, subjects::FULFILLMENTS_GET, by_id.as_bytes()).await?;
    if fulfillment["location"] != location {
        return Err(Error::Domain(keel_domain::Error::UnknownFulfillment(
            format!(
                "{} at {location} (it is at {})",
                confirmation.id, fulfillment["location"]
            ),
        )));
    }
    crate::api::dispatch(hosts, subjects::FULFILLMENTS_CONFIRM, &message.payload).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::location_of;

    #[test]
    fn the_location_is_the_fourth_token_of_a_confirm_subject() {
        assert_eq!(location_of("keel.v1.wms.dc-east.confirm"), Some("dc-east"));
        assert_eq!(location_of("keel.v1.wms.dc-east.picked"), None);
        assert_eq!(location_of("keel.v1.wms.dc-east.confirm.x"), None);
        assert_eq!(location_of("keel.v1.wms"), None);
    }
}
