//! `keel-load`: Keel's load generator.
//!
//! A real client of Keel's public contract, over HTTP (`docs/http-api.md`) or NATS
//! request-reply (`docs/subjects.md`). Each run creates its own uniquely prefixed catalog and
//! stock, drives a scenario from many worker threads (closed loop, or open loop with `--rate`),
//! measures accept and end-to-end latency with HdrHistogram, and at the end verifies Keel's
//! invariants through the query API only (see [`verify`]). Over NATS it also measures the
//! server's raw publish ceiling after the scenario and, with `--nats-monitor`, the NATS
//! messages per order (see [`raw_nats`]).
//!
//! ```text
//! keel-load steady --http http://127.0.0.1:8080 --duration 30s --concurrency 16
//! keel-load promo  --http http://127.0.0.1:8080 --duration 10s --rate 2000 --json-out promo.json
//! keel-load promo  --nats nats://127.0.0.1:4222 --nats-monitor http://127.0.0.1:8222
//! keel-load chaos  --duration 40s --concurrency 8 --kill-keel-at 10s,25s --kill-nats-at 15s
//! keel-load soak   --http http://127.0.0.1:8080 --duration 10m --keel-pid "$(pgrep -x keel)"
//! ```
//!
//! `chaos` starts its own nats-server and Keel node on loopback and SIGKILLs and restarts them
//! during the load (see [`chaos`]); `soak` samples memory, orders/s and latency over a long run
//! (see [`soak`]).
//!
//! Exit status: 0 when every invariant held, 1 when verification found violations, 2 for usage
//! or setup errors. A raw NATS measurement that fails after the scenario is reported in the
//! notes, not as an error.
//!
//! Layout: [`cli`] (options), [`client`] (transport-neutral [`client::KeelClient`] over HTTP
//! and NATS), [`raw_nats`] (the NATS server's own numbers), [`scenario`] (setup, workers, the
//! `steady` and `promo` plans), [`chaos`] (faults, and the processes it owns), [`soak`]
//! (samples over time), [`workload`] (seeded decisions), [`stats`] (histograms, progress),
//! [`runlog`] (what the tool did), [`collect`] + [`verify`] (reading back and checking),
//! [`report`] (table and JSON).

mod api;
mod catalog;
mod chaos;
mod cli;
mod client;
mod collect;
mod raw_nats;
mod report;
mod runlog;
mod scenario;
mod soak;
mod stats;
mod verify;
mod workload;

use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::Parser;

use crate::cli::{Cli, RemoteArgs, Scenario, Target};
use crate::client::http::HttpConnector;
use crate::client::nats::NatsConnector;
use crate::client::RetryPolicy;
use crate::raw_nats::{MessageCount, Monitor};
use crate::report::{NatsSummary, Summary};
use crate::scenario::{promo, steady, LoadWatch, Plan, Settings};
use crate::soak::Sampler;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(summary) if summary.violations_total == 0 => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("keel-load: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs the chosen scenario, prints the table, writes the JSON summary.
fn run(cli: &Cli) -> anyhow::Result<Summary> {
    let args = cli.scenario.run_args();
    let (seed, prefix) = defaults();
    let seed = args.seed.unwrap_or(seed);
    let prefix = args.prefix.clone().unwrap_or(prefix);
    let plan = match &cli.scenario {
        Scenario::Steady(a) => steady::plan(&a.run, &a.day, &prefix),
        Scenario::Promo(a) => promo::plan(a, &prefix),
        Scenario::Chaos(a) => steady::plan(&a.run, &a.day, &prefix),
        Scenario::Soak(a) => steady::plan(&a.run, &a.day, &prefix),
    };
    let settings = Settings {
        duration: args.duration,
        concurrency: args.concurrency as usize,
        rate: args.rate,
        seed,
        verify_sample: args.verify_sample,
        retry: match &cli.scenario {
            Scenario::Chaos(_) => RetryPolicy::RIDE_OUT,
            _ => RetryPolicy::LIVE,
        },
    };
    let summary = match &cli.scenario {
        Scenario::Steady(a) => remote(&a.remote, args.timeout, plan, settings, None)?,
        Scenario::Promo(a) => remote(&a.remote, args.timeout, plan, settings, None)?,
        Scenario::Chaos(a) => chaos::run(a, plan, settings)?,
        Scenario::Soak(a) => {
            let mut sampler = Sampler::new(a.sample_every, a.keel_pid);
            let mut summary = remote(&a.remote, args.timeout, plan, settings, Some(&mut sampler))?;
            sampler.report(&mut summary);
            summary
        }
    };
    print!("{}", summary.table());
    if let Some(path) = &args.json_out {
        summary.write_json(path)?;
    }
    Ok(summary)
}

/// The scenario against a Keel that runs elsewhere (`--http` or `--nats`, each request bounded
/// by `timeout`), with `watch` looking on.
fn remote(
    remote: &RemoteArgs,
    timeout: Duration,
    plan: Plan,
    settings: Settings,
    watch: Option<&mut dyn LoadWatch>,
) -> anyhow::Result<Summary> {
    match remote.target() {
        Target::Http(url) => {
            if !url.starts_with("http://") {
                bail!("--http must be an http:// URL, got {url:?}");
            }
            let connector = HttpConnector::new(url, timeout);
            let mut watches: Vec<&mut dyn LoadWatch> = watch.into_iter().collect();
            Ok(Summary::build(&scenario::run(
                &connector,
                plan,
                settings,
                &mut watches,
            )?))
        }
        Target::Nats(url) => run_nats(url, remote, timeout, plan, settings, watch),
    }
}

/// The scenario over NATS, counting the server's messages during the load when a monitoring
/// endpoint is given, then the server's raw ceiling (unless `--skip-raw`).
fn run_nats(
    url: &str,
    args: &RemoteArgs,
    timeout: Duration,
    plan: Plan,
    settings: Settings,
    watch: Option<&mut dyn LoadWatch>,
) -> anyhow::Result<Summary> {
    let connector = NatsConnector::connect(url, timeout)?;
    let mut count = match &args.nats_monitor {
        Some(base) => {
            let monitor = Monitor::new(base);
            monitor.read().context("--nats-monitor")?;
            Some(MessageCount::new(monitor))
        }
        None => None,
    };
    let mut watches: Vec<&mut dyn LoadWatch> = Vec::new();
    if let Some(w) = watch {
        watches.push(w);
    }
    if let Some(c) = count.as_mut() {
        watches.push(c);
    }
    let outcome = scenario::run(&connector, plan, settings, &mut watches)?;
    drop(watches);
    let mut summary = Summary::build(&outcome);
    if let Some(e) = count.as_ref().and_then(MessageCount::error) {
        summary
            .notes
            .push(format!("NATS messages not counted: {e}"));
    }
    let ceilings = if args.skip_raw {
        None
    } else {
        eprintln!("keel-load: measuring the raw NATS ceiling on {url}");
        match raw_nats::measure(connector.runtime(), url) {
            Ok(c) => {
                if c.core_received < raw_nats::CORE_MESSAGES {
                    summary.notes.push(format!(
                        "core publish: the subscriber received {} of {} messages (the server \
                         dropped the rest as a slow consumer)",
                        c.core_received,
                        raw_nats::CORE_MESSAGES
                    ));
                }
                Some(c)
            }
            Err(e) => {
                summary
                    .notes
                    .push(format!("raw NATS ceiling not measured: {e:#}"));
                None
            }
        }
    };
    summary.nats = Some(NatsSummary::new(
        summary.orders_accepted,
        summary.orders_per_sec,
        ceilings.as_ref(),
        count.as_ref().and_then(MessageCount::delta),
    ));
    Ok(summary)
}

/// A seed and an id prefix derived from the clock and the process id: unique per run.
fn defaults() -> (u64, String) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let pid = std::process::id() as u64;
    let seed = (now.as_nanos() as u64) ^ pid.rotate_left(32);
    let prefix = format!("kl{}p{}", base36(now.as_millis() as u64), base36(pid));
    (seed, prefix)
}

fn base36(mut n: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut out = Vec::new();
    loop {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
        if n == 0 {
            break;
        }
    }
    out.reverse();
    String::from_utf8(out).expect("ascii digits")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_prefix_is_a_short_valid_id() {
        assert_eq!(base36(0), "0");
        assert_eq!(base36(35), "z");
        assert_eq!(base36(36), "10");
        let (_, prefix) = defaults();
        assert!(
            prefix.len() <= 24 && catalog::is_valid_id(&prefix),
            "{prefix}"
        );
    }
}
