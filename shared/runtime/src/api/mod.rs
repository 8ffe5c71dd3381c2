//! The node's request-reply API on the bus (`keel.v1.api.*`): the same JSON bodies and error
//! codes as the HTTP API, which is a thin mapping onto it.

mod bodies;
mod handlers;
mod routing;

pub(crate) use routing::dispatch;

use crate::actors::Hosts;
use futures::StreamExt;
use keel_bus::{Message, SharedBus, Subscription};
use keel_protocol::{
    error_body, ErrorCode, ReplyStatus, API_PREFIX, API_QUEUE_GROUP, API_SUBJECTS,
    MAX_REQUEST_BYTES,
};
use std::sync::Arc;
use tokio::sync::Semaphore;
use tracing::Instrument;

/// Requests one serving loop works on at once; beyond it the loop stops reading and the bus
/// pushes back on callers instead of queueing without bound.
const MAX_IN_FLIGHT: usize = 4096;

/// One serving loop's share of the API requests (a member of the API queue group).
pub(crate) async fn subscribe(bus: &SharedBus) -> Result<Subscription, keel_bus::Error> {
    bus.queue_subscribe(API_SUBJECTS, API_QUEUE_GROUP).await
}

/// Requests forwarded for one partition, which this node serves, and the command batches
/// other nodes send it (`commands.rs`).
pub(crate) async fn subscribe_forwarded(
    bus: &SharedBus,
    partition: u32,
) -> Result<Subscription, keel_bus::Error> {
    bus.subscribe(&format!("{}>", keel_protocol::forward_prefix(partition)))
        .await
}

/// Which requests a serving loop takes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Served {
    /// The API subjects, from callers.
    Api,
    /// Requests other nodes forwarded for this partition.
    Forwarded(u32),
}

impl Served {
    /// The API subject (or `commands`) a request on `subject` asks.
    fn subject(self, subject: &str) -> &str {
        match self {
            Served::Api => subject,
            Served::Forwarded(partition) => subject
                .strip_prefix(&keel_protocol::forward_prefix(partition))
                .unwrap_or_default(),
        }
    }
}

/// Serves the API requests of `requests` until the subscription ends.
pub(crate) async fn serve(
    hosts: Arc<Hosts>,
    bus: SharedBus,
    mut requests: Subscription,
    served: Served,
) {
    let permits = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    while let Some(request) = requests.next().await {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            break;
        };
        let (hosts, bus) = (Arc::clone(&hosts), Arc::clone(&bus));
        actix_rt::spawn(async move {
            let started = std::time::Instant::now();
            let subject = served.subject(&request.subject);
            let (status, body) = answer(&hosts, &request, subject, served).await;
            crate::observed::request(subject, status, started.elapsed());
            let sent = match bus.respond(&request, status.headers(), body.into()).await {
                // The caller must hear something rather than wait for its timeout.
                Err(keel_bus::Error::PayloadTooLarge { size, max }) => {
                    let message = format!(
                        "the reply ({size} bytes) exceeds the bus limit of {max}; ask for less"
                    );
                    let status = ReplyStatus::Error(ErrorCode::Internal);
                    let body = error_body(ErrorCode::Internal, &message);
                    bus.respond(&request, status.headers(), body.into()).await
                }
                other => other,
            };
            if let Err(e) = sent {
                tracing::warn!(subject = %request.subject, error = %e, "could not send a reply");
            }
            drop(permit);
        });
    }
    tracing::info!("the API loop stopped: its subscription ended");
}

/// Answers `request`, which asks `subject` (its subject without a forwarding prefix).
async fn answer(
    hosts: &Arc<Hosts>,
    request: &Message,
    subject: &str,
    served: Served,
) -> (ReplyStatus, Vec<u8>) {
    if let Served::Forwarded(partition) = served {
        if subject == keel_protocol::COMMAND_BATCH {
            return crate::commands::answer(&hosts.mesh, partition, request).await;
        }
    }
    let span = tracing::info_span!("api.request", subject = %subject);
    keel_telemetry::set_parent_from(&span, &request.headers);
    if !subject.starts_with(API_PREFIX) {
        let message = format!("{subject} is not served: this node speaks {API_PREFIX}*");
        let code = ErrorCode::UnsupportedVersion;
        return (ReplyStatus::Error(code), error_body(code, &message));
    }
    if request.payload.len() > MAX_REQUEST_BYTES {
        let message = format!(
            "the request ({} bytes) exceeds {MAX_REQUEST_BYTES} bytes",
            request.payload.len()
        );
        let code = ErrorCode::PayloadTooLarge;
        return (ReplyStatus::Error(code), error_body(code, &message));
    }
    let dispatched = match served {
        Served::Api => {
            routing::dispatch(hosts, subject, &request.payload)
                .instrument(span)
                .await
        }
        Served::Forwarded(partition) => {
            routing::forwarded(hosts, partition, subject, &request.payload)
                .instrument(span)
                .await
        }
    };
    match dispatched {
        Ok((status, body)) => (status, serde_json::to_vec(&body).unwrap_or_default()),
        Err(e) => {
            let code = e.code();
            if code.http_status() >= 500 {
                tracing::warn!(%subject, error = %e, "request failed");
            }
            (ReplyStatus::Error(code), error_body(code, &e.to_string()))
        }
    }
}
