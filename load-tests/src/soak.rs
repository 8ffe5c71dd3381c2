//! `soak`: a long `steady` day with a sample every `--sample-every`: the Keel process'
//! resident memory (`VmRSS` of `/proc/<--keel-pid>/status`), and the orders/s and accept
//! latency of the interval since the previous sample. The summary gets the series and the
//! memory growth: the median RSS of the last third of the samples minus that of the first third
//! (medians, so one garbage-collection-like spike does not decide it).

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::report::Summary;
use crate::scenario::{Live, LoadWatch};
use crate::stats::{LatencySummary, WorkerStats};

/// One sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Sample {
    /// Seconds since the start of the load.
    pub t_s: f64,
    /// Resident memory of the Keel process (`null` without `--keel-pid`, or when unreadable).
    pub rss_bytes: Option<u64>,
    /// Orders accepted in the interval ending here, per second.
    pub orders_per_sec: f64,
    /// Median accept latency in the interval, ms.
    pub p50_ms: f64,
    /// 99th percentile accept latency in the interval, ms.
    pub p99_ms: f64,
}

/// Takes the samples while the load runs (a [`LoadWatch`]).
pub struct Sampler {
    every: Duration,
    pid: Option<u32>,
    samples: Vec<Sample>,
    rss_error: Option<String>,
}

impl Sampler {
    /// Samples every `every`; the memory of process `pid` when given.
    pub fn new(every: Duration, pid: Option<u32>) -> Self {
        Sampler {
            every,
            pid,
            samples: Vec::new(),
            rss_error: None,
        }
    }

    /// Puts the series, the growth and what was not sampled into `summary`.
    pub fn report(self, summary: &mut Summary) {
        let rss: Vec<u64> = self.samples.iter().filter_map(|s| s.rss_bytes).collect();
        summary.rss_growth_bytes = rss_growth(&rss);
        match (self.pid, self.rss_error) {
            (None, _) => summary.notes.push(
                "memory not sampled: pass --keel-pid PID (e.g. \"$(pgrep -x keel)\") of the node"
                    .into(),
            ),
            (Some(pid), Some(e)) => summary
                .notes
                .push(format!("memory of pid {pid} not always readable: {e}")),
            (Some(_), None) if summary.rss_growth_bytes.is_none() => summary
                .notes
                .push("fewer than 3 samples: no memory growth figure".into()),
            (Some(_), None) => {}
        }
        summary.samples = Some(self.samples);
    }

    /// The sample at `t` of the interval since `previous` (cumulative stats at that time).
    fn sample(
        &mut self,
        t: Duration,
        interval: Duration,
        now: &WorkerStats,
        previous: &WorkerStats,
    ) -> Sample {
        let mut accept = now.accept.clone();
        accept
            .subtract(&previous.accept)
            .expect("a later snapshot holds every sample of an earlier one");
        let latency = LatencySummary::of(&accept);
        let rss_bytes = self.pid.and_then(|pid| match read_rss(pid) {
            Ok(bytes) => Some(bytes),
            Err(e) => {
                self.rss_error.get_or_insert(e);
                None
            }
        });
        Sample {
            t_s: (t.as_secs_f64() * 10.0).round() / 10.0,
            rss_bytes,
            orders_per_sec: ((now.accepted - previous.accepted) as f64
                / interval.as_secs_f64().max(1e-9)
                * 10.0)
                .round()
                / 10.0,
            p50_ms: latency.p50,
            p99_ms: latency.p99,
        }
    }
}

impl LoadWatch for Sampler {
    /// One sample per interval up to the end of the measured window (the last one may cover a
    /// shorter interval).
    fn during(&mut self, live: &Live<'_>) {
        let mut previous = WorkerStats::default();
        let mut previous_at = live.start;
        let mut k = 1;
        loop {
            let at: Instant = (live.start + self.every * k).min(live.deadline);
            if !live.sleep_until(at) {
                return;
            }
            let now = live.board.snapshot();
            let s = self.sample(at - live.start, at - previous_at, &now, &previous);
            eprintln!(
                "keel-load: sample at {:.0}s: rss {}, {:.1} orders/s, p50 {:.2} ms, p99 {:.2} ms",
                s.t_s,
                s.rss_bytes.map_or("-".into(), mib),
                s.orders_per_sec,
                s.p50_ms,
                s.p99_ms
            );
            self.samples.push(s);
            if at >= live.deadline {
                return;
            }
            (previous, previous_at, k) = (now, at, k + 1);
        }
    }
}

/// `bytes` in MiB with one decimal, e.g. `45.2 MiB`.
pub fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The resident memory of process `pid`.
fn read_rss(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    parse_vm_rss(&status).ok_or_else(|| format!("{path} has no VmRSS line"))
}

/// The `VmRSS:   123456 kB` line of a `/proc/<pid>/status`, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut words = line.split_whitespace();
    let value: u64 = words.next()?.parse().ok()?;
    let unit = match words.next()? {
        "kB" => 1024,
        "mB" | "MB" => 1024 * 1024,
        "B" => 1,
        _ => return None,
    };
    value.checked_mul(unit)
}

/// Median of the last third of `rss` minus the median of the first third (`None` with fewer
/// than 3 values).
pub fn rss_growth(rss: &[u64]) -> Option<i64> {
    let third = rss.len() / 3;
    if third == 0 {
        return None;
    }
    let first = median(&rss[..third]);
    let last = median(&rss[rss.len() - third..]);
    Some(last as i64 - first as i64)
}

/// Median of a non-empty slice (the mean of the middle two for an even length).
fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let mid = v.len() / 2;
    if v.len() % 2 == 1 {
        v[mid]
    } else {
        ((v[mid - 1] as u128 + v[mid] as u128) / 2) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::record;

    #[test]
    fn vm_rss_is_read_from_the_status_file() {
        let status =
            "Name:\tkeel\nVmPeak:\t  900000 kB\nVmRSS:\t   47832 kB\nRssAnon:\t   40000 kB\n";
        assert_eq!(parse_vm_rss(status), Some(47_832 * 1024));
        assert_eq!(parse_vm_rss("VmRSS: 12 B"), Some(12));
        assert_eq!(parse_vm_rss("Name:\tkeel\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tlots kB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 pages\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12\n"), None);
        // This process has one.
        assert!(read_rss(std::process::id()).unwrap() > 0);
        assert!(read_rss(u32::MAX).is_err());
    }

    #[test]
    fn growth_is_last_third_median_minus_first_third_median() {
        assert_eq!(rss_growth(&[]), None);
        assert_eq!(rss_growth(&[10, 20]), None);
        assert_eq!(rss_growth(&[10, 99, 30]), Some(20));
        // Thirds of 7 are 2: medians of [100, 300] and [500, 900].
        assert_eq!(rss_growth(&[100, 300, 0, 0, 0, 900, 500]), Some(500));
        // A spike inside a third does not move its median.
        assert_eq!(
            rss_growth(&[100, 5000, 100, 7, 7, 7, 150, 150, 9000]),
            Some(50)
        );
        assert_eq!(rss_growth(&[300, 300, 300, 200, 200, 200]), Some(-100));
        assert_eq!(median(&[u64::MAX, u64::MAX]), u64::MAX);
        assert_eq!(median(&[3, 4]), 3);
        assert_eq!(median(&[3, 5]), 4);
    }

    #[test]
    fn a_sample_covers_only_its_interval() {
        let mut sampler = Sampler::new(Duration::from_secs(10), None);
        let mut earlier = WorkerStats {
            accepted: 100,
            ..WorkerStats::default()
        };
        for _ in 0..100 {
            record(&mut earlier.accept, Duration::from_millis(100));
        }
        let mut later = earlier.clone();
        later.accepted = 300;
        for _ in 0..200 {
            record(&mut later.accept, Duration::from_millis(2));
        }
        let s = sampler.sample(
            Duration::from_secs(20),
            Duration::from_secs(10),
            &later,
            &earlier,
        );
        assert_eq!(s.t_s, 20.0);
        assert_eq!(s.orders_per_sec, 20.0);
        assert!(
            (s.p50_ms - 2.0).abs() < 0.01 && (s.p99_ms - 2.0).abs() < 0.01,
            "{s:?}"
        );
        assert_eq!(s.rss_bytes, None);
    }
}
