//! Transport-neutral client of Keel's public API.
//!
//! The scenarios only talk to [`KeelClient`], made by a [`Connector`]. Its one implementation,
//! [`call::ApiClient`], describes each operation once (HTTP route, request-reply subject, body)
//! and runs over a [`call::Transport`]: [`http`] (Keel's HTTP API) or [`nats`] (the
//! `keel.v1.api.*` request-reply subjects, same bodies and error codes).

pub mod call;
pub mod http;
pub mod nats;

use std::fmt;
use std::thread;
use std::time::Duration;

use crate::api::{
    ErrorBody, Ledger, NewChannel, NewLocation, NewSku, Order, PlaceOrder, Position, Receipt, Step,
};

/// The result of one call.
pub type Reply<T> = Result<T, CallError>;

/// Why a call did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// Keel answered with an error body (`{"error":{"code","message"}}`).
    Api {
        /// HTTP status (or the transport's equivalent).
        status: u16,
        /// Stable machine code; `http_{status}` when the body was not a Keel error.
        code: String,
        /// Human message.
        message: String,
    },
    /// No (complete) answer: connection refused/reset, timeout …
    Transport(String),
    /// A success answer whose body could not be decoded.
    Decode(String),
}

impl CallError {
    /// The code errors are counted under: the API code, `transport` or `decode`.
    pub fn code(&self) -> &str {
        match self {
            CallError::Api { code, .. } => code,
            CallError::Transport(_) => "transport",
            CallError::Decode(_) => "decode",
        }
    }

    /// Whether the operation may or may not have happened: a `4xx` is a definite refusal that
    /// changed nothing; anything else leaves the outcome open.
    pub fn is_ambiguous(&self) -> bool {
        match self {
            CallError::Api { status, .. } => *status >= 500,
            CallError::Transport(_) | CallError::Decode(_) => true,
        }
    }

    /// Whether repeating the call may help: transport failures and `5xx`. The contract makes
    /// every write idempotent by id, so the repeat uses the same id and body. An undecodable
    /// reply would only come back the same.
    pub fn is_retryable(&self) -> bool {
        match self {
            CallError::Api { status, .. } => *status >= 500,
            CallError::Transport(_) => true,
            CallError::Decode(_) => false,
        }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Api {
                status,
                code,
                message,
            } => write!(f, "{status} {code}: {message}"),
            CallError::Transport(e) => write!(f, "transport: {e}"),
            CallError::Decode(e) => write!(f, "undecodable reply: {e}"),
        }
    }
}

impl std::error::Error for CallError {}

/// The error for a non-`2xx` reply with `status` and `body`: the code and message of Keel's
/// error body, or `http_{status}` and the raw body when it is not one.
pub fn api_error(status: u16, body: &[u8]) -> CallError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(body) => CallError::Api {
            status,
            code: body.error.code,
            message: body.error.message,
        },
        Err(_) => CallError::Api {
            status,
            code: format!("http_{status}"),
            message: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

/// One connection's worth of Keel's API. Each worker thread owns one.
///
/// Writes answer `()` where the load generator does not need the body, which saves decoding.
pub trait KeelClient: Send {
    /// `GET /readyz`.
    fn ready(&mut self) -> Reply<()>;
    /// `POST /v1/locations`; `true` when newly created, `false` when it already existed.
    fn create_location(&mut self, req: &NewLocation<'_>) -> Reply<bool>;
    /// `POST /v1/channels`; `true` when newly created.
    fn create_channel(&mut self, req: &NewChannel<'_>) -> Reply<bool>;
    /// `POST /v1/skus`; `true` when newly created.
    fn create_sku(&mut self, req: &NewSku<'_>) -> Reply<bool>;
    /// `POST /v1/inventory/receipts`.
    fn receipt(&mut self, req: &Receipt<'_>) -> Reply<()>;
    /// `POST /v1/orders`: answers once the allocation is decided and durable.
    fn place_order(&mut self, req: &PlaceOrder<'_>) -> Reply<Order>;
    /// `POST /v1/orders/{id}/cancel`.
    fn cancel(&mut self, order_id: &str) -> Reply<()>;
    /// `POST /v1/fulfillments/{id}/{step}`.
    fn confirm(&mut self, fulfillment_id: &str, step: Step) -> Reply<()>;
    /// `GET /v1/orders/{id}`.
    fn get_order(&mut self, order_id: &str) -> Reply<Order>;
    /// `GET /v1/inventory/{sku}/{location}` (position, reservations, backorders).
    fn position(&mut self, sku: &str, location: &str) -> Reply<Position>;
    /// `GET /v1/inventory/{sku}/{location}/ledger`.
    fn ledger(&mut self, sku: &str, location: &str) -> Reply<Ledger>;
}

/// Makes clients; shared by all threads.
pub trait Connector: Sync {
    /// A new client with its own connection(s).
    fn connect(&self) -> Box<dyn KeelClient>;
    /// Where the clients go, for the report (e.g. the base URL).
    fn target(&self) -> String;
    /// The transport's name for the report: `http` or `nats`.
    fn transport(&self) -> &'static str;
}

/// How often and how patiently an ambiguous call is repeated.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Total attempts, at least 1.
    pub attempts: u32,
    /// Pause before the second attempt; doubled for each further one.
    pub backoff: Duration,
    /// Longest pause between two attempts.
    pub max_backoff: Duration,
}

impl RetryPolicy {
    /// During the measured run: quick, so a worker does not stall.
    pub const LIVE: RetryPolicy = RetryPolicy {
        attempts: 3,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::MAX,
    };
    /// During a `chaos` run: a worker keeps repeating an ambiguous write (same id) through a
    /// node or NATS restart, about half a minute of pauses, instead of moving on.
    pub const RIDE_OUT: RetryPolicy = RetryPolicy {
        attempts: 32,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::from_secs(1),
    };
    /// A single attempt (the caller does its own pacing).
    pub const ONCE: RetryPolicy = RetryPolicy {
        attempts: 1,
        backoff: Duration::ZERO,
        max_backoff: Duration::ZERO,
    };
    /// Setup and verification reads: patient.
    pub const PATIENT: RetryPolicy = RetryPolicy {
        attempts: 5,
        backoff: Duration::from_millis(50),
        max_backoff: Duration::MAX,
    };
}

/// Result of a call after retries.
#[derive(Debug)]
pub enum Outcome<T> {
    /// Succeeded.
    Done(T),
    /// Definitely refused (4xx): nothing changed.
    Rejected(CallError),
    /// Still ambiguous after the attempts: it may or may not have happened.
    Unknown(CallError),
}

impl<T> Outcome<T> {
    /// Collapses the outcome into a `Result`, for callers that treat every failure alike.
    pub fn into_result(self) -> Result<T, CallError> {
        match self {
            Outcome::Done(v) => Ok(v),
            Outcome::Rejected(e) | Outcome::Unknown(e) => Err(e),
        }
    }
}

/// Runs `call` until it succeeds, fails in a way retrying cannot help, or `policy` is
/// exhausted. Every failed attempt is reported to `on_error` (for the error counters). Safe
/// because every write is idempotent by id.
pub fn with_retry<C: ?Sized, T>(
    client: &mut C,
    policy: RetryPolicy,
    mut on_error: impl FnMut(&CallError),
    mut call: impl FnMut(&mut C) -> Reply<T>,
) -> Outcome<T> {
    let mut pause = policy.backoff;
    let mut attempt = 1;
    loop {
        match call(client) {
            Ok(v) => return Outcome::Done(v),
            Err(e) => {
                on_error(&e);
                if !e.is_ambiguous() {
                    return Outcome::Rejected(e);
                }
                if !e.is_retryable() || attempt >= policy.attempts {
                    return Outcome::Unknown(e);
                }
            }
        }
        attempt += 1;
        thread::sleep(pause);
        pause = pause.saturating_mul(2).min(policy.max_backoff);
    }
}

/// Applies `f` to every item on `threads` threads (contiguous chunks, each thread with its own
/// client) and returns the results in item order.
pub fn map_parallel<T, R, F>(connector: &dyn Connector, threads: usize, items: &[T], f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&mut dyn KeelClient, &T) -> R + Sync,
{
    if items.is_empty() {
        return Vec::new();
    }
    let chunk = items.len().div_ceil(threads.max(1));
    thread::scope(|s| {
        let handles: Vec<_> = items
            .chunks(chunk)
            .map(|part| {
                let f = &f;
                s.spawn(move || {
                    let mut client = connector.connect();
                    part.iter()
                        .map(|item| f(client.as_mut(), item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("worker thread panicked"))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(status: u16, code: &str) -> CallError {
        CallError::Api {
            status,
            code: code.into(),
            message: String::new(),
        }
    }

    #[test]
    fn ambiguity_follows_the_status_class() {
        assert!(api(503, "unavailable").is_ambiguous());
        assert!(api(500, "internal").is_ambiguous());
        assert!(!api(409, "conflict").is_ambiguous());
        assert!(CallError::Transport("reset".into()).is_ambiguous());
        assert!(CallError::Transport("reset".into()).is_retryable());
        assert!(CallError::Decode("eof".into()).is_ambiguous());
        assert!(!CallError::Decode("eof".into()).is_retryable());
        assert_eq!(CallError::Transport("x".into()).code(), "transport");
        assert_eq!(api(404, "unknown_sku").code(), "unknown_sku");
    }

    #[test]
    fn error_bodies_give_the_code_and_others_the_status() {
        let body = br#"{"error":{"code":"unknown_sku","message":"no SKU X"}}"#;
        assert_eq!(
            api_error(404, body),
            CallError::Api {
                status: 404,
                code: "unknown_sku".into(),
                message: "no SKU X".into(),
            }
        );
        assert_eq!(
            api_error(502, b"bad gateway"),
            CallError::Api {
                status: 502,
                code: "http_502".into(),
                message: "bad gateway".into(),
            }
        );
    }

    #[test]
    fn retries_ambiguous_failures_and_stops_on_refusals() {
        let policy = RetryPolicy {
            attempts: 3,
            backoff: Duration::ZERO,
            max_backoff: Duration::ZERO,
        };
        let (mut calls, mut errors) = (0, 0);
        let out = with_retry(
            &mut (),
            policy,
            |_| errors += 1,
            |_| {
                calls += 1;
                if calls < 3 {
                    Err(api(503, "unavailable"))
                } else {
                    Ok(7)
                }
            },
        );
        assert!(matches!(out, Outcome::Done(7)));
        assert_eq!((calls, errors), (3, 2));

        let mut calls = 0;
        let out: Outcome<()> = with_retry(
            &mut (),
            policy,
            |_| {},
            |_| {
                calls += 1;
                Err(api(409, "conflict"))
            },
        );
        assert!(matches!(out, Outcome::Rejected(_)));
        assert_eq!(calls, 1);

        let out: Outcome<()> = with_retry(
            &mut (),
            policy,
            |_| {},
            |_| Err(CallError::Transport("refused".into())),
        );
        assert!(matches!(out, Outcome::Unknown(_)));
    }
}
