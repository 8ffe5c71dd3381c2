//! Keel's bus over NATS (async-nats): the production transport behind the [`keel_bus::Bus`]
//! trait, so actors and the gateway run unchanged on it.
//!
//! Core NATS carries request-reply and plain subscriptions. Subjects captured by one of the
//! configured JetStream streams ([`StreamSpec`]) are published through JetStream and the publish
//! waits for the stream's acknowledgement, so a publisher that deletes its outbox entry after
//! `publish` returned loses nothing; a `Nats-Msg-Id` header ([`keel_bus::MESSAGE_ID_HEADER`])
//! makes a retried publish a no-op within the stream's duplicate window. Durable consumers
//! ([`keel_bus::Bus::consume`]) are JetStream pull consumers with explicit acknowledgement.
//!
//! The client reconnects on its own with back-off; while it is disconnected
//! [`keel_bus::Bus::is_connected`] is false and publishes fail with
//! [`keel_bus::Error::Unavailable`] (the caller's outbox retries them). Only JetStream features
//! of nats-server 2.9 are used: one filter subject per consumer.

mod consume;
mod convert;
mod error;
mod streams;

pub use error::Error;
pub use streams::StreamSpec;

/// The names of the counters this bus reports (`keel_nats_*`).
pub mod metrics {
    /// Counter: connection losses.
    pub const DISCONNECTS: &str = "keel_nats_disconnects_total";
    /// Counter: slow-consumer reports from the server.
    pub const SLOW_CONSUMERS: &str = "keel_nats_slow_consumers_total";
    /// Counter: JetStream publishes acknowledged.
    pub const JETSTREAM_PUBLISHED: &str = "keel_nats_jetstream_published_total";
    /// Counter: JetStream publishes recognised as duplicates.
    pub const JETSTREAM_DUPLICATES: &str = "keel_nats_jetstream_duplicates_total";
}

use async_nats::jetstream;
use bytes::Bytes;
use futures::{FutureExt, StreamExt};
use keel_bus::{BoxFuture, Bus, Deliveries, Headers, Message, SharedBus, Subscription};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How to reach NATS and what to keep in JetStream.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// Server URL(s), comma-separated (`nats://127.0.0.1:4222`).
    pub url: String,
    /// The connection name the server shows (`keel-node`, …).
    pub name: String,
    /// The streams to create or update at connect time; publishes to their subjects go
    /// through JetStream.
    pub streams: Vec<StreamSpec>,
    /// How long a JetStream publish may wait for its acknowledgement.
    pub publish_timeout: Duration,
    /// A NATS credentials file (user JWT and seed) to authenticate with.
    pub credentials: Option<std::path::PathBuf>,
    /// The node id stamped on every message kept in JetStream ([`ORIGIN_HEADER`]), so that
    /// what a node published can be told apart (a fenced node's, say).
    pub origin: Option<String>,
}

/// The header naming the node that published a message kept in JetStream.
pub const ORIGIN_HEADER: &str = "Keel-Node";

impl NatsOptions {
    /// Options for `url` with no streams.
    pub fn new(url: impl Into<String>, name: impl Into<String>) -> Self {
        NatsOptions {
            url: url.into(),
            name: name.into(),
            streams: Vec::new(),
            publish_timeout: Duration::from_secs(5),
            credentials: None,
            origin: None,
        }
    }
}

/// What happened on the connection so far (for metrics).
#[derive(Debug, Default)]
pub struct NatsStats {
    /// Times the connection was lost.
    pub disconnects: AtomicU64,
    /// Times the server reported one of our subscriptions too slow (it dropped messages for
    /// it). Commands never travel on plain subscriptions, so this loses no command.
    pub slow_consumers: AtomicU64,
    /// Messages published through JetStream and acknowledged by their stream.
    pub jetstream_published: AtomicU64,
    /// JetStream publishes the stream recognised as duplicates (a retried publish).
    pub jetstream_duplicates: AtomicU64,
}

/// A [`Bus`] on a NATS connection.
#[derive(Clone)]
pub struct NatsBus {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Subject patterns captured by a stream (published through JetStream).
    kept: Arc<[String]>,
    origin: Option<Arc<str>>,
    stats: Arc<NatsStats>,
}

impl std::fmt::Debug for NatsBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsBus")
            .field("state", &self.client.connection_state())
            .field("kept", &self.kept)
            .finish_non_exhaustive()
    }
}

impl NatsBus {
    /// Connects (retrying with back-off until `connect_within` has passed) and creates or
    /// updates the configured streams.
    ///
    /// # Errors
    /// [`Error::Connect`] when no server answered in time, [`Error::Stream`] when a stream
    /// could not be created or updated.
    pub async fn connect(options: &NatsOptions, connect_within: Duration) -> Result<Self, Error> {
        let stats = Arc::new(NatsStats::default());
        let events = Arc::clone(&stats);
        let connect = connect_options(&options.url, options.credentials.as_deref()).await?;
        let connect = connect
            .name(&options.name)
            .retry_on_initial_connect()
            .connection_timeout(Duration::from_secs(2))
            .reconnect_delay_callback(|attempt| {
                // 0, 100 ms, 200 ms … capped at 2 s: a restarted server is found quickly.
                Duration::from_millis((attempt as u64 * 100).min(2_000))
            })
            .event_callback(move |event| {
                let stats = Arc::clone(&events);
                async move { convert::on_event(&stats, &event) }
            })
            .connect(options.url.as_str());
        let client = tokio::time::timeout(connect_within, connect)
            .await
            .map_err(|_| Error::Connect(format!("no answer from {} in time", options.url)))?
            .map_err(|e| Error::Connect(format!("{}: {e}", options.url)))?;
        let jetstream = jetstream::ContextBuilder::new()
            .timeout(options.publish_timeout)
            .build(client.clone());
        streams::ensure(&jetstream, &options.streams, connect_within).await?;
        // Known only once connected, which setting the streams up waited for.
        check_server_version(&client.server_info().version)?;
        Ok(NatsBus {
            client,
            jetstream,
            kept: options
                .streams
                .iter()
                .flat_map(|s| s.subjects.iter().cloned())
                .collect(),
            origin: options.origin.as_deref().map(Arc::from),
            stats,
        })
    }

    /// This bus as the handle actors and the gateway hold.
    pub fn into_shared(self) -> SharedBus {
        Arc::new(self)
    }

    /// Connection counters.
    pub fn stats(&self) -> Arc<NatsStats> {
        Arc::clone(&self.stats)
    }

    /// The underlying connection (for JetStream features beyond the bus, such as the
    /// cluster's KV buckets).
    pub fn client(&self) -> async_nats::Client {
        self.client.clone()
    }

    /// The most a message (payload and headers) may carry on this server.
    pub fn max_payload(&self) -> usize {
        self.client.server_info().max_payload
    }

    fn is_kept(&self, subject: &str) -> bool {
        self.kept
            .iter()
            .any(|pattern| keel_bus::subject::matches(pattern, subject))
    }

    fn check_size(&self, headers: &Headers, payload: &Bytes) -> Result<(), keel_bus::Error> {
        let (size, max) = (keel_bus::encoded_size(headers, payload), self.max_payload());
        if size > max {
            return Err(keel_bus::Error::PayloadTooLarge { size, max });
        }
        Ok(())
    }

    /// Publishes through JetStream and waits for the stream's acknowledgement.
    async fn publish_kept(
        &self,
        subject: String,
        headers: Headers,
        payload: Bytes,
    ) -> Result<(), keel_bus::Error> {
        let ack = self.send_kept(&subject, headers, payload).await?;
        self.acknowledged(&subject, ack).await
    }

    /// Sends a publish to JetStream; the returned future resolves with the stream's answer.
    async fn send_kept(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> Result<jetstream::context::PublishAckFuture, keel_bus::Error> {
        let mut publish = jetstream::message::PublishMessage::build()
            .payload(payload)
            .headers(convert::header_map(&headers));
        if let Some(origin) = &self.origin {
            publish = publish.header(ORIGIN_HEADER, &**origin);
        }
        self.jetstream
            .send_publish(subject.to_owned(), publish)
            .await
            .map_err(|e| keel_bus::Error::Unavailable(format!("publish to {subject}: {e}")))
    }

    /// Waits for a stream's acknowledgement of a publish to `subject` and counts it.
    async fn acknowledged(
        &self,
        subject: &str,
        ack: jetstream::context::PublishAckFuture,
    ) -> Result<(), keel_bus::Error> {
        let ack = ack.await.map_err(|e| {
            keel_bus::Error::Unavailable(format!("acknowledgement of {subject}: {e}"))
        })?;
        let counter = if ack.duplicate {
            &self.stats.jetstream_duplicates
        } else {
            &self.stats.jetstream_published
        };
        counter.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Sends one message of an ordered batch: a kept one is handed to JetStream (its
    /// acknowledgement comes later), a plain one is published.
    async fn send_in_order(
        &self,
        message: keel_bus::Outgoing,
    ) -> Result<Option<jetstream::context::PublishAckFuture>, keel_bus::Error> {
        let keel_bus::Outgoing {
            subject,
            headers,
            payload,
        } = message;
        keel_bus::subject::validate_subject(&subject)?;
        self.check_size(&headers, &payload)?;
        count_sent(&subject);
        if self.is_kept(&subject) {
            return self.send_kept(&subject, headers, payload).await.map(Some);
        }
        self.client
            .publish_with_headers(subject, convert::header_map(&headers), payload)
            .await
            .map(|()| None)
            .map_err(convert::publish_error)
    }
}

/// How to authenticate to the servers of `url` (comma-separated): with a credentials file
/// when one is given, else with the user and password the first URL names
/// (`nats://user:password@host:4222`), which the client library would otherwise ignore.
///
/// # Errors
/// [`Error::Connect`] when the credentials file cannot be read or a URL does not parse.
pub async fn connect_options(
    url: &str,
    credentials: Option<&std::path::Path>,
) -> Result<async_nats::ConnectOptions, Error> {
    if let Some(path) = credentials {
        return async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| Error::Connect(format!("credentials {}: {e}", path.display())));
    }
    let first = url.split(',').next().unwrap_or_default().trim();
    let server: async_nats::ServerAddr = first
        .parse()
        .map_err(|e| Error::Connect(format!("{first}: {e}")))?;
    Ok(match (server.username(), server.password()) {
        (Some(user), Some(password)) => {
            async_nats::ConnectOptions::with_user_and_password(user.into(), password.into())
        }
        _ => async_nats::ConnectOptions::new(),
    })
}

/// Counts a message this process publishes on `subject`, by its kind
/// (`keel_nats_messages_sent_total`, see [`keel_protocol::sent`]).
pub fn count_sent(subject: &str) {
    use keel_protocol::sent;
    // Every kind's counter is looked up once: a send pays one atomic add, not a label lookup.
    static SENT: std::sync::OnceLock<Vec<(&str, keel_telemetry::metrics::IntCounter)>> =
        std::sync::OnceLock::new();
    let counters = SENT.get_or_init(|| {
        let family = keel_telemetry::metrics::counter(sent::METRIC, sent::HELP, &["kind"]);
        sent::KINDS
            .into_iter()
            .map(|kind| (kind, family.with_label_values(&[kind])))
            .collect()
    });
    let kind = sent::kind(subject);
    if let Some((_, counter)) = counters.iter().find(|(k, _)| *k == kind) {
        counter.inc();
    }
}

/// The oldest nats-server Keel runs on: 2.10 brought what the cluster may rely on (several
/// filter subjects per consumer, KV through the client library), and older releases are out
/// of maintenance. Tests run on a pinned current release (tests/run installs it).
pub const MIN_SERVER_VERSION: &str = "2.10.0";

/// Refuses a server older than [`MIN_SERVER_VERSION`]; a version that does not parse (a
/// development build) is let through.
fn check_server_version(found: &str) -> Result<(), Error> {
    let parse = |v: &str| -> Option<(u64, u64, u64)> {
        let core = v.trim().trim_start_matches('v').split(['-', '+']).next()?;
        let mut parts = core.split('.').map(|p| p.parse::<u64>().ok());
        Some((
            parts.next()??,
            parts.next()??,
            parts.next().flatten().unwrap_or(0),
        ))
    };
    match (parse(found), parse(MIN_SERVER_VERSION)) {
        (Some(server), Some(minimum)) if server < minimum => Err(Error::ServerTooOld {
            found: found.to_owned(),
            minimum: MIN_SERVER_VERSION,
        }),
        _ => Ok(()),
    }
}

impl Bus for NatsBus {
    fn durable(&self) -> bool {
        true
    }

    fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    fn counters(&self) -> Vec<keel_bus::Counter> {
        let counter = |name, help, value: &AtomicU64| keel_bus::Counter {
            name,
            help,
            value: value.load(Ordering::Relaxed),
        };
        let s = &self.stats;
        vec![
            counter(
                metrics::DISCONNECTS,
                "Times the NATS connection was lost (the client reconnects by itself).",
                &s.disconnects,
            ),
            counter(
                metrics::SLOW_CONSUMERS,
                "Times NATS dropped messages for a too slow plain subscription (never commands).",
                &s.slow_consumers,
            ),
            counter(
                metrics::JETSTREAM_PUBLISHED,
                "Messages published through JetStream and acknowledged by their stream.",
                &s.jetstream_published,
            ),
            counter(
                metrics::JETSTREAM_DUPLICATES,
                "JetStream publishes their stream recognised as repeats (Nats-Msg-Id).",
                &s.jetstream_duplicates,
            ),
        ]
    }

    fn publish(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), keel_bus::Error>> {
        if let Err(e) = keel_bus::subject::validate_subject(subject)
            .and_then(|()| self.check_size(&headers, &payload))
        {
            return futures::future::ready(Err(e)).boxed();
        }
        count_sent(subject);
        let (bus, subject) = (self.clone(), subject.to_owned());
        async move {
            if bus.is_kept(&subject) {
                return bus.publish_kept(subject, headers, payload).await;
            }
            bus.client
                .publish_with_headers(subject, convert::header_map(&headers), payload)
                .await
                .map_err(convert::publish_error)
        }
        .boxed()
    }

    fn publish_in_order(
        &self,
        messages: Vec<keel_bus::Outgoing>,
    ) -> BoxFuture<Result<(), keel_bus::PartialPublish>> {
        let bus = self.clone();
        async move {
            // One connection keeps the order of what is sent on it, so sending every message
            // before awaiting any acknowledgement keeps the batch in order in its stream.
            let mut sent = Vec::with_capacity(messages.len());
            let mut failed = None;
            for message in messages {
                let subject = message.subject.clone();
                match bus.send_in_order(message).await {
                    Ok(ack) => sent.push((subject, ack)),
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            let sent_count = sent.len();
            for (accepted, (subject, ack)) in sent.into_iter().enumerate() {
                if let Some(ack) = ack {
                    bus.acknowledged(&subject, ack)
                        .await
                        .map_err(|error| keel_bus::PartialPublish { accepted, error })?;
                }
            }
            match failed {
                // Every message before the failed one was acknowledged above.
                Some(error) => Err(keel_bus::PartialPublish {
                    accepted: sent_count,
                    error,
                }),
                None => Ok(()),
            }
        }
        .boxed()
    }

    fn publish_with_reply(
        &self,
        subject: &str,
        reply: &str,
        headers: Headers,
        payload: Bytes,
    ) -> BoxFuture<Result<(), keel_bus::Error>> {
        if let Err(e) = keel_bus::subject::validate_subject(subject)
            .and_then(|()| keel_bus::subject::validate_subject(reply))
            .and_then(|()| self.check_size(&headers, &payload))
        {
            return futures::future::ready(Err(e)).boxed();
        }
        count_sent(subject);
        let (client, subject, reply) = (self.client.clone(), subject.to_owned(), reply.to_owned());
        async move {
            client
                .publish_with_reply_and_headers(
                    subject,
                    reply,
                    convert::header_map(&headers),
                    payload,
                )
                .await
                .map_err(convert::publish_error)
        }
        .boxed()
    }

    fn subscribe(&self, pattern: &str) -> BoxFuture<Result<Subscription, keel_bus::Error>> {
        self.subscription(pattern, None)
    }

    fn queue_subscribe(
        &self,
        pattern: &str,
        group: &str,
    ) -> BoxFuture<Result<Subscription, keel_bus::Error>> {
        self.subscription(pattern, Some(group))
    }

    fn request(
        &self,
        subject: &str,
        headers: Headers,
        payload: Bytes,
        timeout: Duration,
    ) -> BoxFuture<Result<Message, keel_bus::Error>> {
        if let Err(e) = keel_bus::subject::validate_subject(subject)
            .and_then(|()| self.check_size(&headers, &payload))
        {
            return futures::future::ready(Err(e)).boxed();
        }
        count_sent(subject);
        let (client, subject) = (self.client.clone(), subject.to_owned());
        async move {
            let request = async_nats::Request::new()
                .headers(convert::header_map(&headers))
                .payload(payload)
                .timeout(Some(timeout));
            client
                .send_request(subject.clone(), request)
                .await
                .map(convert::message)
                .map_err(|e| convert::request_error(&subject, &e))
        }
        .boxed()
    }

    fn consume(
        &self,
        stream: &str,
        consumer: &str,
        filter: &str,
    ) -> BoxFuture<Result<Deliveries, keel_bus::Error>> {
        let (jetstream, stream, consumer, filter) = (
            self.jetstream.clone(),
            stream.to_owned(),
            consumer.to_owned(),
            filter.to_owned(),
        );
        async move { consume::durable(jetstream, &stream, &consumer, &filter).await }.boxed()
    }
}

impl NatsBus {
    fn subscription(
        &self,
        pattern: &str,
        group: Option<&str>,
    ) -> BoxFuture<Result<Subscription, keel_bus::Error>> {
        let valid = keel_bus::subject::validate_pattern(pattern)
            .and_then(|()| group.map_or(Ok(()), keel_bus::subject::validate_group));
        if let Err(e) = valid {
            return futures::future::ready(Err(e)).boxed();
        }
        let (client, pattern, group) = (
            self.client.clone(),
            pattern.to_owned(),
            group.map(str::to_owned),
        );
        async move {
            let subscriber = match &group {
                Some(group) => client.queue_subscribe(pattern.clone(), group.clone()).await,
                None => client.subscribe(pattern.clone()).await,
            }
            .map_err(|e| keel_bus::Error::Unavailable(format!("subscribe {pattern}: {e}")))?;
            // Once the server has seen the subscription, a message published now reaches it
            // (the in-process bus' guarantee too).
            client
                .flush()
                .await
                .map_err(|e| keel_bus::Error::Unavailable(format!("subscribe {pattern}: {e}")))?;
            Ok(Subscription::from_stream(
                &pattern,
                group.as_deref(),
                subscriber.map(convert::message),
            ))
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_older_than_the_minimum_is_refused_with_both_versions() {
        let refused = check_server_version("2.9.10").expect_err("2.9 is too old");
        let message = refused.to_string();
        assert!(
            message.contains("2.9.10") && message.contains(MIN_SERVER_VERSION),
            "{message}"
        );
        for fine in [
            "2.10.0",
            "2.10.22",
            "2.15.1",
            "v2.12.0-beta.1",
            "3.0.0",
            "dev",
        ] {
            assert!(check_server_version(fine).is_ok(), "{fine}");
        }
    }
}
