//! The run's summary: a readable table for stdout and the JSON written with `--json-out`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use serde::Serialize;

use crate::chaos::{resumed, Fault};
use crate::raw_nats::{Ceilings, Varz, JS_IN_FLIGHT};
use crate::scenario::RunOutcome;
use crate::soak::{mib, Sample};
use crate::stats::{LatencySummary, OpCounts};
use crate::verify::Verified;

/// Violations printed in the table (the JSON has up to [`crate::verify::MAX_VIOLATIONS`]).
const TABLE_VIOLATIONS: usize = 50;

/// The JSON summary.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Base URL or NATS URL.
    pub target: String,
    /// `http` or `nats`.
    pub transport: &'static str,
    /// Prefix of the run's ids.
    pub prefix: String,
    /// Seed of the run.
    pub seed: u64,
    /// Measured length of the load phase, seconds.
    pub duration_s: f64,
    /// Worker threads.
    pub concurrency: usize,
    /// Open loop target in orders/s (`null` for closed loop).
    pub rate: Option<f64>,
    /// `closed_loop` or `open_loop`.
    pub mode: &'static str,
    /// Orders answered 2xx during the load.
    pub orders_accepted: u64,
    /// `orders_accepted / duration_s`.
    pub orders_per_sec: f64,
    /// Accept latency (order placement round trip).
    pub latency_ms: LatencySummary,
    /// Placement → delivered, for walked fulfillments (when measured).
    pub e2e_latency_ms: Option<LatencySummary>,
    /// Failed attempts by error code.
    pub errors: BTreeMap<String, u64>,
    /// Final status of the verified orders, as read back.
    pub statuses: BTreeMap<String, u64>,
    /// Status in the placement reply.
    pub accept_statuses: BTreeMap<String, u64>,
    /// Operation counters.
    pub operations: OpCounts,
    /// Scenario-specific figures.
    pub scenario_info: BTreeMap<String, serde_json::Value>,
    /// How the scenario was sized, and warnings.
    pub notes: Vec<String>,
    /// What verification checked.
    pub verified: Verified,
    /// Number of violations (the list below may be capped).
    pub violations_total: usize,
    /// Violations; empty when every invariant held.
    pub violations: Vec<String>,
    /// The NATS figures of a `--nats` run (`null` over HTTP).
    pub nats: Option<NatsSummary>,
    /// The faults a `chaos` run injected, in order (`null` for other scenarios).
    pub faults: Option<Vec<Fault>>,
    /// The samples of a `soak` run (`null` for other scenarios).
    pub samples: Option<Vec<Sample>>,
    /// `soak`: median RSS of the last third of the samples minus that of the first third.
    pub rss_growth_bytes: Option<i64>,
}

/// The NATS server's figures, measured in the same run on the same server.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NatsSummary {
    /// Core publish ceiling, msgs/s (`null` with `--skip-raw` or when it failed).
    pub core_publish_msgs_per_sec: Option<f64>,
    /// JetStream pipelined publish ceiling, msgs/s (`null` likewise).
    pub jetstream_publish_msgs_per_sec: Option<f64>,
    /// `orders_per_sec / jetstream_publish_msgs_per_sec`.
    pub keel_to_jetstream_ratio: Option<f64>,
    /// `(in_msgs + out_msgs) / orders_accepted` during the load (`null` without
    /// `--nats-monitor`).
    pub messages_per_order: Option<f64>,
    /// Messages the server received during the load.
    pub in_msgs: Option<u64>,
    /// Messages the server delivered during the load.
    pub out_msgs: Option<u64>,
}

impl NatsSummary {
    /// The figures for a run that accepted `orders` at `orders_per_sec`.
    pub fn new(
        orders: u64,
        orders_per_sec: f64,
        ceilings: Option<&Ceilings>,
        messages: Option<Varz>,
    ) -> Self {
        let js = ceilings.map(|c| c.jetstream_msgs_per_sec);
        NatsSummary {
            core_publish_msgs_per_sec: ceilings.map(|c| c.core_msgs_per_sec.round()),
            jetstream_publish_msgs_per_sec: js.map(f64::round),
            keel_to_jetstream_ratio: js
                .filter(|&js| js > 0.0)
                .map(|js| (orders_per_sec / js * 1e4).round() / 1e4),
            messages_per_order: messages
                .filter(|_| orders > 0)
                .map(|m| round3((m.in_msgs + m.out_msgs) as f64 / orders as f64)),
            in_msgs: messages.map(|m| m.in_msgs),
            out_msgs: messages.map(|m| m.out_msgs),
        }
    }
}

impl Summary {
    /// Summarizes a run.
    pub fn build(o: &RunOutcome) -> Self {
        let secs = o.elapsed.as_secs_f64();
        let e2e = (!o.stats.e2e.is_empty()).then(|| LatencySummary::of(&o.stats.e2e));
        let mut notes = o.plan.notes.clone();
        if let (Some(target), Some(achieved)) = (
            o.plan.demand_target,
            o.info
                .get("scarce_demand_multiple")
                .and_then(|v| v.as_f64()),
        ) {
            if achieved < target {
                notes.push(format!(
                    "scarce demand reached only {achieved}x of the stock (target {target}x): the \
                     server was slower than the sizing assumed; use --rate or a longer --duration"
                ));
            }
        }
        if o.verification.verified.orders_sampled {
            notes.push(format!(
                "orders verified on a seeded sample of {} of {}; all SKU-locations verified",
                o.verification.verified.orders_checked, o.verification.verified.orders_acknowledged
            ));
        }
        let v = &o.verification;
        if v.verified.attempts > 1 {
            notes.push(format!(
                "{} violations on the first read, {} after {} reads {:?} apart (state converging \
                 after the load)",
                v.verified.first_read_violations,
                v.violations_total,
                v.verified.attempts,
                crate::scenario::VERIFY_PAUSE
            ));
        }
        if !o.verification.verified.snapshot_stable {
            notes.push(
                "positions kept changing while they were read; verified the last read".into(),
            );
        }
        Summary {
            scenario: o.plan.name.to_owned(),
            target: o.target.clone(),
            transport: o.transport,
            prefix: o.plan.catalog.prefix.clone(),
            seed: o.settings.seed,
            duration_s: round3(secs),
            concurrency: o.settings.concurrency,
            rate: o.settings.rate,
            mode: if o.settings.rate.is_some() {
                "open_loop"
            } else {
                "closed_loop"
            },
            orders_accepted: o.stats.accepted,
            orders_per_sec: round3(if secs > 0.0 {
                o.stats.accepted as f64 / secs
            } else {
                0.0
            }),
            latency_ms: LatencySummary::of(&o.stats.accept),
            e2e_latency_ms: e2e,
            errors: o.stats.errors.clone(),
            statuses: o.verification.final_statuses.clone(),
            accept_statuses: o.stats.accept_statuses.clone(),
            operations: o.stats.ops,
            scenario_info: o.info.clone(),
            notes,
            verified: o.verification.verified.clone(),
            violations_total: o.verification.violations_total,
            violations: o.verification.violations.clone(),
            nats: None,
            faults: None,
            samples: None,
            rss_growth_bytes: None,
        }
    }

    /// Writes the JSON summary to `path`.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        let json = serde_json::to_string_pretty(self)?;
        std::fs::write(path, json + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let mut row = |k: &str, v: String| {
            let _ = writeln!(t, "{k:<20} {v}");
        };
        row(
            "scenario",
            format!(
                "{} against {} ({})",
                self.scenario, self.target, self.transport
            ),
        );
        row("prefix / seed", format!("{} / {}", self.prefix, self.seed));
        row(
            "load",
            match self.rate {
                Some(r) => format!(
                    "open loop, {r} orders/s target, {} workers",
                    self.concurrency
                ),
                None => format!("closed loop, {} workers", self.concurrency),
            },
        );
        row("duration", format!("{:.1} s", self.duration_s));
        row(
            "orders accepted",
            format!("{} ({:.1}/s)", self.orders_accepted, self.orders_per_sec),
        );
        row("accept latency", latency(&self.latency_ms));
        if let Some(e2e) = &self.e2e_latency_ms {
            row("e2e latency", latency(e2e));
        }
        let ops = &self.operations;
        row(
            "operations",
            format!(
                "orders sent {}, receipts {}, cancels {}, confirmations {}, delivered {}",
                ops.orders_sent, ops.receipts, ops.cancels, ops.confirmations, ops.delivered
            ),
        );
        if ops.settled_late + ops.unresolved > 0 {
            row(
                "ambiguous writes",
                format!(
                    "{} settled late, {} unresolved",
                    ops.settled_late, ops.unresolved
                ),
            );
        }
        row("accept statuses", counts(&self.accept_statuses));
        row("final statuses", counts(&self.statuses));
        row("errors", counts(&self.errors));
        for (k, v) in &self.scenario_info {
            row(k, v.to_string());
        }
        if let Some(n) = &self.nats {
            row(
                "nats ceiling",
                match (
                    n.core_publish_msgs_per_sec,
                    n.jetstream_publish_msgs_per_sec,
                ) {
                    (Some(core), Some(js)) => format!(
                        "core publish {core:.0} msgs/s, JetStream publish {js:.0} msgs/s \
                         ({JS_IN_FLIGHT} acks in flight); Keel orders/s = {} x JetStream",
                        n.keel_to_jetstream_ratio.unwrap_or(0.0)
                    ),
                    _ => "not measured (--skip-raw, or it failed: see the notes)".into(),
                },
            );
            row(
                "nats messages",
                match (n.messages_per_order, n.in_msgs, n.out_msgs) {
                    (Some(per), Some(i), Some(o)) => {
                        format!("{per:.2} per accepted order (in {i}, out {o} during the load)")
                    }
                    _ => "not counted (needs --nats-monitor)".into(),
                },
            );
        }
        for f in self.faults.iter().flatten() {
            row(
                "fault",
                format!(
                    "{} SIGKILLed at {:.1} s: Keel answered again after {} ms, orders were \
                     accepted again after {}",
                    f.what,
                    f.at_s,
                    f.recovery_ms,
                    resumed(f.load_resumed_ms)
                ),
            );
        }
        if let Some(samples) = &self.samples {
            row(
                "samples",
                format!(
                    "{:>7} {:>11} {:>9} {:>9} {:>9}",
                    "t", "rss", "orders/s", "p50 ms", "p99 ms"
                ),
            );
            for s in samples {
                row(
                    "",
                    format!(
                        "{:>6.0}s {:>11} {:>9.1} {:>9.2} {:>9.2}",
                        s.t_s,
                        s.rss_bytes.map_or("-".into(), mib),
                        s.orders_per_sec,
                        s.p50_ms,
                        s.p99_ms
                    ),
                );
            }
            row(
                "rss growth",
                match self.rss_growth_bytes {
                    Some(b) => format!(
                        "{}{} ({b} bytes; last third median - first third median)",
                        if b < 0 { "-" } else { "+" },
                        mib(b.unsigned_abs())
                    ),
                    None => "not measured".into(),
                },
            );
        }
        let v = &self.verified;
        row(
            "verified",
            format!(
                "{} SKU-locations ({} ledger entries, {} reservations, {} backorders), {} of {} \
                 orders{} ({} fulfillments, {} walked)",
                v.sku_locations,
                v.ledger_entries,
                v.reservations,
                v.backorders,
                v.orders_checked,
                v.orders_acknowledged,
                if v.orders_sampled { " sampled" } else { "" },
                v.fulfillments_checked,
                v.walked_fulfillments_checked
            ),
        );
        for n in &self.notes {
            row("note", n.clone());
        }
        if self.violations_total == 0 {
            row("violations", "none: every invariant held".into());
        } else {
            row("violations", self.violations_total.to_string());
            for msg in self.violations.iter().take(TABLE_VIOLATIONS) {
                row("", format!("- {msg}"));
            }
            if self.violations_total > TABLE_VIOLATIONS {
                row(
                    "",
                    format!("… and {} more", self.violations_total - TABLE_VIOLATIONS),
                );
            }
        }
        t
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn latency(l: &LatencySummary) -> String {
    format!(
        "p50 {:.3} ms  p90 {:.3}  p99 {:.3}  p99.9 {:.3}  max {:.3}  (n={})",
        l.p50, l.p90, l.p99, l.p999, l.max, l.count
    )
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary() -> Summary {
        Summary {
            scenario: "promo".into(),
            target: "http://h".into(),
            transport: "http",
            prefix: "kl".into(),
            seed: 1,
            duration_s: 2.0,
            concurrency: 4,
            rate: None,
            mode: "closed_loop",
            orders_accepted: 10,
            orders_per_sec: 5.0,
            latency_ms: LatencySummary::default(),
            e2e_latency_ms: None,
            errors: [("transport".to_string(), 2)].into(),
            statuses: BTreeMap::new(),
            accept_statuses: BTreeMap::new(),
            operations: OpCounts::default(),
            scenario_info: BTreeMap::new(),
            notes: Vec::new(),
            verified: Verified::default(),
            violations_total: 0,
            violations: Vec::new(),
            nats: None,
            faults: None,
            samples: None,
            rss_growth_bytes: None,
        }
    }

    #[test]
    fn json_has_the_documented_keys() {
        let v = serde_json::to_value(summary()).unwrap();
        for key in [
            "scenario",
            "duration_s",
            "orders_accepted",
            "orders_per_sec",
            "latency_ms",
            "e2e_latency_ms",
            "errors",
            "statuses",
            "concurrency",
            "rate",
            "violations",
            "verified",
            "transport",
            "nats",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in ["p50", "p90", "p99", "p999", "max"] {
            assert!(
                v["latency_ms"].get(key).is_some(),
                "missing latency_ms.{key}"
            );
        }
        assert_eq!(v["errors"]["transport"], 2);
        assert!(v["violations"].as_array().unwrap().is_empty());
    }

    #[test]
    fn nats_figures_are_relative_to_the_orders() {
        let ceilings = Ceilings {
            core_msgs_per_sec: 1_000_000.4,
            core_received: 200_000,
            jetstream_msgs_per_sec: 40_000.0,
        };
        let messages = Varz {
            in_msgs: 600,
            out_msgs: 900,
        };
        let n = NatsSummary::new(100, 1_000.0, Some(&ceilings), Some(messages));
        assert_eq!(n.core_publish_msgs_per_sec, Some(1_000_000.0));
        assert_eq!(n.keel_to_jetstream_ratio, Some(0.025));
        assert_eq!(n.messages_per_order, Some(15.0));
        let mut s = summary();
        s.transport = "nats";
        s.nats = Some(n);
        let v = serde_json::to_value(&s).unwrap();
        for key in [
            "core_publish_msgs_per_sec",
            "jetstream_publish_msgs_per_sec",
            "keel_to_jetstream_ratio",
            "messages_per_order",
            "in_msgs",
            "out_msgs",
        ] {
            assert!(v["nats"].get(key).is_some(), "missing nats.{key}");
        }
        let t = s.table();
        assert!(t.contains("JetStream publish 40000 msgs/s"), "{t}");
        assert!(
            t.contains("15.00 per accepted order (in 600, out 900"),
            "{t}"
        );

        let bare = NatsSummary::new(0, 0.0, None, None);
        assert_eq!(bare.messages_per_order, None);
        s.nats = Some(bare);
        let t = s.table();
        assert!(t.contains("not counted (needs --nats-monitor)"), "{t}");
        assert_eq!(
            serde_json::to_value(&s).unwrap()["nats"]["in_msgs"],
            serde_json::Value::Null
        );
    }

    #[test]
    fn table_lists_violations() {
        let mut s = summary();
        assert!(s.table().contains("none: every invariant held"));
        s.violations_total = 1;
        s.violations.push("S@L: allocated 3 > on_hand 2".into());
        let t = s.table();
        assert!(t.contains("- S@L: allocated 3 > on_hand 2"), "{t}");
        assert!(t.contains("transport 2"), "{t}");
    }

    #[test]
    fn faults_and_samples_are_in_the_json_and_the_table() {
        let mut s = summary();
        let v = serde_json::to_value(&s).unwrap();
        for key in ["faults", "samples", "rss_growth_bytes"] {
            assert_eq!(v[key], serde_json::Value::Null, "{key}");
        }
        s.faults = Some(vec![
            Fault {
                what: "keel",
                at_s: 13.3,
                recovery_ms: 212,
                load_resumed_ms: Some(2049),
            },
            Fault {
                what: "nats-server",
                at_s: 26.7,
                recovery_ms: 116,
                load_resumed_ms: None,
            },
        ]);
        s.samples = Some(vec![Sample {
            t_s: 10.0,
            rss_bytes: Some(3 * 1024 * 1024),
            orders_per_sec: 812.5,
            p50_ms: 8.125,
            p99_ms: 25.5,
        }]);
        s.rss_growth_bytes = Some(-1024 * 1024);
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["faults"][0]["what"], "keel");
        assert_eq!(v["faults"][0]["recovery_ms"], 212);
        assert_eq!(v["faults"][1]["load_resumed_ms"], serde_json::Value::Null);
        for key in ["t_s", "rss_bytes", "orders_per_sec", "p50_ms", "p99_ms"] {
            assert!(v["samples"][0].get(key).is_some(), "missing samples.{key}");
        }
        assert_eq!(v["rss_growth_bytes"], -1024 * 1024);
        let t = s.table();
        assert!(
            t.contains("keel SIGKILLed at 13.3 s: Keel answered again after 212 ms, orders were accepted again after 2049 ms"),
            "{t}"
        );
        assert!(
            t.contains("after - (not before the end of the load)"),
            "{t}"
        );
        assert!(
            t.contains("10s     3.0 MiB     812.5      8.12     25.50"),
            "{t}"
        );
        assert!(t.contains("-1.0 MiB (-1048576 bytes"), "{t}");
    }
}
