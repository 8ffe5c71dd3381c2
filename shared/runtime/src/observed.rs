//! What the node measures as it happens, for `/metrics`: API requests (a duration histogram and
//! the error replies by code, per subject), orders placed by the status they reached, and how
//! long reservation sagas take. (Counters the node keeps anyway are sampled: `metrics.rs`.)

use keel_protocol::{subjects, ErrorCode, ReplyStatus, COMMAND_BATCH};
use keel_telemetry::metrics::{counter, histogram, HistogramVec, IntCounterVec};
use std::sync::OnceLock;
use std::time::Duration;

struct Observed {
    requests: HistogramVec,
    errors: IntCounterVec,
    orders: IntCounterVec,
    sagas: HistogramVec,
}

fn observed() -> &'static Observed {
    static OBSERVED: OnceLock<Observed> = OnceLock::new();
    OBSERVED.get_or_init(|| Observed {
        requests: histogram(
            "keel_api_request_duration_seconds",
            "Requests this node answered on NATS (API subjects, forwarded requests, command batches) by subject and status, and how long they took.",
            &["subject", "status"],
        ),
        errors: counter(
            "keel_api_errors_total",
            "Error replies this node sent on NATS, by subject and error code.",
            &["subject", "code"],
        ),
        orders: counter(
            "keel_orders_placed_total",
            "Orders placed on this node (their owner), by the status they reached when placed.",
            &["status"],
        ),
        sagas: histogram(
            "keel_saga_duration_seconds",
            "Reservation sagas, from their first step (placed, or resumed after a crash or hand-off) to allocated or backordered, and how long they took.",
            &["start", "result"],
        ),
    })
}

/// The `subject` label of a request: an API subject, `commands`, or `other` (a caller's
/// subject must not become a label value of its own).
fn subject_label(subject: &str) -> &'static str {
    if subject == COMMAND_BATCH {
        return COMMAND_BATCH;
    }
    subjects::ALL
        .into_iter()
        .find(|known| *known == subject)
        .unwrap_or("other")
}

/// Books one answered request.
pub(crate) fn request(subject: &str, status: ReplyStatus, took: Duration) {
    let o = observed();
    let subject = subject_label(subject);
    let status_label = match status {
        ReplyStatus::Ok => "ok",
        ReplyStatus::Created => "created",
        ReplyStatus::Error(_) => "error",
    };
    o.requests
        .with_label_values(&[subject, status_label])
        .observe(took.as_secs_f64());
    if let ReplyStatus::Error(code) = status {
        error(subject, code);
    }
}

fn error(subject: &str, code: ErrorCode) {
    observed()
        .errors
        .with_label_values(&[subject, code.as_str()])
        .inc();
}

/// Books an order placed here, in `status` (`allocated`, `backordered`, …).
pub(crate) fn order_placed(status: &str) {
    observed().orders.with_label_values(&[status]).inc();
}

/// Books a reservation saga that ran for `took`.
pub(crate) fn saga(resumed: bool, finished: bool, took: Duration) {
    let start = if resumed { "resumed" } else { "placed" };
    let result = if finished { "finished" } else { "failed" };
    observed()
        .sagas
        .with_label_values(&[start, result])
        .observe(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_known_subjects_become_labels() {
        assert_eq!(
            subject_label(subjects::ORDERS_PLACE),
            subjects::ORDERS_PLACE
        );
        assert_eq!(subject_label("commands"), "commands");
        assert_eq!(subject_label("keel.v1.api.whatever.we.like"), "other");
    }
}
