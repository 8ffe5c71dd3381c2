//! The bus a `keel` process runs on: the in-process bus by default, NATS with `--nats`.

use crate::config::Config;
use anyhow::Context;
use keel_bus::{InProcessBus, InProcessOptions, SharedBus};
use keel_bus_nats::{NatsBus, NatsOptions, StreamSpec};
use keel_protocol as protocol;
use std::time::Duration;

const DAY: Duration = Duration::from_secs(24 * 3600);

/// The JetStream streams Keel keeps (created or updated at start-up).
pub fn streams() -> Vec<StreamSpec> {
    let stream = |name: &str, subjects: &str, work_queue: bool, max_age: Duration| StreamSpec {
        name: name.to_owned(),
        subjects: vec![subjects.to_owned()],
        work_queue,
        max_age,
        duplicate_window: Duration::from_secs(120),
    };
    vec![
        // Events subscribers may replay, by sequence or time, for a week.
        stream(
            protocol::EVENTS_STREAM,
            protocol::EVENT_SUBJECTS,
            false,
            7 * DAY,
        ),
        // Warehouse confirmations (fire-and-forget): forgotten once applied.
        stream(
            protocol::WMS_STREAM,
            protocol::WMS_SUBJECTS,
            true,
            Duration::ZERO,
        ),
        // Messages set aside with their reason, for an operator to look at.
        stream(
            protocol::DEAD_LETTERS_STREAM,
            protocol::DEAD_LETTER_SUBJECTS,
            false,
            30 * DAY,
        ),
    ]
}

/// The bus a process runs on, and its NATS connection when it is on NATS.
pub struct Transport {
    pub bus: SharedBus,
    pub nats: Option<async_nats::Client>,
}

/// Connects the bus the configuration asks for; on NATS, what it keeps in JetStream is
/// stamped with `origin` (the node id). A gateway (`--role gateway`) keeps nothing in
/// JetStream, so it leaves the streams alone (its NATS user may not manage them).
pub async fn connect(config: &Config, origin: Option<&str>) -> anyhow::Result<Transport> {
    let Some(url) = &config.nats_url else {
        return Ok(Transport {
            bus: InProcessBus::new(InProcessOptions::default()).into_shared(),
            nats: None,
        });
    };
    let mut options = NatsOptions::new(url.clone(), "keel");
    if config.role != crate::config::Role::Gateway {
        options.streams = streams();
    }
    options.credentials.clone_from(&config.nats_credentials);
    options.origin = origin.map(str::to_owned);
    let within = Duration::from_secs(config.nats_connect_secs.max(1));
    let bus = NatsBus::connect(&options, within)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))?;
    tracing::info!(%url, max_payload = bus.max_payload(), "on NATS (JetStream)");
    Ok(Transport {
        nats: Some(bus.client()),
        bus: bus.into_shared(),
    })
}
