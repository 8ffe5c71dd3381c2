//! [`KeelClient`] over Keel's NATS request-reply API (`keel.v1.api.*`, docs/subjects.md).
//!
//! The workers are plain threads and the client trait is blocking, so a [`NatsConnector`]
//! owns one small tokio runtime and one `async_nats::Client` (one connection); each worker's
//! [`NatsClient`] shares both and blocks on its own request. The requests of all workers are
//! multiplexed on the connection without a lock between them.
//!
//! A reply says how it went in its headers: `Keel-Status: ok | created | error` and, for an
//! error, `Keel-Error: <code>` with the body `{"error":{"code","message"}}`. The client reports
//! the HTTP status the gateway would have answered for it (same mapping as the gateway), so the
//! scenarios and the error counters see the same thing over both transports. No reply (timeout,
//! no responders, a lost connection) is [`CallError::Transport`].

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_nats::{HeaderMap, Message, RequestError, RequestErrorKind};
use keel_protocol::{ErrorCode, ERROR_HEADER, STATUS_HEADER};
use tokio::runtime::Runtime;

use super::call::{ApiClient, Call, Transport};
use super::{api_error, CallError, Connector, KeelClient, Reply};

/// Worker threads of the shared runtime: it only moves bytes between the socket and the
/// blocked callers.
const RUNTIME_THREADS: usize = 2;

/// Makes [`NatsClient`]s that share one connection to one NATS server.
pub struct NatsConnector {
    runtime: Arc<Runtime>,
    client: async_nats::Client,
    url: String,
}

impl NatsConnector {
    /// Connects to `url` (e.g. `nats://127.0.0.1:4222`); `timeout` bounds each request.
    pub fn connect(url: &str, timeout: Duration) -> anyhow::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(RUNTIME_THREADS)
            .thread_name("keel-load-nats")
            .enable_all()
            .build()
            .context("starting the NATS client runtime")?;
        let client = runtime
            .block_on(
                async_nats::ConnectOptions::new()
                    .name("keel-load")
                    .request_timeout(Some(timeout))
                    .connect(url),
            )
            .with_context(|| format!("connecting to NATS at {url}"))?;
        Ok(NatsConnector {
            runtime: Arc::new(runtime),
            client,
            url: url.to_owned(),
        })
    }

    /// The runtime the clients run on (the raw NATS measurements use it too).
    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

impl Connector for NatsConnector {
    fn connect(&self) -> Box<dyn KeelClient> {
        Box::new(ApiClient::new(NatsClient {
            runtime: Arc::clone(&self.runtime),
            client: self.client.clone(),
            reply: None,
        }))
    }

    fn target(&self) -> String {
        self.url.clone()
    }

    fn transport(&self) -> &'static str {
        "nats"
    }
}

/// The NATS [`Transport`]: one worker's handle on the shared connection.
pub struct NatsClient {
    runtime: Arc<Runtime>,
    client: async_nats::Client,
    reply: Option<Message>,
}

impl Transport for NatsClient {
    fn call(&mut self, call: &Call<'_>) -> Reply<u16> {
        let mut payload = Vec::with_capacity(256);
        call.write_body(&mut payload)?;
        let request = self.client.request(call.subject, payload.into());
        let reply = self
            .runtime
            .block_on(request)
            .map_err(|e| no_reply(call.subject, &e))?;
        let reply = decode_reply(reply)?;
        self.reply = Some(reply.1);
        Ok(reply.0)
    }

    fn reply(&self) -> &[u8] {
        self.reply.as_ref().map_or(&[], |m| &m.payload)
    }
}

/// A request to `subject` that got no reply: timed out, no responders (no node serves), the
/// connection lost … The outcome is open, as for a dropped HTTP connection.
fn no_reply(subject: &str, e: &RequestError) -> CallError {
    match e.kind() {
        // Their source only repeats them ("deadline has elapsed", "no responders").
        kind @ (RequestErrorKind::TimedOut | RequestErrorKind::NoResponders) => {
            CallError::Transport(format!("{subject}: {kind}"))
        }
        _ => CallError::Transport(format!("{subject}: {e}")),
    }
}

/// A reply as the HTTP client would have seen it: its `2xx` status and the message, or the
/// [`CallError::Api`] of its error.
fn decode_reply(reply: Message) -> Reply<(u16, Message)> {
    let status = http_status(reply.headers.as_ref());
    if (200..300).contains(&status) {
        Ok((status, reply))
    } else {
        Err(api_error(status, &reply.payload))
    }
}

/// The HTTP status the gateway answers for a reply with `headers`: `ok` 200, `created` 201, an
/// error the status of its code; an unknown code or no status at all is an internal error.
fn http_status(headers: Option<&HeaderMap>) -> u16 {
    let header = |name: &str| headers.and_then(|h| h.get(name)).map(|v| v.as_str());
    match header(STATUS_HEADER) {
        Some("ok") => 200,
        Some("created") => 201,
        _ => header(ERROR_HEADER)
            .and_then(ErrorCode::parse)
            .unwrap_or(ErrorCode::Internal)
            .http_status(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(headers: &[(&str, &str)], body: &str) -> Message {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(*name, *value);
        }
        Message {
            subject: "_INBOX.x".into(),
            reply: None,
            payload: body.as_bytes().to_vec().into(),
            headers: (!headers.is_empty()).then_some(map),
            status: None,
            description: None,
            length: body.len(),
        }
    }

    fn error(code: &str, message: &str) -> Message {
        let body = format!(r#"{{"error":{{"code":"{code}","message":"{message}"}}}}"#);
        reply(&[("Keel-Status", "error"), ("Keel-Error", code)], &body)
    }

    #[test]
    fn successes_carry_the_status_of_their_reply() {
        let (status, msg) = decode_reply(reply(&[("Keel-Status", "ok")], "{}")).unwrap();
        assert_eq!((status, &msg.payload[..]), (200, &b"{}"[..]));
        let (status, _) = decode_reply(reply(&[("Keel-Status", "created")], "{}")).unwrap();
        assert_eq!(status, 201);
    }

    #[test]
    fn errors_carry_the_status_of_their_code() {
        let cases = [
            ("unknown_sku", 404, false),
            ("malformed_request", 400, false),
            ("conflict", 409, false),
            ("insufficient_stock", 409, false),
            ("payload_too_large", 413, false),
            ("unavailable", 503, true),
            ("internal", 500, true),
        ];
        for (code, status, retryable) in cases {
            let err = decode_reply(error(code, "why")).unwrap_err();
            assert_eq!(
                err,
                CallError::Api {
                    status,
                    code: code.into(),
                    message: "why".into(),
                },
                "{code}"
            );
            assert_eq!(err.is_retryable(), retryable, "{code}");
        }
    }

    #[test]
    fn a_reply_without_a_status_or_with_an_unknown_code_is_internal() {
        let err = decode_reply(reply(&[], "{}")).unwrap_err();
        assert_eq!(err.code(), "http_500");
        assert!(err.is_retryable());
        let unknown = reply(
            &[("Keel-Status", "error"), ("Keel-Error", "from_the_future")],
            r#"{"error":{"code":"from_the_future","message":"m"}}"#,
        );
        let err = decode_reply(unknown).unwrap_err();
        assert!(
            matches!(&err, CallError::Api { status: 500, code, .. } if code == "from_the_future")
        );
    }

    #[test]
    fn no_reply_is_an_ambiguous_transport_error() {
        let cases = [
            (RequestErrorKind::TimedOut, "s: request timed out"),
            (RequestErrorKind::NoResponders, "s: no responders"),
            (RequestErrorKind::Other, "s: request failed: broken pipe"),
        ];
        for (kind, text) in cases {
            let err = no_reply("s", &RequestError::with_source(kind, "broken pipe"));
            assert_eq!(err, CallError::Transport(text.into()));
            assert!(err.is_ambiguous() && err.is_retryable());
        }
    }

    #[test]
    fn no_server_is_a_setup_error() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let err = NatsConnector::connect("nats://127.0.0.1:1", Duration::from_secs(1))
            .err()
            .expect("connected to nothing");
        assert!(format!("{err:#}").contains("connecting to NATS"), "{err:#}");
    }
}
