//! Command-line flags, each with a `KEEL_*` environment equivalent.

use clap::{ArgAction, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;

/// What a `keel` process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Role {
    All,
    Node,
    Gateway,
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Keel: order orchestration and inventory sync. Runs a node and the HTTP gateway in one
/// process, with the in-process bus (the embedded default: no external services) or on NATS
/// (`--nats`).
#[derive(Debug, Clone, Parser)]
#[command(name = "keel", version, about)]
pub struct Config {
    /// Where the node keeps its durable state (sled).
    #[arg(long, env = "KEEL_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
    /// Address of the HTTP API.
    #[arg(long, env = "KEEL_HTTP_ADDR", default_value = "127.0.0.1:8080")]
    pub http_addr: SocketAddr,
    /// Seed a demo catalog (3 locations, 3 channels, 200 SKUs with stock) on first start.
    #[arg(long, env = "KEEL_SEED_DEMO", default_value_t = true, action = ArgAction::Set)]
    pub seed_demo: bool,
    /// Actor threads (default: one per core).
    #[arg(long, env = "KEEL_WORKERS")]
    pub workers: Option<usize>,
    /// HTTP worker threads (default: one per core).
    #[arg(long, env = "KEEL_HTTP_WORKERS")]
    pub http_workers: Option<usize>,
    /// Seconds an actor may stay idle before it is passivated (memory under load is about
    /// order rate × this × ~10 KB).
    #[arg(long, env = "KEEL_ACTOR_IDLE_SECS", default_value_t = 10)]
    pub actor_idle_secs: u64,
    /// sled cache budget in MiB.
    #[arg(long, env = "KEEL_CACHE_MB", default_value_t = 64)]
    pub cache_mb: u64,
    /// Milliseconds between checkpoints of the store's partition log: each key written since
    /// the last one is written to its place once, and the log below is dropped. Longer means
    /// fewer writes and more memory (keys written since the last checkpoint stay in memory)
    /// and a longer log to replay after a crash.
    #[arg(long, env = "KEEL_CHECKPOINT_INTERVAL_MS", default_value_t = 1000)]
    pub checkpoint_interval_ms: u64,
    /// Seconds after an order is delivered or cancelled at which it leaves the live keys for
    /// the archive (still readable by `GET /v1/orders/{id}`); 0 never archives.
    #[arg(long, env = "KEEL_ARCHIVE_AFTER_SECS", default_value_t = 7 * 24 * 3600)]
    pub archive_after_secs: u64,
    /// Seconds the ids of commands between actors (reservations, deliveries, timer firings)
    /// are remembered for dedupe: at least this, at most twice it. A client's document ids
    /// (receipts, adjustments) are remembered for good.
    #[arg(long, env = "KEEL_DEDUPE_RETENTION_SECS", default_value_t = 7 * 24 * 3600)]
    pub dedupe_retention_secs: u64,
    /// Whether a store created now, or rewritten by `keel compact`, compresses its pages with
    /// zstd (`true`/`false`): about a quarter of the disk, for about a fifth of the
    /// throughput (docs/durability.md). Unset: a new store does not, and `keel compact` keeps
    /// the store's setting. An existing store always runs as it was created.
    #[arg(long, env = "KEEL_STORE_COMPRESSION", global = true, action = ArgAction::Set)]
    pub store_compression: Option<bool>,
    /// For fault tests only: abort the process at this point of every checkpoint of the store.
    #[arg(long, env = "KEEL_CRASH_AT", value_enum, hide = true)]
    pub crash_at: Option<CrashAt>,
    /// For tests only: read the node's time (milliseconds since the Unix epoch) from this file,
    /// which the test rewrites to move time on (the system clock while it is missing).
    #[arg(long, env = "KEEL_CLOCK_FILE", hide = true)]
    pub clock_file: Option<PathBuf>,
    /// Log format.
    #[arg(long, env = "KEEL_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Run on NATS (JetStream) at this URL instead of the in-process bus, e.g.
    /// `nats://127.0.0.1:4222` (comma-separate several servers of a cluster).
    #[arg(long = "nats", env = "KEEL_NATS_URL", global = true)]
    pub nats_url: Option<String>,
    /// Seconds an HTTP request waits for the node's reply before it is answered
    /// `503 unavailable` (safe to retry with the same ids).
    #[arg(long, env = "KEEL_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// A NATS credentials file (user JWT and seed) to connect with.
    #[arg(long = "nats-creds", env = "KEEL_NATS_CREDS", global = true)]
    pub nats_credentials: Option<PathBuf>,
    /// What this process runs: `all` (a node and the HTTP gateway), `node` (the same; the
    /// name Kubernetes manifests use for the StatefulSet) or `gateway` (only the HTTP gateway,
    /// forwarding to the nodes over NATS: needs `--nats`).
    #[arg(long, env = "KEEL_ROLE", value_enum, default_value_t = Role::All)]
    pub role: Role,
    /// How long to keep trying to reach NATS at start-up, in seconds.
    #[arg(long, env = "KEEL_NATS_CONNECT_SECS", default_value_t = 30)]
    pub nats_connect_secs: u64,
    /// This node's id in the cluster (on NATS). Default: the id stored in the data dir, made
    /// on first start (the id names the disk that holds its partitions' state).
    #[arg(long, env = "KEEL_NODE_ID")]
    pub node_id: Option<String>,
    /// Partitions of the cluster (on NATS). Fixed by the cluster's first node: a node
    /// expecting another count is refused.
    #[arg(long, env = "KEEL_PARTITIONS", default_value_t = keel_cluster::DEFAULT_PARTITIONS)]
    pub partitions: u32,
    /// Lifetime of a partition lease and of a heartbeat, in seconds (when this node creates
    /// the cluster; an existing cluster's own setting wins). Renewed every third of it.
    #[arg(long, env = "KEEL_LEASE_SECS", default_value_t = 10)]
    pub lease_secs: u64,
    /// JetStream replicas of the changelog (every partition's durable copy) and of the
    /// coordination buckets, when this node creates them: 3 on a 3-server NATS cluster.
    #[arg(long, env = "KEEL_REPLICAS", default_value_t = 1)]
    pub replicas: usize,
    /// A partition's snapshot is made once this many bytes (and at least as many as its last
    /// snapshot holds) were written to its changelog after the last one; the changelog is
    /// then purged below it (on NATS).
    #[arg(long, env = "KEEL_SNAPSHOT_BYTES", default_value_t = 1024 * 1024)]
    pub snapshot_bytes: u64,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Where `--crash-at` aborts the process (fault tests).
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CrashAt {
    /// Half-way through writing a checkpoint's keys.
    CheckpointWrites,
    /// Half-way through dropping the log rounds a checkpoint covered.
    LogTruncation,
    /// Half-way through an archive sweep's orders.
    Archiving,
    /// After applying a command batch from another node and making it durable, before
    /// answering it (the sender then hears nothing and sends it again).
    BatchReply,
}

/// Subcommands (without one, `keel` runs the platform).
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Cluster operations (on the NATS system given by `--nats`).
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Compacts the store in `--data-dir` while no node runs on it: copies its keys into
    /// fresh files that take the old ones' place (sled reclaims overwritten space slowly),
    /// then prints what it did as JSON. Safe to interrupt: the store stays whole.
    Compact,
}

/// `keel cluster …`
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterCommand {
    /// Members, the partition map with epochs, and the spread.
    Status {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
}

impl Config {
    /// The node options these flags describe.
    pub fn node_options(&self) -> keel_runtime::NodeOptions {
        let mut options = keel_runtime::NodeOptions::new(&self.data_dir);
        if let Some(workers) = self.workers {
            options.workers = workers.max(1);
        }
        options.idle_after = std::time::Duration::from_secs(self.actor_idle_secs.max(1));
        options.cache_capacity = self.cache_mb.max(8) * 1024 * 1024;
        options.checkpoint.interval =
            std::time::Duration::from_millis(self.checkpoint_interval_ms.max(1));
        options.checkpoint.crash_at = self.crash_at.and_then(|point| match point {
            CrashAt::CheckpointWrites => Some(keel_store::CrashPoint::CheckpointWrites),
            CrashAt::LogTruncation => Some(keel_store::CrashPoint::LogTruncation),
            CrashAt::Archiving | CrashAt::BatchReply => None,
        });
        options.crash_mid_archive = matches!(self.crash_at, Some(CrashAt::Archiving));
        options.crash_before_batch_reply = matches!(self.crash_at, Some(CrashAt::BatchReply));
        options.dedupe_retention =
            std::time::Duration::from_secs(self.dedupe_retention_secs.max(1));
        options.store_compression = self.store_compression;
        options.archive_after = (self.archive_after_secs > 0)
            .then(|| std::time::Duration::from_secs(self.archive_after_secs));
        if let Some(path) = &self.clock_file {
            options.clock = std::sync::Arc::new(keel_runtime::FileClock::new(path));
        }
        options
    }
}
