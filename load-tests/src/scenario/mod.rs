//! Running a scenario: setup, the measured load, settling, reading back, verifying.
//!
//! A scenario ([`steady`], [`promo`]) only builds a [`Plan`]: its catalog, initial stock,
//! operation mix and order shape. The engine here and in [`worker`] is shared; what else a run
//! does while the load runs (count NATS messages, inject faults, sample memory) is a
//! [`LoadWatch`].

pub mod promo;
mod setup;
pub mod steady;
mod worker;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::catalog::Catalog;
use crate::client::{Connector, RetryPolicy};
use crate::collect;
use crate::runlog::RunLog;
use crate::stats::{report_progress, Board, WorkerStats};
use crate::verify::{verify, Verification};
use crate::workload::{LineSpec, Mix, Rng};

/// Pause between verification attempts.
pub const VERIFY_PAUSE: Duration = Duration::from_secs(2);
/// Longest time spent re-verifying while violations remain (lag draining after the load).
const VERIFY_MAX_WAIT: Duration = Duration::from_secs(20);

/// What a scenario does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Scenario name.
    pub name: &'static str,
    /// The run's own catalog.
    pub catalog: Catalog,
    /// Initial receipts: `(slot, units)`.
    pub stock: Vec<(usize, u64)>,
    /// Operation weights.
    pub mix: Mix,
    /// Order shape.
    pub lines: LineSpec,
    /// Share of orders whose fulfillments are walked to `delivered`.
    pub walk_share: f64,
    /// Units per receipt during the run, `lo..=hi`.
    pub receipt_qty: (u32, u32),
    /// Target demand on the hot SKUs as a multiple of their stock (reported against the
    /// achieved one).
    pub demand_target: Option<f64>,
    /// Explanations for the report (e.g. how stock was sized).
    pub notes: Vec<String>,
}

/// How hard and how long.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Length of the measured load.
    pub duration: Duration,
    /// Worker threads.
    pub concurrency: usize,
    /// Open loop target (orders/s across workers), `None` for closed loop.
    pub rate: Option<f64>,
    /// Seed of every random decision.
    pub seed: u64,
    /// Most orders to read back and verify.
    pub verify_sample: usize,
    /// How a worker repeats an ambiguous write before parking it until the load ends.
    pub retry: RetryPolicy,
}

/// Watches the measured load from outside: the NATS server's message counters, faults
/// injected at chosen moments, samples over time.
pub trait LoadWatch: Send {
    /// Setup is done; the workers start right after this returns.
    fn starting(&mut self) {}
    /// Runs on a thread of its own while the workers run (the run waits for it to return).
    fn during(&mut self, _live: &Live<'_>) {}
    /// Every worker has stopped (settling included); verification starts after this returns.
    fn finished(&mut self) {}
}

/// The measured load as a [`LoadWatch`] sees it while it runs.
pub struct Live<'a> {
    /// The workers' measurements so far.
    pub board: &'a Board,
    /// Makes clients of the node under load.
    pub connector: &'a dyn Connector,
    /// Start of the measured window.
    pub start: Instant,
    /// End of the measured window.
    pub deadline: Instant,
    stop: &'a AtomicBool,
}

impl Live<'_> {
    /// Sleeps until `at`; `false` when every worker stopped first (at once when `at` is past).
    pub fn sleep_until(&self, at: Instant) -> bool {
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return false;
            }
            let now = Instant::now();
            if now >= at {
                return true;
            }
            thread::sleep((at - now).min(Duration::from_millis(100)));
        }
    }
}

/// Everything a run produced.
#[derive(Debug)]
pub struct RunOutcome {
    /// The plan that ran.
    pub plan: Plan,
    /// The settings it ran with.
    pub settings: Settings,
    /// Where it ran (base URL).
    pub target: String,
    /// How it talked to Keel (`http`, `nats`).
    pub transport: &'static str,
    /// Measured length of the load phase.
    pub elapsed: Duration,
    /// All workers' measurements.
    pub stats: WorkerStats,
    /// The verdict.
    pub verification: Verification,
    /// Scenario-specific figures for the report.
    pub info: BTreeMap<String, serde_json::Value>,
}

/// Runs `plan` with `watches` looking on (see [`LoadWatch`]). Errors are setup errors (server
/// unreachable, catalog refused …); what goes wrong during the load is measured and verified
/// instead.
pub fn run(
    connector: &dyn Connector,
    plan: Plan,
    settings: Settings,
    watches: &mut [&mut dyn LoadWatch],
) -> anyhow::Result<RunOutcome> {
    let target = connector.target();
    let workers = settings.concurrency;
    eprintln!(
        "keel-load: {} against {target}: prefix {}, seed {}, {} SKUs, {} workers, {}, {:?}",
        plan.name,
        plan.catalog.prefix,
        settings.seed,
        plan.catalog.skus.len(),
        workers,
        settings.rate.map_or("closed loop".to_owned(), |r| format!(
            "open loop at {r} orders/s"
        )),
        settings.duration
    );
    let mut log = setup::create(connector, &plan, workers)?;

    for w in watches.iter_mut() {
        w.starting();
    }
    let board = Board::new(workers);
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let shared = worker::Shared {
        plan: &plan,
        board: &board,
        seed: settings.seed,
        start,
        deadline: start + settings.duration,
        pace: settings
            .rate
            .map(|r| Duration::from_secs_f64(workers as f64 / r)),
        workers,
        retry: settings.retry,
    };
    let live = Live {
        board: &board,
        connector,
        start,
        deadline: shared.deadline,
        stop: &stop,
    };
    let results: Vec<(RunLog, Instant)> = thread::scope(|s| {
        s.spawn(|| report_progress(&board, start, &stop));
        for w in watches.iter_mut() {
            let live = &live;
            s.spawn(move || w.during(live));
        }
        let handles: Vec<_> = (0..workers)
            .map(|i| {
                let shared = &shared;
                s.spawn(move || worker::run(shared, i, connector.connect()))
            })
            .collect();
        let joined: Vec<_> = handles.into_iter().map(|h| h.join()).collect();
        // Stop the other threads before a worker's panic is passed on: the scope waits for them.
        stop.store(true, Ordering::Relaxed);
        joined
            .into_iter()
            .map(|r| r.expect("worker panicked"))
            .collect()
    });
    let mut load_end = start;
    for (worker_log, end) in results {
        log.merge(worker_log);
        load_end = load_end.max(end);
    }
    let elapsed = load_end - start;
    let stats = board.snapshot();
    for w in watches.iter_mut() {
        w.finished();
    }

    let sample = sample(log.orders.len(), settings.verify_sample, settings.seed);
    eprintln!(
        "keel-load: load done in {:.1}s; verifying {} SKU-locations and {} of {} orders{}",
        elapsed.as_secs_f64(),
        plan.catalog.slots(),
        sample.len(),
        log.orders.len(),
        if sample.len() < log.orders.len() {
            " (sampled)"
        } else {
            ""
        }
    );
    let expected = log.expected(&plan.catalog, &sample);
    let ids: Vec<String> = expected.orders.iter().map(|o| o.id.clone()).collect();
    let (verification, observed) =
        verify_converged(connector, workers.min(16), &plan.catalog, &expected, &ids);
    let info = scenario_info(&plan, &log, &observed);
    Ok(RunOutcome {
        plan,
        settings,
        target,
        transport: connector.transport(),
        elapsed,
        stats,
        verification,
        info,
    })
}

/// Reads the end state and verifies it, again and again while violations remain.
///
/// Order and SKU-location state converge through messages after the load stops (a backorder
/// filled at a SKU-location reaches its order once the node's delivery backlog drains, which
/// after a heavy run takes seconds), so a violation that is only lag disappears on a later
/// read. Real ones persist: whatever remains after [`VERIFY_MAX_WAIT`] (or when some reads
/// failed) is reported.
fn verify_converged(
    connector: &dyn Connector,
    threads: usize,
    catalog: &Catalog,
    expected: &crate::verify::Expected,
    ids: &[String],
) -> (Verification, crate::verify::Observed) {
    let started = Instant::now();
    let mut first_total = 0;
    let mut attempt = 0;
    loop {
        attempt += 1;
        let observed = collect::observe(connector, threads, catalog, ids);
        let mut v = verify(expected, &observed);
        let total = v.violations_total;
        if attempt == 1 {
            first_total = total;
        }
        if total == 0 || !observed.complete() || started.elapsed() >= VERIFY_MAX_WAIT {
            v.verified.attempts = attempt;
            v.verified.first_read_violations = first_total;
            return (v, observed);
        }
        eprintln!(
            "keel-load: {total} violations; reading again in {VERIFY_PAUSE:?} (for at most \
             {VERIFY_MAX_WAIT:?}) in case it is lag, e.g."
        );
        for msg in v.violations.iter().take(3) {
            eprintln!("  - {msg}");
        }
        thread::sleep(VERIFY_PAUSE);
    }
}

/// Sorted indexes of `k` of `n` items chosen with `seed` (all of them when `n <= k`).
pub fn sample(n: usize, k: usize, seed: u64) -> Vec<usize> {
    let mut all: Vec<usize> = (0..n).collect();
    if n > k {
        let mut rng = Rng::stream(seed, u64::MAX);
        for i in 0..k {
            let j = i + rng.below(n - i);
            all.swap(i, j);
        }
        all.truncate(k);
        all.sort_unstable();
    }
    all
}

/// Figures about the hot (scarce) SKUs, when the plan has some.
fn scenario_info(
    plan: &Plan,
    log: &RunLog,
    observed: &crate::verify::Observed,
) -> BTreeMap<String, serde_json::Value> {
    let cat = &plan.catalog;
    let hot = cat.hot();
    let mut info = BTreeMap::new();
    if hot.is_empty() {
        return info;
    }
    let stock: u64 = plan
        .stock
        .iter()
        .filter(|(slot, _)| hot.contains(&cat.unslot(*slot).0))
        .map(|(_, q)| q)
        .sum();
    let demanded = log.demand(|sku| hot.contains(&sku));
    let allocated: i64 = observed
        .positions
        .iter()
        .filter(|p| cat.sku(&p.sku).is_some_and(|s| hot.contains(&s)))
        .filter_map(|p| match &p.position {
            crate::verify::Fetched::Ok(p) => Some(p.allocated),
            _ => None,
        })
        .sum();
    let multiple = if stock == 0 {
        0.0
    } else {
        demanded as f64 / stock as f64
    };
    info.insert("scarce_skus".into(), hot.len().into());
    info.insert("scarce_stock_units".into(), stock.into());
    info.insert("scarce_units_demanded".into(), demanded.into());
    info.insert(
        "scarce_demand_multiple".into(),
        ((multiple * 100.0).round() / 100.0).into(),
    );
    info.insert("scarce_units_allocated".into(), allocated.into());
    if let Some(target) = plan.demand_target {
        info.insert("scarce_demand_target".into(), target.into());
    }
    info
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_seeded_distinct_and_bounded() {
        assert_eq!(sample(5, 10, 1), [0, 1, 2, 3, 4]);
        let s = sample(1000, 50, 9);
        assert_eq!(s.len(), 50);
        assert!(s.windows(2).all(|w| w[0] < w[1]) && s[49] < 1000);
        assert_eq!(s, sample(1000, 50, 9));
        assert_ne!(s, sample(1000, 50, 10));
    }
}
