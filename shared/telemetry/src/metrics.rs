//! The process' metrics: one Prometheus registry (the `prometheus` crate's default one) that
//! `/metrics` renders ([`render`]). Names: `keel_<subsystem>_<name>_<unit>`.
//!
//! Two kinds of metric live in it. Histograms and labelled counters of what happens (a request,
//! a saga, a flush) are made once per process ([`histogram`], [`counter`]) and observed where
//! it happens. Counters and gauges that a component keeps anyway as plain atomics (the store's
//! rounds, the relay's backlog, the cluster's leases) are read at each scrape by a [`sampled`]
//! source rather than copied into a second set of counters.

use prometheus::core::{Collector, Desc};
use prometheus::proto::{Counter, Gauge, LabelPair, Metric, MetricFamily, MetricType};
use prometheus::{Encoder, HistogramOpts, Opts, TextEncoder};
pub use prometheus::{Histogram, HistogramVec, IntCounter, IntCounterVec};
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Latency buckets in seconds, from a local write (0.5 ms) to a request that timed out (10 s).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A histogram family with `labels`, in seconds ([`LATENCY_BUCKETS`]), registered once: a
/// later call with the same name answers the same family.
pub fn histogram(name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    static MADE: Made<HistogramVec> = Mutex::new(BTreeMap::new());
    once(&MADE, name, || {
        let opts = HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec());
        HistogramVec::new(opts, labels)
    })
}

/// A counter family with `labels`, registered once (see [`histogram`]).
pub fn counter(name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    static MADE: Made<IntCounterVec> = Mutex::new(BTreeMap::new());
    once(&MADE, name, || {
        IntCounterVec::new(Opts::new(name, help), labels)
    })
}

/// The families made so far, by name.
type Made<C> = Mutex<BTreeMap<String, C>>;

fn once<C: Collector + Clone + 'static>(
    made: &Made<C>,
    name: &str,
    make: impl FnOnce() -> prometheus::Result<C>,
) -> C {
    let mut made = made
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(family) = made.get(name) {
        return family.clone();
    }
    // A bad name or a clash with another source is a programming error, found by any test.
    let family = make().unwrap_or_else(|e| panic!("metric {name}: {e}"));
    prometheus::register(Box::new(family.clone()))
        .unwrap_or_else(|e| panic!("registering metric {name}: {e}"));
    made.insert(name.to_owned(), family.clone());
    family
}

/// Whether a sampled value only grows or goes up and down.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
}

/// One value read at a scrape.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    /// Label name and value pairs (empty for most).
    pub labels: Vec<(&'static str, String)>,
    pub value: f64,
}

impl Sample {
    /// A counter without labels.
    pub fn counter(name: &'static str, help: &'static str, value: u64) -> Sample {
        Sample::new(name, help, Kind::Counter, value as f64)
    }

    /// A gauge without labels.
    pub fn gauge(name: &'static str, help: &'static str, value: f64) -> Sample {
        Sample::new(name, help, Kind::Gauge, value)
    }

    fn new(name: &'static str, help: &'static str, kind: Kind, value: f64) -> Sample {
        Sample {
            name,
            help,
            kind,
            labels: Vec::new(),
            value,
        }
    }

    /// The same, with a label.
    pub fn with_label(mut self, name: &'static str, value: impl Into<String>) -> Sample {
        self.labels.push((name, value.into()));
        self
    }
}

/// A source of [`Sample`]s read at every scrape.
pub type Sampler = Box<dyn Fn() -> Vec<Sample> + Send + Sync>;

/// Registers `sampler` in the process' registry; its metric names must be its own. A second
/// source naming an existing metric is refused (logged): one process runs one node.
pub fn sampled(sampler: Sampler) {
    let descs = sampler()
        .iter()
        .filter_map(|s| {
            let labels = s.labels.iter().map(|(n, _)| (*n).to_owned()).collect();
            Desc::new(
                s.name.to_owned(),
                s.help.to_owned(),
                labels,
                Default::default(),
            )
            .ok()
        })
        .fold(BTreeMap::new(), |mut descs, desc| {
            descs.entry(desc.fq_name.clone()).or_insert(desc);
            descs
        })
        .into_values()
        .collect();
    if let Err(e) = prometheus::register(Box::new(Sampled { descs, sampler })) {
        tracing::warn!(error = %e, "a metrics source was not registered");
    }
}

struct Sampled {
    descs: Vec<Desc>,
    sampler: Sampler,
}

impl Collector for Sampled {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        families((self.sampler)())
    }
}

/// Groups samples into one family per name, in the order the names first appear.
fn families(samples: Vec<Sample>) -> Vec<MetricFamily> {
    let mut order: Vec<&'static str> = Vec::new();
    let mut by_name: BTreeMap<&'static str, MetricFamily> = BTreeMap::new();
    for sample in samples {
        let family = by_name.entry(sample.name).or_insert_with(|| {
            order.push(sample.name);
            let mut family = MetricFamily::default();
            family.set_name(sample.name.to_owned());
            family.set_help(sample.help.to_owned());
            family.set_field_type(match sample.kind {
                Kind::Counter => MetricType::COUNTER,
                Kind::Gauge => MetricType::GAUGE,
            });
            family
        });
        let mut metric = Metric::default();
        metric.set_label(
            sample
                .labels
                .into_iter()
                .map(|(name, value)| {
                    let mut pair = LabelPair::default();
                    pair.set_name(name.to_owned());
                    pair.set_value(value);
                    pair
                })
                .collect(),
        );
        match sample.kind {
            Kind::Counter => {
                let mut counter = Counter::default();
                counter.set_value(sample.value);
                metric.set_counter(counter);
            }
            Kind::Gauge => {
                let mut gauge = Gauge::default();
                gauge.set_value(sample.value);
                metric.set_gauge(gauge);
            }
        }
        family.mut_metric().push(metric);
    }
    order
        .into_iter()
        .filter_map(|name| by_name.remove(name))
        .collect()
}

/// Every metric of the process, in Prometheus' text format.
pub fn render() -> String {
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&prometheus::gather(), &mut out) {
        tracing::warn!(error = %e, "encoding the metrics failed");
    }
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampled_values_render_as_families_next_to_histograms() {
        sampled(Box::new(|| {
            vec![
                Sample::counter("keel_test_done_total", "Things done.", 7),
                Sample::gauge("keel_test_active", "Active things.", 2.0)
                    .with_label("kind", "order"),
                Sample::gauge("keel_test_active", "Active things.", 1.0).with_label("kind", "hold"),
            ]
        }));
        let latency = histogram("keel_test_seconds", "How long.", &["route"]);
        latency.with_label_values(&["/x"]).observe(0.003);
        let again = histogram("keel_test_seconds", "How long.", &["route"]);
        again.with_label_values(&["/x"]).observe(0.2);
        let text = render();
        for line in [
            "# TYPE keel_test_done_total counter",
            "keel_test_done_total 7",
            "# TYPE keel_test_active gauge",
            "keel_test_active{kind=\"order\"} 2",
            "keel_test_active{kind=\"hold\"} 1",
            "keel_test_seconds_bucket{route=\"/x\",le=\"0.005\"} 1",
            "keel_test_seconds_count{route=\"/x\"} 2",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
