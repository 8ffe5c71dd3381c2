//! Command line: `keel-load <SCENARIO> --http URL | --nats URL [options]`, or `keel-load chaos
//! [options]` against processes the tool starts itself. Every option can also be set through a
//! `KEEL_LOAD_*` environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::catalog::is_valid_id;
use crate::workload::SkuDist;

/// Keel's load generator: drives the public API, measures, and verifies the invariants at the end.
#[derive(Debug, Parser)]
#[command(name = "keel-load", version)]
pub struct Cli {
    /// The scenario to run.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// The scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// A mixed day: orders, some cancels, receipts, fulfillments walked to delivered.
    Steady(SteadyArgs),
    /// A promotion spike: most lines on a few scarce SKUs, demand a multiple of their stock.
    Promo(PromoArgs),
    /// `steady` against a nats-server and a Keel node the tool starts on loopback itself,
    /// SIGKILLing and restarting each at the chosen moments.
    Chaos(ChaosArgs),
    /// A long `steady`, sampling the node's memory, orders/s and accept latency over time.
    Soak(SoakArgs),
}

impl Scenario {
    /// The options every scenario has.
    pub fn run_args(&self) -> &RunArgs {
        match self {
            Scenario::Steady(a) => &a.run,
            Scenario::Promo(a) => &a.run,
            Scenario::Chaos(a) => &a.run,
            Scenario::Soak(a) => &a.run,
        }
    }
}

/// Options of `steady`.
#[derive(Debug, Args)]
pub struct SteadyArgs {
    /// Where Keel is.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Options every scenario has.
    #[command(flatten)]
    pub run: RunArgs,
    /// The shape of the day.
    #[command(flatten)]
    pub day: DayArgs,
}

/// The shape of a `steady` day (also of `chaos` and `soak`, which run it).
#[derive(Debug, Clone, Args)]
pub struct DayArgs {
    /// Share of orders whose fulfillments are walked picked → packed → shipped → delivered.
    #[arg(long, env = "KEEL_LOAD_WALK_SHARE", default_value_t = 0.15, value_parser = parse_share)]
    pub walk_share: f64,
}

/// Options of `promo`.
#[derive(Debug, Args)]
pub struct PromoArgs {
    /// Where Keel is.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Options every scenario has.
    #[command(flatten)]
    pub run: RunArgs,
    /// Number of scarce SKUs.
    #[arg(long, env = "KEEL_LOAD_SCARCE_SKUS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub scarce_skus: u32,
    /// Share of order lines on the scarce SKUs.
    #[arg(long, env = "KEEL_LOAD_SCARCE_SHARE", default_value_t = 0.8, value_parser = parse_share)]
    pub scarce_share: f64,
    /// Expected demand on the scarce SKUs, as a multiple of their stock (sizes the stock).
    #[arg(long, env = "KEEL_LOAD_DEMAND_MULTIPLE", default_value_t = 3.0, value_parser = parse_positive)]
    pub demand_multiple: f64,
}

/// Options of `chaos`.
#[derive(Debug, Args)]
#[command(mut_arg("timeout", |a| a.default_value("2s")))]
pub struct ChaosArgs {
    /// Options every scenario has (--timeout defaults to 2s here: over NATS, a request in
    /// flight to a killed node gets no reply and waits for its timeout).
    #[command(flatten)]
    pub run: RunArgs,
    /// The shape of the day.
    #[command(flatten)]
    pub day: DayArgs,
    /// How the workload talks to the node: its NATS request-reply API or its HTTP API.
    #[arg(long, env = "KEEL_LOAD_VIA", value_enum, default_value_t = Via::Nats)]
    pub via: Via,
    /// The keel binary to start (default: `keel` next to this executable).
    #[arg(long, env = "KEEL_LOAD_KEEL_BIN", value_name = "PATH")]
    pub keel_bin: Option<PathBuf>,
    /// The nats-server binary to start: a path, or a name looked up on PATH (then in /usr/sbin).
    #[arg(
        long,
        env = "KEEL_LOAD_NATS_SERVER_BIN",
        value_name = "PATH",
        default_value = "nats-server"
    )]
    pub nats_server_bin: PathBuf,
    /// When to SIGKILL (and restart) the Keel node: offsets from the start of the load,
    /// comma-separated (e.g. 10s,25s), or `none`. Default: once, at a third of --duration.
    #[arg(long, env = "KEEL_LOAD_KILL_KEEL_AT", value_name = "OFFSETS", value_parser = parse_offsets)]
    pub kill_keel_at: Option<Offsets>,
    /// When to SIGKILL (and restart) the NATS server, like --kill-keel-at. Default: once, at
    /// two thirds of --duration.
    #[arg(long, env = "KEEL_LOAD_KILL_NATS_AT", value_name = "OFFSETS", value_parser = parse_offsets)]
    pub kill_nats_at: Option<Offsets>,
}

/// The transport of `chaos`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Via {
    /// The keel.v1.api.* request-reply subjects.
    Nats,
    /// The HTTP API.
    Http,
}

/// Options of `soak`.
#[derive(Debug, Args)]
#[command(mut_arg("duration", |a| a.default_value("10m")))]
pub struct SoakArgs {
    /// Where Keel is.
    #[command(flatten)]
    pub remote: RemoteArgs,
    /// Options every scenario has (--duration defaults to 10m here).
    #[command(flatten)]
    pub run: RunArgs,
    /// The shape of the day.
    #[command(flatten)]
    pub day: DayArgs,
    /// How often to take a sample (RSS, orders/s and accept latency of the interval).
    #[arg(long, env = "KEEL_LOAD_SAMPLE_EVERY", default_value = "10s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// PID of the Keel process whose resident memory (VmRSS) is sampled; without it, no
    /// memory is sampled (the tool does not guess which process serves the URL).
    #[arg(long, env = "KEEL_LOAD_KEEL_PID", value_name = "PID")]
    pub keel_pid: Option<u32>,
}

/// Offsets from the start of the load (`--kill-keel-at`, `--kill-nats-at`), ascending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Offsets(pub Vec<Duration>);

/// Where Keel is, and what to measure on its NATS server.
#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Exactly one of `--http` and `--nats`.
    #[command(flatten)]
    pub target: TargetArgs,
    /// With --nats: the server's monitoring endpoint (nats-server -m PORT), e.g.
    /// http://127.0.0.1:8222, to count the NATS messages per accepted order.
    #[arg(
        long,
        env = "KEEL_LOAD_NATS_MONITOR",
        value_name = "URL",
        conflicts_with = "http"
    )]
    pub nats_monitor: Option<String>,
    /// With --nats: skip the raw publish ceiling measurements after the scenario.
    #[arg(long, env = "KEEL_LOAD_SKIP_RAW", conflicts_with = "http")]
    pub skip_raw: bool,
}

impl RemoteArgs {
    /// The transport to use (clap makes sure exactly one was given).
    pub fn target(&self) -> Target<'_> {
        match (&self.target.http, &self.target.nats) {
            (_, Some(url)) => Target::Nats(url),
            (Some(url), None) => Target::Http(url),
            (None, None) => unreachable!("clap requires --http or --nats"),
        }
    }
}

/// Where Keel is: exactly one of `--http` and `--nats`.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct TargetArgs {
    /// Base URL of Keel's HTTP API, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "KEEL_LOAD_HTTP", value_name = "URL")]
    pub http: Option<String>,
    /// NATS server Keel serves on, e.g. nats://127.0.0.1:4222: drives the keel.v1.api.*
    /// request-reply subjects, then measures the server's raw publish ceiling.
    #[arg(long, env = "KEEL_LOAD_NATS", value_name = "URL")]
    pub nats: Option<String>,
}

/// The transport chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target<'a> {
    /// Keel's HTTP API at this base URL.
    Http(&'a str),
    /// Keel's request-reply API on this NATS server.
    Nats(&'a str),
}

/// Options every scenario has.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// How long to generate load (e.g. 30s, 2m, 500ms).
    #[arg(long, env = "KEEL_LOAD_DURATION", default_value = "30s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Worker threads (each with its own keep-alive connection). Without --rate, each keeps one
    /// request in flight (closed loop).
    #[arg(long, env = "KEEL_LOAD_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub concurrency: u32,
    /// Open loop: target orders per second across all workers; latency is measured from each
    /// order's scheduled send time (no coordinated omission).
    #[arg(long, env = "KEEL_LOAD_RATE", value_parser = parse_positive)]
    pub rate: Option<f64>,
    /// Also write a JSON summary to this file.
    #[arg(long, env = "KEEL_LOAD_JSON_OUT", value_name = "FILE")]
    pub json_out: Option<PathBuf>,
    /// SKUs in the run's (normal) catalog.
    #[arg(long, env = "KEEL_LOAD_CATALOG_SKUS", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub catalog_skus: u32,
    /// Most lines per order (each order has 1..=N distinct SKUs).
    #[arg(long, env = "KEEL_LOAD_LINES_MAX", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    pub lines_max: u32,
    /// Prefix of every id the run creates (default: derived from the clock, unique per run).
    #[arg(long, env = "KEEL_LOAD_PREFIX", value_parser = parse_prefix)]
    pub prefix: Option<String>,
    /// Seed of the workload decisions (default: derived from the clock; printed in the report).
    #[arg(long, env = "KEEL_LOAD_SEED")]
    pub seed: Option<u64>,
    /// How order lines pick SKUs from the normal catalog.
    #[arg(long, env = "KEEL_LOAD_SKU_DIST", value_enum, default_value_t = SkuDist::Zipf)]
    pub sku_dist: SkuDist,
    /// Verify at most this many orders (a seeded sample); SKU-locations are always all verified.
    #[arg(long, env = "KEEL_LOAD_VERIFY_SAMPLE", default_value_t = 20_000)]
    pub verify_sample: usize,
    /// Timeout of each phase of a request (connect, send, receive); over NATS, of each request.
    #[arg(long, env = "KEEL_LOAD_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,
}

/// Parses `500ms`, `30s`, `2m`, `1h`, `1.5s`; a bare number is seconds. Zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid duration {s:?} (use e.g. 500ms, 30s, 2m, 1h)"))?;
    let seconds = match unit.trim() {
        "ms" => value / 1000.0,
        "" | "s" => value,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        other => {
            return Err(format!(
                "unknown duration unit {other:?} in {s:?} (ms, s, m, h)"
            ))
        }
    };
    let d = Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))?;
    if d.is_zero() {
        return Err(format!("duration {s:?} must be positive"));
    }
    Ok(d)
}

/// Parses `--kill-keel-at` / `--kill-nats-at`: comma-separated positive durations (`10s,25s`,
/// see [`parse_duration`]), answered in ascending order, or `none` for no fault of that kind.
pub fn parse_offsets(s: &str) -> Result<Offsets, String> {
    if s.trim() == "none" {
        return Ok(Offsets(Vec::new()));
    }
    let mut offsets = s
        .split(',')
        .map(parse_duration)
        .collect::<Result<Vec<_>, _>>()?;
    offsets.sort_unstable();
    Ok(Offsets(offsets))
}

fn parse_positive(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 => Ok(v),
        _ => Err(format!("{s:?} is not a positive number")),
    }
}

fn parse_share(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(format!("{s:?} is not a share between 0 and 1")),
    }
}

/// Prefixes become part of every id, fulfillment ids (`{order}-F{n}`) included, so they are
/// kept short enough for the 64-character id limit.
fn parse_prefix(s: &str) -> Result<String, String> {
    if s.len() <= 24 && is_valid_id(s) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "prefix {s:?} must be 1-24 characters of [A-Za-z0-9_-]"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(45)));
        assert_eq!(parse_duration(" 10s "), Ok(Duration::from_secs(10)));
        for bad in ["", "s", "0s", "10x", "-5s", "1.2.3s", "ms10"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn every_option_has_a_keel_load_env() {
        let cmd = Cli::command();
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments() {
                let id = arg.get_id().as_str();
                if id == "help" || id == "version" {
                    continue;
                }
                let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
                let want = format!("KEEL_LOAD_{}", id.to_uppercase());
                assert_eq!(env.as_deref(), Some(want.as_str()), "option {id}");
            }
        }
        cmd.debug_assert();
    }

    #[test]
    fn parses_a_full_command_line() {
        let cli = Cli::try_parse_from([
            "keel-load",
            "promo",
            "--http",
            "http://h:1",
            "--duration",
            "10s",
            "--rate",
            "500",
            "--prefix",
            "kl-x",
            "--seed",
            "7",
            "--sku-dist",
            "uniform",
            "--scarce-skus",
            "5",
        ])
        .unwrap();
        let Scenario::Promo(p) = &cli.scenario else {
            panic!("not promo")
        };
        assert_eq!(p.scarce_skus, 5);
        let run = cli.scenario.run_args();
        assert_eq!(run.duration, Duration::from_secs(10));
        assert_eq!(run.rate, Some(500.0));
        assert_eq!(run.concurrency, 16);
        assert_eq!(run.sku_dist, SkuDist::Uniform);
        assert!(
            Cli::try_parse_from(["keel-load", "steady", "--http", "x", "--prefix", "a.b"]).is_err()
        );
        assert!(
            Cli::try_parse_from(["keel-load", "steady", "--http", "x", "--rate", "0"]).is_err()
        );
    }

    #[test]
    fn exactly_one_transport() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(["keel-load", "promo"].iter().chain(args)).map(|cli| {
                let Scenario::Promo(p) = cli.scenario else {
                    unreachable!("parsed promo")
                };
                p.remote
            })
        };
        let http = parse(&["--http", "http://h:1"]).unwrap();
        assert_eq!(http.target(), Target::Http("http://h:1"));
        assert!(!http.skip_raw);
        let nats = parse(&[
            "--nats",
            "nats://h:4222",
            "--nats-monitor",
            "http://h:8222",
            "--skip-raw",
        ])
        .unwrap();
        assert_eq!(nats.target(), Target::Nats("nats://h:4222"));
        assert_eq!(nats.nats_monitor.as_deref(), Some("http://h:8222"));
        assert!(nats.skip_raw);
        assert!(parse(&[]).is_err(), "no transport");
        assert!(parse(&["--http", "http://h:1", "--nats", "nats://h:2"]).is_err());
        assert!(parse(&["--http", "http://h:1", "--nats-monitor", "http://h:8222"]).is_err());
        assert!(parse(&["--http", "http://h:1", "--skip-raw"]).is_err());
    }

    #[test]
    fn fault_offsets() {
        let secs = |v: &[u64]| Offsets(v.iter().map(|&s| Duration::from_secs(s)).collect());
        assert_eq!(parse_offsets("10s,25s"), Ok(secs(&[10, 25])));
        assert_eq!(parse_offsets("25s, 10s"), Ok(secs(&[10, 25])));
        assert_eq!(parse_offsets("15"), Ok(secs(&[15])));
        assert_eq!(
            parse_offsets("1m,500ms"),
            Ok(Offsets(vec![
                Duration::from_millis(500),
                Duration::from_secs(60)
            ]))
        );
        assert_eq!(parse_offsets("none"), Ok(secs(&[])));
        for bad in ["", "10s,", ",10s", "10s,,20s", "0s", "10x", "-1s"] {
            assert!(parse_offsets(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn chaos_needs_no_target_and_soak_runs_ten_minutes() {
        let cli = Cli::try_parse_from([
            "keel-load",
            "chaos",
            "--duration",
            "40s",
            "--kill-keel-at",
            "10s,25s",
            "--kill-nats-at",
            "none",
            "--via",
            "http",
        ])
        .unwrap();
        let Scenario::Chaos(c) = &cli.scenario else {
            panic!("not chaos")
        };
        assert_eq!(c.via, Via::Http);
        assert_eq!(
            c.kill_keel_at,
            Some(Offsets(vec![
                Duration::from_secs(10),
                Duration::from_secs(25)
            ]))
        );
        assert_eq!(c.kill_nats_at, Some(Offsets(Vec::new())));
        assert_eq!(c.keel_bin, None);
        assert_eq!(c.nats_server_bin, PathBuf::from("nats-server"));
        assert_eq!(c.run.timeout, Duration::from_secs(2));
        assert!(Cli::try_parse_from(["keel-load", "chaos", "--http", "http://h:1"]).is_err());

        let cli = Cli::try_parse_from([
            "keel-load",
            "soak",
            "--nats",
            "nats://h:1",
            "--keel-pid",
            "42",
        ])
        .unwrap();
        let Scenario::Soak(s) = &cli.scenario else {
            panic!("not soak")
        };
        assert_eq!(s.run.duration, Duration::from_secs(600));
        assert_eq!(s.sample_every, Duration::from_secs(10));
        assert_eq!(s.keel_pid, Some(42));
        let cli = Cli::try_parse_from(["keel-load", "steady", "--http", "x"]).unwrap();
        assert_eq!(cli.scenario.run_args().duration, Duration::from_secs(30));
    }
}
