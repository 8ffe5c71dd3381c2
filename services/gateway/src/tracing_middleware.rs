//! One span per HTTP request, continuing the caller's trace (`traceparent` header) if it sent
//! one; the route handlers then carry that span's context onto the bus. Each request is also
//! booked in the gateway's metrics.

use actix_web::dev::{Service, ServiceRequest, ServiceResponse};
use std::collections::BTreeMap;
use std::future::Future;
use std::time::Instant;
use tracing::Instrument;

/// Middleware for `App::wrap_fn`: runs the request inside an `http.request` span.
pub fn traced<S, B>(
    request: ServiceRequest,
    service: &S,
) -> impl Future<Output = Result<ServiceResponse<B>, actix_web::Error>>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = actix_web::Error>,
{
    let context: BTreeMap<String, String> = request
        .headers()
        .iter()
        .filter(|(name, _)| *name == "traceparent" || *name == "tracestate")
        .filter_map(|(name, value)| {
            Some((name.as_str().to_owned(), value.to_str().ok()?.to_owned()))
        })
        .collect();
    let route = request
        .match_pattern()
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().to_string();
    let span = tracing::info_span!("http.request", method = %method, route = %route);
    keel_telemetry::set_parent_from(&span, &context);
    let started = Instant::now();
    let answered = service.call(request).instrument(span);
    async move {
        let response = answered.await?;
        crate::metrics::observe(&route, &method, response.response(), started.elapsed());
        Ok(response)
    }
}
