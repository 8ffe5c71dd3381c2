//! Between async-nats' types and the bus' own.

use crate::NatsStats;
use keel_bus::{Headers, Message};
use std::sync::atomic::Ordering;

/// The bus' headers as NATS headers.
pub(crate) fn header_map(headers: &Headers) -> async_nats::HeaderMap {
    let mut map = async_nats::HeaderMap::new();
    for (name, value) in headers {
        map.insert(name.as_str(), value.as_str());
    }
    map
}

/// NATS headers as the bus' (the last value of a repeated header wins).
pub(crate) fn headers(map: Option<&async_nats::HeaderMap>) -> Headers {
    map.into_iter()
        .flat_map(async_nats::HeaderMap::iter)
        .filter_map(|(name, values)| {
            let value = values.last()?;
            Some((name.to_string(), value.as_str().to_owned()))
        })
        .collect()
}

/// A NATS message as the bus' [`Message`].
pub(crate) fn message(m: async_nats::Message) -> Message {
    Message {
        subject: m.subject.to_string(),
        reply: m.reply.map(|r| r.to_string()),
        headers: headers(m.headers.as_ref()),
        payload: m.payload,
    }
}

pub(crate) fn publish_error(e: async_nats::PublishError) -> keel_bus::Error {
    keel_bus::Error::Unavailable(format!("publish: {e}"))
}

pub(crate) fn request_error(subject: &str, e: &async_nats::RequestError) -> keel_bus::Error {
    use async_nats::RequestErrorKind as Kind;
    match e.kind() {
        Kind::NoResponders => keel_bus::Error::NoResponders(subject.to_owned()),
        Kind::TimedOut => keel_bus::Error::Timeout(subject.to_owned()),
        Kind::InvalidSubject => keel_bus::Error::InvalidSubject(subject.to_owned()),
        Kind::MaxPayloadExceeded | Kind::Other => {
            keel_bus::Error::Unavailable(format!("request to {subject}: {e}"))
        }
    }
}

/// Logs and counts what the connection reports.
pub(crate) fn on_event(stats: &NatsStats, event: &async_nats::Event) {
    match event {
        async_nats::Event::Connected => tracing::info!("connected to NATS"),
        async_nats::Event::Disconnected => {
            stats.disconnects.fetch_add(1, Ordering::Relaxed);
            tracing::warn!("disconnected from NATS; reconnecting");
        }
        async_nats::Event::SlowConsumer(sid) => {
            stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                subscription = sid,
                "NATS dropped messages for a slow subscription"
            );
        }
        other => tracing::info!(event = %other, "NATS connection event"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_round_trip() {
        let ours = Headers::from([
            ("Nats-Msg-Id".to_owned(), "o/1#2.0".to_owned()),
            ("traceparent".to_owned(), "00-abc-def-01".to_owned()),
        ]);
        assert_eq!(headers(Some(&header_map(&ours))), ours);
        assert!(headers(None).is_empty());
    }
}
