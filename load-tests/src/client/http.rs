//! [`KeelClient`] over Keel's HTTP API with a blocking `ureq` agent.
//!
//! One [`HttpClient`] per thread: its agent keeps the connection alive between calls, and the
//! URL, request and response buffers are reused, so a call allocates little beyond what the
//! decoded reply itself needs.

use std::io::Read;
use std::net::ToSocketAddrs;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use ureq::Agent;

use super::{CallError, Connector, KeelClient, Reply};
use crate::api::{
    ErrorBody, Ledger, NewChannel, NewLocation, NewSku, Order, Page, PlaceOrder, Position, Receipt,
    Step,
};

/// Makes [`HttpClient`]s for one base URL.
#[derive(Debug, Clone)]
pub struct HttpConnector {
    base: String,
    timeout: Duration,
}

impl HttpConnector {
    /// `base` is e.g. `http://127.0.0.1:8080` (a trailing `/` is ignored); `timeout` bounds each
    /// phase of a call (connect, send, receive).
    ///
    /// A host name is resolved once, here, and requests go to the address: ureq would otherwise
    /// resolve it again for every request.
    pub fn new(base: &str, timeout: Duration) -> Self {
        HttpConnector {
            base: resolve_once(base.trim_end_matches('/')),
            timeout,
        }
    }
}

impl Connector for HttpConnector {
    fn connect(&self) -> Box<dyn KeelClient> {
        Box::new(HttpClient::new(&self.base, self.timeout))
    }

    fn target(&self) -> String {
        self.base.clone()
    }
}

/// `http://host:port/path` with `host:port` replaced by its first resolved address; `base`
/// unchanged when it cannot be resolved (the first request then reports the error).
fn resolve_once(base: &str) -> String {
    let Some(rest) = base.strip_prefix("http://") else {
        return base.to_owned();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let with_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    match with_port.to_socket_addrs().ok().and_then(|mut a| a.next()) {
        Some(addr) => format!("http://{addr}{path}"),
        None => base.to_owned(),
    }
}

/// A keep-alive HTTP client of Keel.
pub struct HttpClient {
    agent: Agent,
    base_len: usize,
    url: String,
    request: Vec<u8>,
    response: Vec<u8>,
}

/// Whether a call carries a JSON body.
enum Method {
    Get,
    Post { json: bool },
}

impl HttpClient {
    /// A client with its own agent (connection pool) for `base`.
    pub fn new(base: &str, timeout: Duration) -> Self {
        // Phase timeouts rather than a global one: with a global (or per-call) timeout ureq
        // resolves the host on a freshly spawned thread for every request, which costs more
        // than the request itself on loopback.
        let t = Some(timeout);
        let agent: Agent = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(t)
            .timeout_send_request(t)
            .timeout_send_body(t)
            .timeout_recv_response(t)
            .timeout_recv_body(t)
            .max_idle_connections_per_host(4)
            .build()
            .into();
        let base = base.trim_end_matches('/');
        let mut url = String::with_capacity(base.len() + 128);
        url.push_str(base);
        HttpClient {
            agent,
            base_len: base.len(),
            url,
            request: Vec::with_capacity(1024),
            response: Vec::with_capacity(4096),
        }
    }

    /// Sets the URL to the base followed by `segments`, each preceded by `/`. Identifiers are
    /// `[A-Za-z0-9_-]` by contract, so no escaping is needed.
    fn path(&mut self, segments: &[&str]) {
        self.url.truncate(self.base_len);
        for s in segments {
            self.url.push('/');
            self.url.push_str(s);
        }
    }

    /// Serializes `body` into the request buffer.
    fn body<T: Serialize>(&mut self, body: &T) -> Reply<()> {
        self.request.clear();
        serde_json::to_writer(&mut self.request, body).map_err(|e| CallError::Decode(e.to_string()))
    }

    /// Performs the call on the current URL and reads the whole reply into the response buffer
    /// (which also hands the connection back to the pool). Answers the 2xx status; other
    /// replies become [`CallError::Api`].
    fn exchange(&mut self, method: Method) -> Reply<u16> {
        let sent = match method {
            Method::Get => self.agent.get(self.url.as_str()).call(),
            Method::Post { json: true } => self
                .agent
                .post(self.url.as_str())
                .header("content-type", "application/json")
                .send(self.request.as_slice()),
            Method::Post { json: false } => self.agent.post(self.url.as_str()).send_empty(),
        };
        let mut resp = sent.map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        self.response.clear();
        resp.body_mut()
            .as_reader()
            .read_to_end(&mut self.response)
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if (200..300).contains(&status) {
            return Ok(status);
        }
        Err(match serde_json::from_slice::<ErrorBody>(&self.response) {
            Ok(body) => CallError::Api {
                status,
                code: body.error.code,
                message: body.error.message,
            },
            Err(_) => CallError::Api {
                status,
                code: format!("http_{status}"),
                message: String::from_utf8_lossy(&self.response).into_owned(),
            },
        })
    }

    /// Decodes the response buffer.
    fn decode<T: DeserializeOwned>(&self) -> Reply<T> {
        serde_json::from_slice(&self.response).map_err(|e| CallError::Decode(e.to_string()))
    }

    fn post_json<T: Serialize>(&mut self, segments: &[&str], body: &T) -> Reply<u16> {
        self.path(segments);
        self.body(body)?;
        self.exchange(Method::Post { json: true })
    }

    fn get<T: DeserializeOwned>(&mut self, segments: &[&str]) -> Reply<T> {
        self.path(segments);
        self.exchange(Method::Get)?;
        self.decode()
    }

    /// Reads a paged list from the page at `next` (the `cursor` query parameter) to the last
    /// page, appending its entries to `out`.
    fn follow<T: DeserializeOwned, N: DeserializeOwned + std::fmt::Display>(
        &mut self,
        segments: &[&str],
        cursor: &str,
        mut next: Option<N>,
        out: &mut Vec<T>,
    ) -> Reply<()> {
        while let Some(at) = next.take() {
            self.path(segments);
            self.url.push_str(&format!("?{cursor}={at}&limit={PAGE}"));
            self.exchange(Method::Get)?;
            let page: Page<T, N> = self.decode()?;
            out.extend(page.entries);
            next = page.next;
        }
        Ok(())
    }
}

/// Entries fetched per request of a paged list (the server's default page).
const PAGE: u32 = 1_000;

impl KeelClient for HttpClient {
    fn ready(&mut self) -> Reply<()> {
        self.path(&["readyz"]);
        self.exchange(Method::Get).map(drop)
    }

    fn create_location(&mut self, req: &NewLocation<'_>) -> Reply<bool> {
        Ok(self.post_json(&["v1", "locations"], req)? == 201)
    }

    fn create_channel(&mut self, req: &NewChannel<'_>) -> Reply<bool> {
        Ok(self.post_json(&["v1", "channels"], req)? == 201)
    }

    fn create_sku(&mut self, req: &NewSku<'_>) -> Reply<bool> {
        Ok(self.post_json(&["v1", "skus"], req)? == 201)
    }

    fn receipt(&mut self, req: &Receipt<'_>) -> Reply<()> {
        self.post_json(&["v1", "inventory", "receipts"], req)
            .map(drop)
    }

    fn place_order(&mut self, req: &PlaceOrder<'_>) -> Reply<Order> {
        self.post_json(&["v1", "orders"], req)?;
        self.decode()
    }

    fn cancel(&mut self, order_id: &str) -> Reply<()> {
        self.path(&["v1", "orders", order_id, "cancel"]);
        self.exchange(Method::Post { json: false }).map(drop)
    }

    fn confirm(&mut self, fulfillment_id: &str, step: Step) -> Reply<()> {
        self.path(&["v1", "fulfillments", fulfillment_id, step.as_str()]);
        self.exchange(Method::Post { json: false }).map(drop)
    }

    fn get_order(&mut self, order_id: &str) -> Reply<Order> {
        self.get(&["v1", "orders", order_id])
    }

    fn position(&mut self, sku: &str, location: &str) -> Reply<Position> {
        let mut position: Position = self.get(&["v1", "inventory", sku, location])?;
        // A busy position shows its first reservations and backorders only: follow the pages.
        let segments = ["v1", "inventory", sku, location, "reservations"];
        let next = position.reservations_next.take();
        self.follow(&segments, "after", next, &mut position.reservations)?;
        let segments = ["v1", "inventory", sku, location, "backorders"];
        let next = position.backorders_next.take();
        self.follow(&segments, "after", next, &mut position.backorders)?;
        Ok(position)
    }

    fn ledger(&mut self, sku: &str, location: &str) -> Reply<Ledger> {
        let mut entries = Vec::new();
        let segments = ["v1", "inventory", sku, location, "ledger"];
        self.follow(&segments, "from", Some(0u64), &mut entries)?;
        Ok(Ledger {
            entries,
            next: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_on_the_base() {
        let mut c = HttpClient::new("http://127.0.0.1:1/", Duration::from_secs(1));
        c.path(&["v1", "inventory", "S-1", "L-1", "ledger"]);
        assert_eq!(c.url, "http://127.0.0.1:1/v1/inventory/S-1/L-1/ledger");
        c.path(&["readyz"]);
        assert_eq!(c.url, "http://127.0.0.1:1/readyz");
    }

    #[test]
    fn host_names_are_resolved_once() {
        assert_eq!(
            resolve_once("http://127.0.0.1:8080"),
            "http://127.0.0.1:8080"
        );
        let local = resolve_once("http://localhost:8080/x");
        assert!(
            ["http://127.0.0.1:8080/x", "http://[::1]:8080/x"].contains(&local.as_str()),
            "{local}"
        );
        assert_eq!(resolve_once("http://[::1]:9"), "http://[::1]:9");
    }

    #[test]
    fn unreachable_server_is_a_transport_error() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let mut c = HttpClient::new("http://127.0.0.1:1", Duration::from_secs(2));
        let err = c.ready().unwrap_err();
        assert_eq!(err.code(), "transport");
        assert!(err.is_ambiguous());
    }
}
