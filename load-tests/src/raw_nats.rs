//! The NATS server's own numbers, to put Keel's orders/s over NATS in proportion.
//!
//! - [`measure`]: the raw ceiling of the server Keel ran on, after the scenario so that it does
//!   not disturb it: core publish msgs/s (one publisher, one subscriber counting) and
//!   JetStream publish msgs/s into a throwaway file-storage stream (like Keel's), pipelined with
//!   [`JS_IN_FLIGHT`] acknowledgements outstanding. Only nats-server 2.9 features are used.
//! - [`MessageCount`]: the server's message counters (`/varz` of its monitoring port) around
//!   the measured load, for the NATS messages each accepted order cost.

use std::future::IntoFuture;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use async_nats::jetstream::{self, stream};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde::Deserialize;
use tokio::runtime::Runtime;

use crate::scenario::LoadWatch;

/// Messages of the core publish measurement.
pub const CORE_MESSAGES: u64 = 200_000;
/// Messages of the JetStream publish measurement.
const JS_MESSAGES: u64 = 50_000;
/// Payload of every message, bytes.
const PAYLOAD_BYTES: usize = 128;
/// JetStream publishes whose acknowledgement is awaited at once.
pub const JS_IN_FLIGHT: usize = 256;
/// The core subscriber gives up after this long without a message (the server dropped some).
const CORE_IDLE: Duration = Duration::from_secs(5);

/// The raw ceiling of a NATS server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ceilings {
    /// Core publish: messages received by the subscriber per second.
    pub core_msgs_per_sec: f64,
    /// Core publish: messages the subscriber received (of [`CORE_MESSAGES`]).
    pub core_received: u64,
    /// JetStream publish: acknowledged messages per second.
    pub jetstream_msgs_per_sec: f64,
}

/// Measures the raw ceiling of the server at `url`, on `runtime`, with connections of its own.
pub fn measure(runtime: &Runtime, url: &str) -> anyhow::Result<Ceilings> {
    runtime.block_on(async {
        let (core_received, core_elapsed) = core_publish(url)
            .await
            .context("core publish measurement")?;
        let js_elapsed = jetstream_publish(url)
            .await
            .context("JetStream publish measurement")?;
        Ok(Ceilings {
            core_msgs_per_sec: per_sec(core_received, core_elapsed),
            core_received,
            jetstream_msgs_per_sec: per_sec(JS_MESSAGES, js_elapsed),
        })
    })
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64().max(1e-9)
}

async fn connect(url: &str, name: &str) -> anyhow::Result<async_nats::Client> {
    async_nats::ConnectOptions::new()
        .name(name)
        // The subscriber must not drop messages on its side: room for all of them.
        .subscription_capacity(CORE_MESSAGES as usize)
        .connect(url)
        .await
        .with_context(|| format!("connecting to NATS at {url}"))
}

/// A token unique to this measurement, for its subject and stream names.
fn unique(client: &async_nats::Client) -> String {
    let inbox = client.new_inbox();
    inbox.rsplit('.').next().unwrap_or(&inbox).to_owned()
}

/// Publishes [`CORE_MESSAGES`] on one connection to a subscriber on another; answers how many
/// arrived and the time from the first publish to the last arrival.
async fn core_publish(url: &str) -> anyhow::Result<(u64, Duration)> {
    let receiver = connect(url, "keel-load-raw-subscriber").await?;
    let publisher = connect(url, "keel-load-raw-publisher").await?;
    let subject = async_nats::Subject::from(format!("keel-load.raw.core.{}", unique(&publisher)));
    let mut subscription = receiver.subscribe(subject.clone()).await?;
    until_subscribed(&publisher, &subject, &mut subscription).await?;

    let start = Instant::now();
    let counter = tokio::spawn(async move {
        let (mut received, mut last) = (0u64, start);
        while received < CORE_MESSAGES {
            match tokio::time::timeout(CORE_IDLE, subscription.next()).await {
                // A late probe is not one of the measured messages.
                Ok(Some(m)) if m.payload.is_empty() => {}
                Ok(Some(_)) => {
                    received += 1;
                    last = Instant::now();
                }
                Ok(None) | Err(_) => break,
            }
        }
        (received, last - start)
    });
    let payload = Bytes::from(vec![b'x'; PAYLOAD_BYTES]);
    for _ in 0..CORE_MESSAGES {
        publisher.publish(subject.clone(), payload.clone()).await?;
    }
    publisher.flush().await?;
    let (received, elapsed) = counter.await?;
    ensure!(received > 0, "the subscriber received nothing");
    Ok((received, elapsed))
}

/// Returns once the server delivers `publisher`'s messages on `subject` to `subscription`,
/// publishing empty probes until one arrives: the subscription travelled on another
/// connection, and a flush only means it was written to the socket, not that the server
/// registered it (publishes processed before it would be lost to the measurement).
async fn until_subscribed(
    publisher: &async_nats::Client,
    subject: &async_nats::Subject,
    subscription: &mut async_nats::Subscriber,
) -> anyhow::Result<()> {
    for _ in 0..50 {
        publisher.publish(subject.clone(), Bytes::new()).await?;
        publisher.flush().await?;
        let probe = tokio::time::timeout(Duration::from_millis(100), subscription.next());
        if let Ok(Some(_)) = probe.await {
            return Ok(());
        }
    }
    bail!("the subscriber received none of the probes on {subject}")
}

/// Publishes [`JS_MESSAGES`] into a throwaway file-storage stream with [`JS_IN_FLIGHT`]
/// acknowledgements outstanding, then deletes the stream; answers the time to the last
/// acknowledgement.
async fn jetstream_publish(url: &str) -> anyhow::Result<Duration> {
    let client = connect(url, "keel-load-raw-jetstream").await?;
    let js = jetstream::new(client.clone());
    let token = unique(&client);
    let name = format!("KEEL_LOAD_RAW_{token}");
    let subject = async_nats::Subject::from(format!("keel-load.raw.js.{token}"));
    js.create_stream(stream::Config {
        name: name.clone(),
        subjects: vec![subject.to_string()],
        storage: stream::StorageType::File,
        ..stream::Config::default()
    })
    .await
    .with_context(|| format!("creating the stream {name} (is JetStream enabled?)"))?;
    let published = pipelined(&js, &subject).await;
    let deleted = js.delete_stream(&name).await;
    let elapsed = published?;
    if let Err(e) = deleted {
        bail!("deleting the stream {name}: {e}");
    }
    Ok(elapsed)
}

async fn pipelined(
    js: &jetstream::Context,
    subject: &async_nats::Subject,
) -> anyhow::Result<Duration> {
    let payload = Bytes::from(vec![b'x'; PAYLOAD_BYTES]);
    let mut in_flight = FuturesUnordered::new();
    let start = Instant::now();
    for _ in 0..JS_MESSAGES {
        if in_flight.len() >= JS_IN_FLIGHT {
            if let Some(ack) = in_flight.next().await {
                ack?;
            }
        }
        let ack = js.publish(subject.clone(), payload.clone()).await?;
        in_flight.push(IntoFuture::into_future(ack));
    }
    while let Some(ack) = in_flight.next().await {
        ack?;
    }
    Ok(start.elapsed())
}

/// The counters of `/varz` that matter here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct Varz {
    /// Messages the server received from clients.
    pub in_msgs: u64,
    /// Messages the server delivered to clients.
    pub out_msgs: u64,
}

/// The server's monitoring endpoint (`nats-server -m PORT`).
pub struct Monitor {
    varz: String,
    agent: ureq::Agent,
}

/// How often [`Monitor::settled`] reads the counters.
const SETTLE_POLL: Duration = Duration::from_millis(250);
/// At most this many messages per poll count as quiet (idle pull requests and heartbeats).
const QUIET_MESSAGES: u64 = 10;
/// Longest wait for quiet.
const SETTLE_MAX: Duration = Duration::from_secs(20);

impl Monitor {
    /// A monitor of the endpoint at `base`, e.g. `http://127.0.0.1:8222`.
    pub fn new(base: &str) -> Self {
        let agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .build()
            .into();
        Monitor {
            varz: format!("{}/varz", base.trim_end_matches('/')),
            agent,
        }
    }

    /// Reads the counters now.
    pub fn read(&self) -> anyhow::Result<Varz> {
        self.agent
            .get(&self.varz)
            .call()
            .and_then(|mut r| r.body_mut().read_json::<Varz>())
            .with_context(|| format!("reading {}", self.varz))
    }

    /// Reads the counters once the server is quiet: the messages a burst of work set off
    /// (events, commands, their acknowledgements) have all passed, or [`SETTLE_MAX`] passed.
    pub fn settled(&self) -> anyhow::Result<Varz> {
        let start = Instant::now();
        let mut last = self.read()?;
        loop {
            std::thread::sleep(SETTLE_POLL);
            let now = self.read()?;
            let moved = (now.in_msgs + now.out_msgs).saturating_sub(last.in_msgs + last.out_msgs);
            if moved <= QUIET_MESSAGES || start.elapsed() >= SETTLE_MAX {
                return Ok(now);
            }
            last = now;
        }
    }
}

/// The messages the server handled during the measured load (from quiet before it to quiet
/// after it, so the messages the load's last orders set off are counted).
pub struct MessageCount {
    monitor: Monitor,
    before: Option<Varz>,
    delta: Option<Varz>,
    error: Option<String>,
}

impl MessageCount {
    /// Counts through `monitor`.
    pub fn new(monitor: Monitor) -> Self {
        MessageCount {
            monitor,
            before: None,
            delta: None,
            error: None,
        }
    }

    /// The counters' growth over the load, when both reads succeeded.
    pub fn delta(&self) -> Option<Varz> {
        self.delta
    }

    /// Why the count is missing, when it is.
    pub fn error(&self) -> Option<&str> {
        self.error.as_deref()
    }

    fn settled(&mut self) -> Option<Varz> {
        match self.monitor.settled() {
            Ok(v) => Some(v),
            Err(e) => {
                self.error.get_or_insert(format!("{e:#}"));
                None
            }
        }
    }
}

impl LoadWatch for MessageCount {
    fn starting(&mut self) {
        self.before = self.settled();
    }

    fn finished(&mut self) {
        let after = self.settled();
        self.delta = match (self.before, after) {
            (Some(b), Some(a)) => Some(Varz {
                in_msgs: a.in_msgs.saturating_sub(b.in_msgs),
                out_msgs: a.out_msgs.saturating_sub(b.out_msgs),
            }),
            _ => None,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varz_decodes_the_counters_among_the_rest() {
        let v: Varz =
            serde_json::from_str(r#"{"server_id":"N","in_msgs":12,"out_msgs":30,"mem":1}"#)
                .unwrap();
        assert_eq!(
            v,
            Varz {
                in_msgs: 12,
                out_msgs: 30
            }
        );
    }

    #[test]
    fn an_unreachable_monitor_leaves_the_count_empty_with_the_reason() {
        let mut count = MessageCount::new(Monitor::new("http://127.0.0.1:1/"));
        count.starting();
        count.finished();
        assert_eq!(count.delta(), None);
        assert!(count.error().unwrap().contains("127.0.0.1:1/varz"));
    }

    #[test]
    fn rates_are_per_second() {
        assert_eq!(per_sec(500, Duration::from_millis(250)), 2000.0);
    }
}
