//! Logging, tracing and OpenTelemetry for Keel's binaries, and W3C trace context on message
//! headers so that one order is one trace across every hop.
//!
//! [`init`] installs the global subscriber: log lines (text or JSON, filtered by `RUST_LOG`,
//! default `info`) and an OpenTelemetry layer. Spans are exported over OTLP/HTTP only when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard `OTEL_*` variables apply); otherwise they
//! are not recorded, but every span still has a trace context, so [`inject`] and
//! [`set_parent`] carry `traceparent`/`tracestate` across NATS and HTTP hops either way.

mod propagation;

pub use propagation::{inject, set_parent, set_parent_from, traceparent};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keeps the span exporter alive; dropping it flushes what is still buffered.
#[must_use = "dropping the guard stops the span exporter"]
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
    exporting: bool,
}

impl Telemetry {
    /// Whether spans are exported (`OTEL_EXPORTER_OTLP_ENDPOINT` was set).
    pub fn exporting(&self) -> bool {
        self.exporting
    }
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("flushing spans at shutdown failed: {e}");
        }
    }
}

/// Installs the global subscriber for `service` (the OpenTelemetry `service.name`). Call once,
/// first thing in `main`, outside any async runtime.
pub fn init(format: LogFormat, service: &'static str) -> Telemetry {
    let (provider, exporting) = match tracer_provider(service) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("span export is off: {e}");
            (unrecorded_provider(service), false)
        }
    };
    let otel = otel_layer(&provider, service);
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Logs go to stderr, so a command's own output on stdout (`keel cluster status --json`)
    // stays clean to pipe.
    let fmt = tracing_subscriber::fmt::layer()
        .with_target(false)
        .with_writer(std::io::stderr);
    let logs = match format {
        LogFormat::Text => fmt.with_filter(filter()).boxed(),
        LogFormat::Json => fmt.json().with_filter(filter()).boxed(),
    };
    let result = tracing_subscriber::registry()
        .with(logs)
        .with(otel.with_filter(filter()))
        .try_init();
    if let Err(e) = result {
        eprintln!("logging was already set up: {e}");
    }
    Telemetry {
        provider,
        exporting,
    }
}

/// The OpenTelemetry layer for a subscriber, on `provider` (tests pass one with an in-memory
/// exporter).
pub fn otel_layer<S>(
    provider: &SdkTracerProvider,
    service: &'static str,
) -> tracing_opentelemetry::OpenTelemetryLayer<S, opentelemetry_sdk::trace::Tracer>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    tracing_opentelemetry::layer().with_tracer(provider.tracer(service))
}

fn tracer_provider(service: &'static str) -> Result<(SdkTracerProvider, bool), String> {
    if std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").is_none() {
        return Ok((unrecorded_provider(service), false));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("the OTLP exporter could not be built: {e}"))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource(service))
        .build();
    Ok((provider, true))
}

/// Spans get trace and span ids (so trace context propagates) but are never recorded.
fn unrecorded_provider(service: &'static str) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .with_resource(resource(service))
        .build()
}

fn resource(service: &'static str) -> opentelemetry_sdk::Resource {
    opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build()
}
