//! Measurements: latency histograms (microseconds), counters, and the live progress line.
//!
//! Each worker records into its own [`WorkerStats`] behind a mutex in the [`Board`]; the lock is
//! uncontended except when the progress thread takes a snapshot once per second.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use parking_lot::Mutex;
use serde::Serialize;

/// Highest latency a histogram tracks exactly (one hour); longer ones saturate.
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram: 1 µs to 1 h with three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

/// Records `d` in microseconds (at least 1).
pub fn record(h: &mut Histogram<u64>, d: Duration) {
    h.saturating_record((d.as_micros() as u64).max(1));
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct LatencySummary {
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
    /// Number of samples.
    pub count: u64,
}

impl LatencySummary {
    /// Summarizes `h`; all zero when it is empty.
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return LatencySummary::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        LatencySummary {
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            count: h.len(),
        }
    }
}

/// Operation counters (attempted operations, not replies).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// Orders sent.
    pub orders_sent: u64,
    /// Receipts acknowledged during the run.
    pub receipts: u64,
    /// Cancels acknowledged during the run.
    pub cancels: u64,
    /// Warehouse confirmations acknowledged during the run.
    pub confirmations: u64,
    /// Walked fulfillments that reached `delivered`.
    pub delivered: u64,
    /// Ambiguous operations settled (acknowledged or refused) after the measured window.
    pub settled_late: u64,
    /// Ambiguous operations whose outcome stayed unknown.
    pub unresolved: u64,
}

impl OpCounts {
    fn add(&mut self, o: &OpCounts) {
        self.orders_sent += o.orders_sent;
        self.receipts += o.receipts;
        self.cancels += o.cancels;
        self.confirmations += o.confirmations;
        self.delivered += o.delivered;
        self.settled_late += o.settled_late;
        self.unresolved += o.unresolved;
    }
}

/// What one worker measured.
#[derive(Debug, Clone)]
pub struct WorkerStats {
    /// Orders answered 2xx within the measured window.
    pub accepted: u64,
    /// Accept latency: order placement round trip (from the scheduled send time in open loop).
    pub accept: Histogram<u64>,
    /// Placement → `delivered` acknowledged, per walked fulfillment.
    pub e2e: Histogram<u64>,
    /// Failed attempts by error code.
    pub errors: BTreeMap<String, u64>,
    /// Order status in the placement reply.
    pub accept_statuses: BTreeMap<String, u64>,
    /// Operation counters.
    pub ops: OpCounts,
}

impl Default for WorkerStats {
    fn default() -> Self {
        WorkerStats {
            accepted: 0,
            accept: new_histogram(),
            e2e: new_histogram(),
            errors: BTreeMap::new(),
            accept_statuses: BTreeMap::new(),
            ops: OpCounts::default(),
        }
    }
}

/// Increments `map[key]`, allocating the key only the first time.
pub fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(c) => *c += 1,
        None => {
            map.insert(key.to_owned(), 1);
        }
    }
}

impl WorkerStats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &WorkerStats) {
        self.accepted += other.accepted;
        // Same bounds on both sides: addition cannot fail.
        self.accept
            .add(&other.accept)
            .expect("same histogram bounds");
        self.e2e.add(&other.e2e).expect("same histogram bounds");
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.accept_statuses {
            *self.accept_statuses.entry(k.clone()).or_default() += v;
        }
        self.ops.add(&other.ops);
    }

    /// Total failed attempts.
    pub fn error_total(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// The workers' stats, readable while they run.
#[derive(Debug)]
pub struct Board {
    workers: Vec<Mutex<WorkerStats>>,
}

impl Board {
    /// A board for `n` workers.
    pub fn new(n: usize) -> Self {
        Board {
            workers: (0..n).map(|_| Mutex::new(WorkerStats::default())).collect(),
        }
    }

    /// Worker `i`'s stats.
    pub fn worker(&self, i: usize) -> &Mutex<WorkerStats> {
        &self.workers[i]
    }

    /// Orders accepted so far (cheaper than a [`Board::snapshot`]).
    pub fn accepted(&self) -> u64 {
        self.workers.iter().map(|w| w.lock().accepted).sum()
    }

    /// Everything recorded so far, merged.
    pub fn snapshot(&self) -> WorkerStats {
        let mut all = WorkerStats::default();
        for w in &self.workers {
            all.merge(&w.lock());
        }
        all
    }
}

/// One progress line: elapsed, orders/s over the last interval, total accepted, p99 so far,
/// errors.
pub fn progress_line(elapsed: Duration, per_sec: f64, snapshot: &WorkerStats) -> String {
    format!(
        "[{:>5.1}s] {:>8.0} orders/s | accepted {:>9} | p99 {:>8.2} ms | errors {}",
        elapsed.as_secs_f64(),
        per_sec,
        snapshot.accepted,
        LatencySummary::of(&snapshot.accept).p99,
        snapshot.error_total()
    )
}

/// Prints a progress line to stderr about once per second until `stop` is set.
pub fn report_progress(board: &Board, start: Instant, stop: &AtomicBool) {
    let mut last_count = 0;
    let mut last_at = start;
    let mut next = start + Duration::from_secs(1);
    while !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        let snap = board.snapshot();
        let per_sec = (snap.accepted - last_count) as f64 / (now - last_at).as_secs_f64();
        eprintln!("{}", progress_line(now - start, per_sec, &snap));
        last_count = snap.accepted;
        last_at = now;
        next += Duration::from_secs(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_distribution() {
        let mut h = new_histogram();
        for us in 1..=10_000u64 {
            h.record(us).unwrap();
        }
        let s = LatencySummary::of(&h);
        assert_eq!(s.count, 10_000);
        // Three significant digits: quantiles within 0.1% of the exact value.
        assert!((s.p50 - 5.0).abs() < 0.01, "{s:?}");
        assert!((s.p90 - 9.0).abs() < 0.01, "{s:?}");
        assert!((s.p99 - 9.9).abs() < 0.01, "{s:?}");
        assert!((s.p999 - 9.99).abs() < 0.02, "{s:?}");
        assert!((s.max - 10.0).abs() < 0.01, "{s:?}");
        assert_eq!(
            LatencySummary::of(&new_histogram()),
            LatencySummary::default()
        );
    }

    #[test]
    fn record_clamps_to_bounds() {
        let mut h = new_histogram();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(10_000));
        assert_eq!(h.min(), 1);
        assert!(h.max() >= MAX_LATENCY_US);
    }

    #[test]
    fn merge_adds_everything() {
        let mut a = WorkerStats::default();
        let mut b = WorkerStats::default();
        a.accepted = 2;
        b.accepted = 3;
        record(&mut a.accept, Duration::from_millis(1));
        record(&mut b.accept, Duration::from_millis(3));
        bump(&mut a.errors, "transport");
        bump(&mut b.errors, "transport");
        bump(&mut b.errors, "unavailable");
        bump(&mut b.accept_statuses, "released");
        b.ops.receipts = 4;
        let board = Board::new(2);
        board.worker(0).lock().accepted = 2;
        board.worker(1).lock().accepted = 3;
        assert_eq!(board.accepted(), 5);
        a.merge(&b);
        assert_eq!(a.accepted, 5);
        assert_eq!(a.accept.len(), 2);
        assert_eq!(a.errors["transport"], 2);
        assert_eq!(a.error_total(), 3);
        assert_eq!(a.accept_statuses["released"], 1);
        assert_eq!(a.ops.receipts, 4);
        let line = progress_line(Duration::from_secs(3), 1234.0, &a);
        assert!(
            line.contains("1234 orders/s") && line.contains("errors 3"),
            "{line}"
        );
    }
}
