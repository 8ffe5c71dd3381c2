//! W3C trace context (`traceparent`, `tracestate`) on message headers.
//!
//! Headers are the bus' single-valued map (`BTreeMap<String, String>`, which is what
//! `keel_bus::Headers` is), so this crate needs no bus dependency.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::collections::BTreeMap;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The header map trace context travels in.
type Headers = BTreeMap<String, String>;

struct Writer<'a>(&'a mut Headers);

impl Injector for Writer<'_> {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

struct Reader<'a>(&'a Headers);

impl Extractor for Reader<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .get(key)
            .or_else(|| {
                // HTTP and some clients capitalise header names.
                self.0
                    .iter()
                    .find(|(name, _)| name.eq_ignore_ascii_case(key))
                    .map(|(_, value)| value)
            })
            .map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

/// Writes `span`'s trace context into `headers` (`traceparent`, and `tracestate` if any).
pub fn inject(span: &tracing::Span, headers: &mut Headers) {
    let context = span.context();
    if context.span().span_context().is_valid() {
        TraceContextPropagator::new().inject_context(&context, &mut Writer(headers));
    }
}

/// `span`'s `traceparent`, to store with a message that is sent later (an outbox entry).
pub fn traceparent(span: &tracing::Span) -> Option<String> {
    let mut headers = Headers::new();
    inject(span, &mut headers);
    headers.remove("traceparent")
}

/// Makes `span` a child of the trace context in `headers`; without one it stays a root (or
/// keeps the parent it was created with).
pub fn set_parent_from(span: &tracing::Span, headers: &Headers) {
    if !headers
        .keys()
        .any(|k| k.eq_ignore_ascii_case("traceparent"))
    {
        return;
    }
    let context = TraceContextPropagator::new().extract(&Reader(headers));
    if context.span().span_context().is_valid() {
        // Fails only when the span is disabled (filtered out): then there is nothing to link.
        let _ = span.set_parent(context);
    }
}

/// Makes `span` a child of `traceparent` (as stored by [`traceparent`]).
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if let Some(traceparent) = traceparent {
        let headers = Headers::from([("traceparent".to_owned(), traceparent.to_owned())]);
        set_parent_from(span, &headers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_traceparent_is_ignored() {
        let headers = Headers::from([("traceparent".to_owned(), "nonsense".to_owned())]);
        let context = TraceContextPropagator::new().extract(&Reader(&headers));
        assert!(!context.span().span_context().is_valid());
    }

    #[test]
    fn header_names_are_matched_case_insensitively() {
        let headers = Headers::from([(
            "Traceparent".to_owned(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_owned(),
        )]);
        let context = TraceContextPropagator::new().extract(&Reader(&headers));
        assert_eq!(
            context.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
    }
}
