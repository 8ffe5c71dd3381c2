//! Logging, tracing and OpenTelemetry for Keel's binaries, and W3C trace context on message
//! headers so that one order is one trace across every hop.
//!
//! [`init`] installs the global subscriber: log lines (text or JSON, filtered by `RUST_LOG`,
//! default `info`) and an OpenTelemetry layer with a filter of its own (`KEEL_TRACE_FILTER`,
//! default `info`), so that quiet logs (`RUST_LOG=warn`) do not silence traces. Spans are
//! exported over OTLP/HTTP only when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (the standard
//! `OTEL_*` variables apply: `OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`);
//! otherwise they are not recorded, but every span still has a trace context, so [`inject`]
//! and [`set_parent`] carry `traceparent`/`tracestate` across NATS and HTTP hops either way.
//! Exported spans name their process: `service.name` and `service.instance.id` (a node's id).

pub mod metrics;
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

/// The variable whose directives (`RUST_LOG` syntax) choose the spans that are traced.
pub const TRACE_FILTER_VAR: &str = "KEEL_TRACE_FILTER";

/// The process that emits spans, as the OpenTelemetry resource names it.
#[derive(Debug, Clone)]
pub struct Service {
    /// `service.name` (`keel`).
    pub name: &'static str,
    /// `service.instance.id`: which one of the service's processes (a node's id).
    pub instance: String,
}

/// Installs the global subscriber for `service`. Call once, first thing in `main`, outside any
/// async runtime.
pub fn init(format: LogFormat, service: &Service) -> Telemetry {
    let (provider, exporting) = match tracer_provider(service) {
        Ok(found) => found,
        Err(e) => {
            eprintln!("span export is off: {e}");
            (unrecorded_provider(service), false)
        }
    };
    let otel = otel_layer(&provider, service.name);
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let trace_filter = EnvFilter::try_from_env(TRACE_FILTER_VAR).unwrap_or_else(|e| {
        if std::env::var_os(TRACE_FILTER_VAR).is_some() {
            eprintln!("{TRACE_FILTER_VAR} is not a valid filter ({e}); tracing at `info`");
        }
        EnvFilter::new("info")
    });
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
        .with(otel.with_filter(trace_filter))
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

fn tracer_provider(service: &Service) -> Result<(SdkTracerProvider, bool), String> {
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
fn unrecorded_provider(service: &Service) -> SdkTracerProvider {
    SdkTracerProvider::builder()
        .with_sampler(Sampler::AlwaysOff)
        .with_resource(resource(service))
        .build()
}

/// The resource of every span: what `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES` say
/// (the SDK's detectors read them; `service.name` defaults to the service's), with the
/// instance set over it.
fn resource(service: &Service) -> opentelemetry_sdk::Resource {
    let builder = opentelemetry_sdk::Resource::builder();
    let builder = match std::env::var_os("OTEL_SERVICE_NAME") {
        Some(_) => builder,
        None => builder.with_service_name(service.name),
    };
    builder
        .with_attribute(opentelemetry::KeyValue::new(
            "service.instance.id",
            service.instance.clone(),
        ))
        .build()
}
