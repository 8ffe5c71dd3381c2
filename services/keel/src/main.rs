//! `keel`: runs the whole platform in one process (see `keel --help`).

use clap::Parser;
use keel::config::{Config, LogFormat};

/// mimalloc hands freed memory back to the OS: with glibc's allocator a node stayed at its peak
/// resident size (1.1 GB after a load burst) long after its actors were passivated.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    let format = match config.log_format {
        LogFormat::Text => keel_telemetry::LogFormat::Text,
        LogFormat::Json => keel_telemetry::LogFormat::Json,
    };
    // Outlives the actix system, so spans still buffered are flushed after it stopped.
    let service = keel_telemetry::Service {
        name: "keel",
        instance: keel::instance_id(&config),
    };
    let _telemetry = keel_telemetry::init(format, &service);
    actix_rt::System::new().block_on(keel::run(config))
}
