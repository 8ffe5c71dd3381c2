//! Keel's wire contract, shared by the node (which answers) and the gateway (which asks):
//! the subjects (all under the versioned prefix `keel.v1.`), how a reply says whether it
//! succeeded, and in [`wire`] a typed JSON message for every payload, with its JSON Schema
//! (committed under docs/schemas/).
//!
//! A reply carries `Keel-Status: ok | created | error`; an error reply also carries
//! `Keel-Error: <code>` and the body `{"error":{"code","message"}}`. The JSON bodies are the
//! same as the HTTP API's (docs/http-api.md). The codes, their HTTP statuses and the code of
//! each domain error are [`ErrorCode`]'s.

pub mod entities;
mod error_code;
pub mod wire;

pub use error_code::ErrorCode;

use keel_bus::Headers;

/// Every API subject starts with this.
pub const API_PREFIX: &str = "keel.v1.api.";
/// The pattern nodes subscribe to: every version's API, so that a request for a version this
/// node does not serve is answered `unsupported_version` instead of going unanswered.
pub const API_SUBJECTS: &str = "keel.*.api.>";
/// The largest request body the API takes (`payload_too_large` above it), as over HTTP.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;
/// The queue group that spreads API requests over a node's workers.
pub const API_QUEUE_GROUP: &str = "keel-api";
/// Reply header: `ok`, `created` or `error`.
pub const STATUS_HEADER: &str = "Keel-Status";
/// Reply header naming the error code of an error reply.
pub const ERROR_HEADER: &str = "Keel-Error";

/// The JetStream stream that keeps events for subscribers (replay by sequence or time).
pub const EVENTS_STREAM: &str = "KEEL_EVENTS";
/// Every event subject (`keel.v1.evt.<kind>.…`).
pub const EVENT_SUBJECTS: &str = "keel.v1.evt.>";
/// Every position event (`keel.v1.evt.inventory.{location}.{sku}`).
pub const INVENTORY_EVENTS: &str = "keel.v1.evt.inventory.>";
/// Where a node sends the node serving `partition` a batch of commands between actors (core
/// NATS request-reply, on the partition's forwarding prefix, which only its serving node
/// subscribes to): the payload is a JSON array of commands, the reply a JSON array of their
/// outcomes in the same order, sent once their effects are durable (a command not applied,
/// because an earlier one for its target failed, answers `unavailable`, and the sender sends
/// it again).
pub fn command_batch_subject(partition: u32) -> String {
    format!("{}{COMMAND_BATCH}", forward_prefix(partition))
}
/// The last token of [`command_batch_subject`].
pub const COMMAND_BATCH: &str = "commands";
/// Header of a command batch: the sender's epoch for each partition whose commands the batch
/// holds (`{partition}={epoch}`, comma-separated; see [`source_epochs`]). The receiver refuses
/// a batch from an epoch older than the last it applied for that partition (`stale_epoch`).
pub const EPOCHS_HEADER: &str = "Keel-Epochs";

/// The [`EPOCHS_HEADER`] of a batch from these (partition, epoch) pairs.
pub fn epochs_header(epochs: impl IntoIterator<Item = (u32, u64)>) -> String {
    let pairs: Vec<String> = epochs
        .into_iter()
        .map(|(partition, epoch)| format!("{partition}={epoch}"))
        .collect();
    pairs.join(",")
}

/// The (partition, epoch) pairs of an [`EPOCHS_HEADER`]; `None` when it does not parse.
pub fn source_epochs(header: &str) -> Option<Vec<(u32, u64)>> {
    header
        .split(',')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (partition, epoch) = pair.split_once('=')?;
            Some((partition.trim().parse().ok()?, epoch.trim().parse().ok()?))
        })
        .collect()
}
/// Where a node sends an API request for an entity of `partition` that another node serves:
/// the prefix, followed by the request's own subject. Only the serving node subscribes.
pub fn forward_prefix(partition: u32) -> String {
    format!("keel.v1.fwd.{partition}.")
}
/// Where a request on API `subject` about an entity of `partition` goes to be answered by the
/// node serving that partition (only it subscribes there).
pub fn forwarded_subject(partition: u32, subject: &str) -> String {
    format!("{}{subject}", forward_prefix(partition))
}
/// The JetStream stream that keeps dead letters: messages that could not be handled at all,
/// each with the reason in [`DEAD_LETTER_REASON_HEADER`].
pub const DEAD_LETTERS_STREAM: &str = "KEEL_DEAD_LETTERS";
/// Every dead-letter subject (`keel.v1.dlq.<source>`).
pub const DEAD_LETTER_SUBJECTS: &str = "keel.v1.dlq.>";
/// Dead letters of commands between actors: a command batch that does not decode.
pub const COMMAND_DEAD_LETTERS: &str = "keel.v1.dlq.commands";
/// Header of a dead letter naming why it was set aside.
pub const DEAD_LETTER_REASON_HEADER: &str = "Keel-Dead-Letter-Reason";
/// Every warehouse confirmation subject (`keel.v1.wms.{location}.confirm`, fire-and-forget,
/// payload [`wire::wms::WmsConfirmation`]).
pub const WMS_CONFIRM_SUBJECTS: &str = "keel.v1.wms.*.confirm";
/// The JetStream work queue that keeps warehouse messages until a node applied them.
pub const WMS_STREAM: &str = "KEEL_WMS";
/// Every warehouse inbound subject (the stream's and the consumer's filter).
pub const WMS_SUBJECTS: &str = "keel.v1.wms.>";
/// The durable consumer through which nodes take warehouse messages off [`WMS_STREAM`].
pub const WMS_CONSUMER: &str = "keel-wms";
/// Header of a dead letter with the error code that set it aside.
pub const DEAD_LETTER_ERROR_HEADER: &str = "Keel-Error";
/// Header of a dead letter naming the subject it was sent to.
pub const DEAD_LETTER_SUBJECT_HEADER: &str = "Keel-Original-Subject";

/// Where a warehouse message for `location` that cannot be applied is set aside.
pub fn wms_dead_letters(location: &str) -> String {
    format!("keel.v1.dlq.wms.{location}")
}

/// The request-reply API, one subject per operation (`keel.v1.api.<resource>.<verb>`).
/// The subjects events are published on (kept by [`EVENTS_STREAM`]): one per entity, so a
/// subscriber can filter by kind, channel or location and gets each entity's events in order.
pub mod events {
    use std::fmt::Display;

    /// An order's events: `keel.v1.evt.order.{channel}.{order}`.
    pub fn order(channel: impl Display, order: impl Display) -> String {
        format!("keel.v1.evt.order.{channel}.{order}")
    }
    /// A fulfillment's events: `keel.v1.evt.fulfillment.{location}.{fulfillment}`.
    pub fn fulfillment(location: impl Display, fulfillment: impl Display) -> String {
        format!("keel.v1.evt.fulfillment.{location}.{fulfillment}")
    }
    /// A SKU-location's positions: `keel.v1.evt.inventory.{location}.{sku}`.
    pub fn inventory(location: impl Display, sku: impl Display) -> String {
        format!("keel.v1.evt.inventory.{location}.{sku}")
    }
    /// A cart hold's events: `keel.v1.evt.hold.{channel}.{hold}`.
    pub fn hold(channel: impl Display, hold: impl Display) -> String {
        format!("keel.v1.evt.hold.{channel}.{hold}")
    }
}

/// The subjects of the changelog, Keel's own durable copy of every partition (internal):
/// `keel.v1.log.{partition}` and `keel.v1.log.catalog`.
pub mod changelog {
    const PREFIX: &str = "keel.v1.log.";
    /// Every changelog subject (the stream's).
    pub const SUBJECTS: &str = "keel.v1.log.>";

    /// The subject of a lane, by its token (a partition number, or `catalog`).
    pub fn subject(token: &str) -> String {
        format!("{PREFIX}{token}")
    }

    /// The lane token a changelog subject names.
    pub fn token(subject: &str) -> Option<&str> {
        subject.strip_prefix(PREFIX)
    }
}

/// Counting what a process sends on NATS, by kind of message.
pub mod sent {
    /// The counter's name (label `kind`, one of the kinds [`kind`] answers).
    pub const METRIC: &str = "keel_nats_messages_sent_total";
    /// Its help text.
    pub const HELP: &str = "Messages this process published on NATS, by kind: event, changelog, command_batch, forward (a request for another node's partition), request (an API request), reply, dead_letter, wms, other.";

    /// Every kind [`kind`] answers.
    pub const KINDS: [&str; 9] = [
        "event",
        "changelog",
        "command_batch",
        "forward",
        "request",
        "reply",
        "dead_letter",
        "wms",
        "other",
    ];

    /// The kind of a message published on `subject`.
    pub fn kind(subject: &str) -> &'static str {
        let Some(rest) = subject.strip_prefix("keel.v1.") else {
            return if subject.starts_with("_INBOX.") {
                "reply"
            } else {
                "other"
            };
        };
        match rest.split('.').next() {
            Some("evt") => "event",
            Some("log") => "changelog",
            Some("fwd") if rest.rsplit('.').next() == Some(super::COMMAND_BATCH) => "command_batch",
            Some("fwd") => "forward",
            Some("api") => "request",
            Some("dlq") => "dead_letter",
            Some("wms") => "wms",
            _ => "other",
        }
    }
}

pub mod subjects {
    pub const LOCATIONS_CREATE: &str = "keel.v1.api.locations.create";
    pub const LOCATIONS_GET: &str = "keel.v1.api.locations.get";
    pub const LOCATIONS_LIST: &str = "keel.v1.api.locations.list";
    pub const CHANNELS_CREATE: &str = "keel.v1.api.channels.create";
    pub const CHANNELS_GET: &str = "keel.v1.api.channels.get";
    pub const CHANNELS_LIST: &str = "keel.v1.api.channels.list";
    pub const SKUS_CREATE: &str = "keel.v1.api.skus.create";
    pub const SKUS_GET: &str = "keel.v1.api.skus.get";
    pub const SKUS_LIST: &str = "keel.v1.api.skus.list";
    pub const INVENTORY_RECEIPT: &str = "keel.v1.api.inventory.receipt";
    pub const INVENTORY_ADJUST: &str = "keel.v1.api.inventory.adjust";
    pub const INVENTORY_GET: &str = "keel.v1.api.inventory.get";
    pub const INVENTORY_POSITION: &str = "keel.v1.api.inventory.position";
    pub const INVENTORY_LEDGER: &str = "keel.v1.api.inventory.ledger";
    pub const INVENTORY_RESERVATIONS: &str = "keel.v1.api.inventory.reservations";
    pub const INVENTORY_BACKORDERS: &str = "keel.v1.api.inventory.backorders";
    pub const ORDERS_PLACE: &str = "keel.v1.api.orders.place";
    pub const ORDERS_GET: &str = "keel.v1.api.orders.get";
    pub const ORDERS_CANCEL: &str = "keel.v1.api.orders.cancel";
    pub const FULFILLMENTS_CONFIRM: &str = "keel.v1.api.fulfillments.confirm";
    pub const FULFILLMENTS_GET: &str = "keel.v1.api.fulfillments.get";
    pub const HOLDS_PLACE: &str = "keel.v1.api.holds.place";
    pub const HOLDS_GET: &str = "keel.v1.api.holds.get";
    pub const HOLDS_RELEASE: &str = "keel.v1.api.holds.release";

    /// Every API subject.
    pub const ALL: [&str; 24] = [
        LOCATIONS_CREATE,
        LOCATIONS_GET,
        LOCATIONS_LIST,
        CHANNELS_CREATE,
        CHANNELS_GET,
        CHANNELS_LIST,
        SKUS_CREATE,
        SKUS_GET,
        SKUS_LIST,
        INVENTORY_RECEIPT,
        INVENTORY_ADJUST,
        INVENTORY_GET,
        INVENTORY_POSITION,
        INVENTORY_LEDGER,
        INVENTORY_RESERVATIONS,
        INVENTORY_BACKORDERS,
        ORDERS_PLACE,
        ORDERS_GET,
        ORDERS_CANCEL,
        FULFILLMENTS_CONFIRM,
        FULFILLMENTS_GET,
        HOLDS_PLACE,
        HOLDS_GET,
        HOLDS_RELEASE,
    ];
}

/// How a reply turned out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyStatus {
    /// Done (or already done: an idempotent repeat).
    Ok,
    /// Done, and it created the resource.
    Created,
    /// Refused or failed with this code.
    Error(ErrorCode),
}

impl ReplyStatus {
    /// The reply headers that carry this status.
    pub fn headers(self) -> Headers {
        let mut headers = Headers::new();
        let status = match self {
            ReplyStatus::Ok => "ok",
            ReplyStatus::Created => "created",
            ReplyStatus::Error(code) => {
                headers.insert(ERROR_HEADER.to_owned(), code.as_str().to_owned());
                "error"
            }
        };
        headers.insert(STATUS_HEADER.to_owned(), status.to_owned());
        headers
    }

    /// Reads the status from reply headers; a reply without them is an internal error.
    pub fn from_headers(headers: &Headers) -> ReplyStatus {
        match headers.get(STATUS_HEADER).map(String::as_str) {
            Some("ok") => ReplyStatus::Ok,
            Some("created") => ReplyStatus::Created,
            _ => ReplyStatus::Error(
                headers
                    .get(ERROR_HEADER)
                    .and_then(|c| ErrorCode::parse(c))
                    .unwrap_or(ErrorCode::Internal),
            ),
        }
    }
}

/// The error body: `{"error":{"code","message"}}` ([`wire::replies::ErrorBody`]).
pub fn error_body(code: ErrorCode, message: &str) -> Vec<u8> {
    let body = wire::replies::ErrorBody {
        error: wire::replies::ErrorDetail {
            code,
            message: message.to_owned(),
        },
    };
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_status_round_trips_through_headers() {
        for status in [
            ReplyStatus::Ok,
            ReplyStatus::Created,
            ReplyStatus::Error(ErrorCode::UnknownSku),
        ] {
            assert_eq!(ReplyStatus::from_headers(&status.headers()), status);
        }
        assert_eq!(
            ReplyStatus::from_headers(&Headers::new()),
            ReplyStatus::Error(ErrorCode::Internal)
        );
    }

    #[test]
    fn every_subject_is_under_the_api_prefix() {
        for s in subjects::ALL {
            assert!(s.starts_with(API_PREFIX));
            assert!(keel_bus::subject::matches(API_SUBJECTS, s));
        }
    }

    #[test]
    fn the_error_body_names_the_code_and_the_message() {
        let body: serde_json::Value =
            serde_json::from_slice(&error_body(ErrorCode::UnknownSku, "unknown sku X")).unwrap();
        let expected = serde_json::json!({
            "error": { "code": "unknown_sku", "message": "unknown sku X" }
        });
        assert_eq!(body, expected);
    }

    #[test]
    fn a_batch_names_its_source_epochs_in_a_header() {
        let header = epochs_header([(3, 7), (120, 1)]);
        assert_eq!(header, "3=7,120=1");
        assert_eq!(source_epochs(&header), Some(vec![(3, 7), (120, 1)]));
        assert_eq!(source_epochs(""), Some(vec![]));
        assert_eq!(source_epochs("3=x"), None);
        assert_eq!(source_epochs("3"), None);
        assert_eq!(source_epochs("-1=2"), None);
    }

    #[test]
    fn messages_sent_are_counted_by_kind() {
        for (subject, kind) in [
            (events::order("web", "o1"), "event"),
            (changelog::subject("7"), "changelog"),
            (command_batch_subject(7), "command_batch"),
            (
                format!("{}{}", forward_prefix(7), subjects::ORDERS_GET),
                "forward",
            ),
            (subjects::ORDERS_PLACE.to_owned(), "request"),
            ("_INBOX.abc.def".to_owned(), "reply"),
            (COMMAND_DEAD_LETTERS.to_owned(), "dead_letter"),
            ("$KV.KEEL_LEASES.p.1".to_owned(), "other"),
        ] {
            assert_eq!(sent::kind(&subject), kind, "{subject}");
            assert!(sent::KINDS.contains(&kind));
        }
    }

    #[test]
    fn wms_confirmations_are_per_location() {
        assert!(keel_bus::subject::matches(
            WMS_CONFIRM_SUBJECTS,
            "keel.v1.wms.dc-east.confirm"
        ));
    }
}
