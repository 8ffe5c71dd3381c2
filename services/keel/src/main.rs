//! `keel`: runs the whole platform in one process (see `keel --help`).

use clap::Parser;
use keel::config::{Config, LogFormat};

fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    keel_telemetry::init(match config.log_format {
        LogFormat::Text => keel_telemetry::LogFormat::Text,
        LogFormat::Json => keel_telemetry::LogFormat::Json,
    });
    actix_rt::System::new().block_on(keel::run(config))
}
