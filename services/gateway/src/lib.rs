//! Keel's HTTP API: actix-web routes that forward to the node's request-reply API on the bus.
//!
//! The gateway holds no state of its own: every route is a subject plus a JSON body, and every
//! reply's status header becomes the HTTP status (see docs/http-api.md).

mod body;
mod metrics;
mod routes;
mod tracing_middleware;

use keel_bus::SharedBus;
use std::sync::Arc;
use std::time::Duration;

pub use routes::configure;
pub use tracing_middleware::traced;

/// The subject of the node serving the entity a request (API subject, body) is about, if the
/// request is about one and the partitioning is known.
pub type Owner = Arc<dyn Fn(&str, &[u8]) -> Option<String> + Send + Sync>;

/// The largest request body accepted (`413 payload_too_large` above it).
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// What the gateway's handlers share.
#[derive(Clone)]
pub struct Gateway {
    bus: SharedBus,
    timeout: Duration,
    ready: Arc<dyn Fn() -> bool + Send + Sync>,
    owner: Option<Owner>,
    status: Arc<dyn Fn() -> serde_json::Value + Send + Sync>,
}

impl Gateway {
    /// A gateway that asks `bus` and reports readiness from `ready`; `/metrics` renders the
    /// process' registry (`keel_telemetry::metrics`).
    pub fn new(bus: SharedBus, ready: Arc<dyn Fn() -> bool + Send + Sync>) -> Self {
        Gateway {
            bus,
            timeout: Duration::from_secs(10),
            ready,
            owner: None,
            status: Arc::new(|| serde_json::json!({})),
        }
    }

    /// Sends a request about one entity straight to the subject of the node serving the
    /// entity's partition, as `owner` names it (one hop instead of two in a cluster), and on
    /// the API subject when it names none. When nobody answers there (a hand-off is under
    /// way), the request goes on the API subject after all, where a node forwards it.
    pub fn with_owner_routing(mut self, owner: Owner) -> Self {
        self.owner = Some(owner);
        self
    }

    /// Serves `status` on `GET /status` (the node's place in its cluster).
    pub fn with_status(mut self, status: Arc<dyn Fn() -> serde_json::Value + Send + Sync>) -> Self {
        self.status = status;
        self
    }

    /// How long a request waits for the node's reply before it is answered `503 unavailable`
    /// (default 10 s; the client retries with the same ids). It also bounds how long a request
    /// in flight when a NATS server dies waits for the reply that will not come.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}
