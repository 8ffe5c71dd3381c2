//! [`KeelClient`] over Keel's HTTP API with a blocking `ureq` agent.
//!
//! One [`HttpClient`] per thread: its agent keeps the connection alive between calls, and the
//! URL and response buffers are reused, so a call allocates little beyond what the decoded
//! reply itself needs.

use std::io::Read;
use std::net::ToSocketAddrs;
use std::time::Duration;

use ureq::Agent;

use super::call::{ApiClient, Call, Method, Transport};
use super::{api_error, CallError, Connector, KeelClient, Reply};

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
        Box::new(ApiClient::new(HttpClient::new(&self.base, self.timeout)))
    }

    fn target(&self) -> String {
        self.base.clone()
    }

    fn transport(&self) -> &'static str {
        "http"
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

/// The HTTP [`Transport`]: a keep-alive client of Keel's HTTP API.
pub struct HttpClient {
    agent: Agent,
    base_len: usize,
    url: String,
    response: Vec<u8>,
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
            response: Vec::with_capacity(4096),
        }
    }

    /// Sets the URL to the base followed by the call's route.
    fn set_url(&mut self, call: &Call<'_>) {
        self.url.truncate(self.base_len);
        call.write_path(&mut self.url);
    }
}

impl Transport for HttpClient {
    /// Performs the call and reads the whole reply into the response buffer (which also hands
    /// the connection back to the pool).
    fn call(&mut self, call: &Call<'_>) -> Reply<u16> {
        self.set_url(call);
        let url = self.url.as_str();
        let sent = match (call.method, call.body) {
            (Method::Get, _) => self.agent.get(url).call(),
            (Method::Post, Some(body)) => self
                .agent
                .post(url)
                .header("content-type", "application/json")
                .send(body),
            (Method::Post, None) => self.agent.post(url).send_empty(),
        };
        let mut resp = sent.map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        self.response.clear();
        resp.body_mut()
            .as_reader()
            .read_to_end(&mut self.response)
            .map_err(|e| CallError::Transport(e.to_string()))?;
        if (200..300).contains(&status) {
            Ok(status)
        } else {
            Err(api_error(status, &self.response))
        }
    }

    fn reply(&self) -> &[u8] {
        &self.response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::call::Param;

    #[test]
    fn urls_are_built_on_the_base() {
        let mut c = HttpClient::new("http://127.0.0.1:1/", Duration::from_secs(1));
        let params = [
            ("sku", Param::Str("S-1")),
            ("location", Param::Str("L-1")),
            ("from", Param::Num(5)),
        ];
        c.set_url(&Call {
            method: Method::Get,
            route: "/v1/inventory/{sku}/{location}/ledger",
            subject: keel_protocol::subjects::INVENTORY_LEDGER,
            params: &params,
            body: None,
        });
        assert_eq!(
            c.url,
            "http://127.0.0.1:1/v1/inventory/S-1/L-1/ledger?from=5"
        );
        c.set_url(&Call {
            method: Method::Get,
            route: "/readyz",
            subject: keel_protocol::subjects::LOCATIONS_LIST,
            params: &[],
            body: None,
        });
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
        let mut c = HttpConnector::new("http://127.0.0.1:1", Duration::from_secs(2)).connect();
        let err = c.ready().unwrap_err();
        assert_eq!(err.code(), "transport");
        assert!(err.is_ambiguous());
    }
}
