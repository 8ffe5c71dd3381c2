//! The store's latency histograms (in the process's one registry, `keel_telemetry::metrics`).

use keel_telemetry::metrics::{histogram, Histogram};
use std::sync::OnceLock;

/// Waits for `flushed` (a durable write's commit round, [`crate::Store::flush`]), booking how
/// long it took.
pub(crate) async fn flush_wait<T>(flushed: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let outcome = flushed.await;
    flush_waits().observe(started.elapsed().as_secs_f64());
    outcome
}

fn flush_waits() -> &'static Histogram {
    static WAITS: OnceLock<Histogram> = OnceLock::new();
    WAITS.get_or_init(|| {
        histogram(
            "keel_store_flush_wait_seconds",
            "How long a durable write waited for its commit round: the log's write and fsync, or in a cluster the round's changelog messages.",
            &[],
        )
        .with_label_values::<&str>(&[])
    })
}

/// How long the log took to write a commit round, with its fsync when anyone waited for one
/// (`fsync="true"`) or without.
pub(crate) fn rounds(fsync: bool) -> &'static Histogram {
    static ROUNDS: OnceLock<[Histogram; 2]> = OnceLock::new();
    let [without, with] = ROUNDS.get_or_init(|| {
        let family = histogram(
            "keel_store_round_seconds",
            "How long the partition log took to write one commit round (every partition's records of it as one value each), and to fsync it when a writer waited.",
            &["fsync"],
        );
        [
            family.with_label_values(&["false"]),
            family.with_label_values(&["true"]),
        ]
    });
    if fsync {
        with
    } else {
        without
    }
}
