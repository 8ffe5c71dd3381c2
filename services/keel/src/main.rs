//! `keel`: runs the whole platform in one process (see `keel --help`).

use clap::Parser;
use keel::config::{Config, LogFormat};

/// mimalloc hands freed memory back to the OS: with glibc's allocator a node stayed at its peak
/// resident size (1.1 GB after a load burst) long after its actors were passivated.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    keel_telemetry::init(match config.log_format {
        LogFormat::Text => keel_telemetry::LogFormat::Text,
        LogFormat::Json => keel_telemetry::LogFormat::Json,
    });
    actix_rt::System::new().block_on(keel::run(config))
}
