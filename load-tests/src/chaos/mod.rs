//! `chaos`: the `steady` day against a nats-server and a Keel node the tool starts itself on
//! loopback ([`processes`]), while it SIGKILLs and restarts them at the chosen moments
//! (`--kill-keel-at`, `--kill-nats-at`; by default the node at a third of the load and the
//! server at two thirds).
//!
//! The workers repeat every ambiguous write with the same ids until the restart is over
//! ([`RetryPolicy::RIDE_OUT`](crate::client::RetryPolicy::RIDE_OUT); the contract is
//! idempotent), and the run ends with the usual verification, which must find nothing: no
//! oversell, conservation, every acknowledged order present, no effect doubled. Each fault is
//! reported with its recovery time: from the kill until the restarted process served and Keel
//! answered a request over the run's transport again; and with the time until the workers had
//! an order accepted again (a request in flight to a killed node over NATS gets no reply: it
//! waits for its `--timeout`, which is why that defaults to 2 s here).

pub mod processes;

use std::time::{Duration, Instant};

use anyhow::{anyhow, Context};
use serde::Serialize;

use crate::cli::{ChaosArgs, Offsets, Via};
use crate::client::http::HttpConnector;
use crate::client::nats::NatsConnector;
use crate::client::{Connector, KeelClient};
use crate::report::Summary;
use crate::scenario::{self, Live, LoadWatch, Plan, Settings};
use processes::{find_program, is_executable, Cluster, Role};

/// How long Keel may take to answer over the run's transport once the restarted process serves
/// (the node reconnecting to NATS, the tool's own client reconnecting).
const ANSWER_AGAIN_WITHIN: Duration = Duration::from_secs(60);
/// Pause between those attempts, and between looks at the workers' accepted orders.
const POLL: Duration = Duration::from_millis(25);

/// One injected fault.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fault {
    /// The process SIGKILLed and restarted: `keel` or `nats-server`.
    pub what: &'static str,
    /// When it was killed, seconds since the start of the load.
    pub at_s: f64,
    /// From the kill until Keel answered a request over the run's transport again, ms.
    pub recovery_ms: u64,
    /// From the kill until the workers had an order accepted after that answer, ms (`null`
    /// when none was before the end of the load).
    pub load_resumed_ms: Option<u64>,
}

/// [`Fault::load_resumed_ms`] in words.
pub fn resumed(load_resumed_ms: Option<u64>) -> String {
    load_resumed_ms.map_or("- (not before the end of the load)".into(), |ms| {
        format!("{ms} ms")
    })
}

/// The faults to inject, `(offset from the start of the load, process)` in time order: the
/// given offsets, or by default the node at a third of `duration` and the server at two
/// thirds. Every offset must lie within the load.
pub fn schedule(
    keel: Option<&Offsets>,
    nats: Option<&Offsets>,
    duration: Duration,
) -> Result<Vec<(Duration, Role)>, String> {
    let mut faults = Vec::new();
    for (given, role, flag, default) in [
        (keel, Role::Keel, "--kill-keel-at", duration / 3),
        (nats, Role::Nats, "--kill-nats-at", duration * 2 / 3),
    ] {
        let offsets = given.map_or(vec![default], |o| o.0.clone());
        for at in offsets {
            if at >= duration {
                return Err(format!(
                    "{flag} {at:?} is not within the load (--duration {duration:?})"
                ));
            }
            faults.push((at, role));
        }
    }
    faults.sort_by_key(|&(at, _)| at);
    Ok(faults)
}

/// Runs `plan` with `settings` against processes of its own, injecting the faults of `args`.
/// The scratch directory (logs, stores) is kept when the run fails or finds violations.
pub fn run(args: &ChaosArgs, plan: Plan, settings: Settings) -> anyhow::Result<Summary> {
    let faults = schedule(
        args.kill_keel_at.as_ref(),
        args.kill_nats_at.as_ref(),
        settings.duration,
    )
    .map_err(|e| anyhow!(e))?;
    let keel_bin = match &args.keel_bin {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .context("locating keel-load")?
            .with_file_name("keel"),
    };
    if !is_executable(&keel_bin) {
        anyhow::bail!(
            "no keel binary at {} (build it: cargo build -p keel; or pass --keel-bin)",
            keel_bin.display()
        );
    }
    let nats_bin = find_program(&args.nats_server_bin).with_context(|| {
        format!(
            "{} is not on PATH nor in /usr/sbin (Debian/Ubuntu: apt-get install -y \
             nats-server; or pass --nats-server-bin)",
            args.nats_server_bin.display()
        )
    })?;
    let mut cluster = Cluster::start(&keel_bin, &nats_bin)?;
    eprintln!(
        "keel-load: chaos: nats-server at {}, keel (pid {}) at {}, logs in {}; faults: {}",
        cluster.nats_url(),
        cluster.keel_pid().unwrap_or_default(),
        cluster.http_url(),
        cluster.dir().display(),
        faults
            .iter()
            .map(|(at, role)| format!("{} at {at:.1?}", role.name()))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let result = drive(&mut cluster, args, plan, settings, faults);
    if !matches!(&result, Ok(s) if s.violations_total == 0) {
        cluster.keep();
    }
    result
}

/// The run itself, over the transport `args.via`.
fn drive(
    cluster: &mut Cluster,
    args: &ChaosArgs,
    plan: Plan,
    settings: Settings,
    faults: Vec<(Duration, Role)>,
) -> anyhow::Result<Summary> {
    let timeout = args.run.timeout;
    let connector: Box<dyn Connector> = match args.via {
        Via::Nats => Box::new(NatsConnector::connect(&cluster.nats_url(), timeout)?),
        Via::Http => Box::new(HttpConnector::new(&cluster.http_url(), timeout)),
    };
    let mut injector = Injector {
        cluster,
        schedule: faults,
        faults: Vec::new(),
        error: None,
    };
    let outcome = scenario::run(connector.as_ref(), plan, settings, &mut [&mut injector])?;
    if let Some(e) = injector.error {
        return Err(e);
    }
    let mut summary = Summary::build(&outcome);
    summary.faults = Some(injector.faults);
    Ok(summary)
}

/// Injects the faults while the load runs (a [`LoadWatch`]).
struct Injector<'a> {
    cluster: &'a mut Cluster,
    schedule: Vec<(Duration, Role)>,
    faults: Vec<Fault>,
    /// Why a restart failed (the remaining faults are not injected).
    error: Option<anyhow::Error>,
}

impl Injector<'_> {
    /// Kills `role` now, restarts it, waits until Keel answers again and then until the
    /// workers have an order accepted.
    fn inject(&mut self, role: Role, live: &Live<'_>) -> anyhow::Result<Fault> {
        let killed = Instant::now();
        let at_s = (killed - live.start).as_secs_f64();
        eprintln!("keel-load: chaos: SIGKILL {} at {at_s:.1}s", role.name());
        self.cluster.kill_and_restart(role)?;
        self.cluster.keel_ready()?;
        answered(live.connector.connect().as_mut(), ANSWER_AGAIN_WITHIN)?;
        let recovery_ms = killed.elapsed().as_millis() as u64;
        let accepted = live.board.accepted();
        let mut load_resumed_ms = None;
        while Instant::now() < live.deadline && live.sleep_until(Instant::now() + POLL) {
            if live.board.accepted() > accepted {
                load_resumed_ms = Some(killed.elapsed().as_millis() as u64);
                break;
            }
        }
        let fault = Fault {
            what: role.name(),
            at_s: (at_s * 10.0).round() / 10.0,
            recovery_ms,
            load_resumed_ms,
        };
        eprintln!(
            "keel-load: chaos: {} restarted; Keel answered again after {recovery_ms} ms, orders \
             were accepted again after {}",
            fault.what,
            resumed(load_resumed_ms)
        );
        Ok(fault)
    }
}

impl LoadWatch for Injector<'_> {
    fn during(&mut self, live: &Live<'_>) {
        for (at, role) in std::mem::take(&mut self.schedule) {
            // A fault due while the previous restart was still going on comes right after it.
            if !live.sleep_until(live.start + at) {
                return;
            }
            match self.inject(role, live) {
                Ok(fault) => self.faults.push(fault),
                Err(e) => {
                    self.error = Some(e.context(format!(
                        "chaos: {} did not come back after its SIGKILL",
                        role.name()
                    )));
                    return;
                }
            }
        }
    }
}

/// Waits until `client` gets an answer from Keel (over NATS a request, over HTTP `/readyz`).
fn answered(client: &mut dyn KeelClient, within: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + within;
    loop {
        match client.ready() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => {
                return Err(anyhow!("Keel did not answer within {within:?}: {e}"))
            }
            Err(_) => std::thread::sleep(POLL),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(v: &[u64]) -> Offsets {
        Offsets(v.iter().map(|&s| Duration::from_secs(s)).collect())
    }

    #[test]
    fn default_faults_are_at_a_third_and_two_thirds() {
        let d = Duration::from_secs(40);
        let s = schedule(None, None, d).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], (d / 3, Role::Keel));
        assert_eq!(s[1], (d * 2 / 3, Role::Nats));
        assert_eq!(s[0].0.as_millis(), 13_333);
    }

    #[test]
    fn given_faults_are_merged_in_time_order() {
        let d = Duration::from_secs(40);
        let s = schedule(Some(&secs(&[10, 25])), Some(&secs(&[15])), d).unwrap();
        let want = [(10, Role::Keel), (15, Role::Nats), (25, Role::Keel)]
            .map(|(t, r)| (Duration::from_secs(t), r));
        assert_eq!(s, want);
        let only_keel = schedule(Some(&secs(&[5])), Some(&secs(&[])), d).unwrap();
        assert_eq!(only_keel, [(Duration::from_secs(5), Role::Keel)]);
        assert!(schedule(Some(&secs(&[])), Some(&secs(&[])), d)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn faults_after_the_load_are_refused() {
        let d = Duration::from_secs(20);
        let err = schedule(None, Some(&secs(&[20])), d).unwrap_err();
        assert!(err.contains("--kill-nats-at 20s"), "{err}");
        assert!(schedule(Some(&secs(&[30])), None, d).is_err());
    }
}
