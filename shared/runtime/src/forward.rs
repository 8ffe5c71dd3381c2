//! Requests to the node that serves a partition (`keel.v1.fwd.{partition}.<subject>`, which
//! only that node subscribes to): how a request about an entity served elsewhere, or an
//! actor reading a SKU-location another node serves, gets its answer.

use crate::Error;
use keel_bus::SharedBus;
use keel_protocol::{ErrorCode, ReplyStatus};
use serde_json::Value;
use std::time::{Duration, Instant};

/// A reply as the serving node answered it: its status and JSON body, or its error.
pub(crate) type Reply = Result<(ReplyStatus, Value), Error>;

/// How long a forwarded request keeps trying while its partition has no serving node (a
/// hand-off, or a lost node whose lease has yet to lapse), before it answers `unavailable`.
const FORWARD_BUDGET: Duration = Duration::from_secs(8);
/// The longest pause between two tries.
const FORWARD_BACKOFF_MAX: Duration = Duration::from_millis(200);

/// Sends a request to the node serving `partition` and answers its reply, trying again
/// while nobody serves the partition (for up to [`FORWARD_BUDGET`]): every write is
/// idempotent, so a repeat is harmless.
pub(crate) async fn forward(
    bus: &SharedBus,
    partition: u32,
    subject: &str,
    headers: keel_bus::Headers,
    payload: &[u8],
) -> Reply {
    let to = keel_protocol::forwarded_subject(partition, subject);
    let deadline = Instant::now() + FORWARD_BUDGET;
    let mut backoff = Duration::from_millis(5);
    loop {
        let mut headers = headers.clone();
        keel_telemetry::inject(&tracing::Span::current(), &mut headers);
        let left = deadline.saturating_duration_since(Instant::now());
        let answered = bus
            .request(&to, headers, payload.to_vec().into(), left.max(backoff))
            .await;
        let outcome = match answered {
            Ok(reply) => decode(&reply),
            Err(keel_bus::Error::NoResponders(_)) => Err(Error::Moved(format!(
                "no node serves partition {partition} now"
            ))),
            Err(e) => Err(Error::from(e)),
        };
        let retry = match &outcome {
            Err(Error::Remote { code, .. }) => *code == ErrorCode::Unavailable,
            Err(Error::Moved(_)) => true,
            _ => false,
        };
        if !retry || Instant::now() + backoff >= deadline {
            return outcome;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(FORWARD_BACKOFF_MAX);
    }
}

/// A reply from another node, as this node would have answered it.
fn decode(reply: &keel_bus::Message) -> Reply {
    let body: Value = serde_json::from_slice(&reply.payload)
        .map_err(|e| Error::Internal(format!("a node answered something that is not JSON: {e}")))?;
    match ReplyStatus::from_headers(&reply.headers) {
        ReplyStatus::Error(code) => Err(Error::Remote {
            code,
            message: body["error"]["message"]
                .as_str()
                .unwrap_or("the serving node failed")
                .to_owned(),
        }),
        status => Ok((status, body)),
    }
}
