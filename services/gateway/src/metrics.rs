//! The gateway's request metrics: a duration histogram per route, method and status, and the
//! error replies by route and code (a handler tags its response with the code it answered).

use actix_web::HttpResponse;
use keel_protocol::ErrorCode;
use keel_telemetry::metrics::{counter, histogram, HistogramVec, IntCounterVec};
use std::sync::OnceLock;
use std::time::Duration;

struct HttpMetrics {
    duration: HistogramVec,
    errors: IntCounterVec,
    detours: IntCounterVec,
}

fn metrics() -> &'static HttpMetrics {
    static METRICS: OnceLock<HttpMetrics> = OnceLock::new();
    METRICS.get_or_init(|| HttpMetrics {
        duration: histogram(
            "keel_http_request_duration_seconds",
            "HTTP requests by route pattern, method and status, and how long they took.",
            &["route", "method", "status"],
        ),
        errors: counter(
            "keel_http_errors_total",
            "HTTP error replies by route pattern and error code.",
            &["route", "code"],
        ),
        detours: counter(
            "keel_http_owner_detours_total",
            "Requests sent to their partition's owner that nobody served there at that moment (a hand-off) and went by the API subject instead, by subject.",
            &["subject"],
        ),
    })
}

/// Books a request that had to go the long way round (see `with_owner_routing`).
pub(crate) fn detour(subject: &str) {
    metrics().detours.with_label_values(&[subject]).inc();
}

/// Books one answered request.
pub(crate) fn observe<B>(route: &str, method: &str, response: &HttpResponse<B>, took: Duration) {
    let m = metrics();
    let status = response.status().as_u16().to_string();
    m.duration
        .with_label_values(&[route, method, status.as_str()])
        .observe(took.as_secs_f64());
    if let Some(code) = response.extensions().get::<ErrorCode>() {
        m.errors.with_label_values(&[route, code.as_str()]).inc();
    }
}

/// Marks `response` as answering `code`, for [`observe`].
pub(crate) fn tag(mut response: HttpResponse, code: ErrorCode) -> HttpResponse {
    response.extensions_mut().insert(code);
    response
}
