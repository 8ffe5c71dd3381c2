//! When a started process counts as ready.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::time::Duration;

use crate::port::LOOPBACK;

/// Upper bound for one check, so a hung process fails its deadline instead of a probe hanging.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// What must hold, on the process's port, before a start counts as done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `GET http://127.0.0.1:{port}{path}` answers 200 (e.g. `/readyz`).
    Http(String),
    /// The server on the port sends a NATS `INFO` greeting.
    NatsGreeting,
}

impl Probe {
    /// [`Probe::Http`] of `path`.
    pub fn http(path: &str) -> Probe {
        Probe::Http(path.to_owned())
    }

    /// Checks once whether the process on `port` is ready; the error says what answered
    /// instead.
    pub fn check(&self, port: u16) -> Result<(), String> {
        match self {
            Probe::Http(path) => http_ok(port, path),
            Probe::NatsGreeting => greets(port),
        }
    }
}

fn http_ok(port: u16, path: &str) -> Result<(), String> {
    // A fresh agent every time: pooled connections to a killed process are useless.
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(CHECK_TIMEOUT))
        .build()
        .into();
    let mut reply = agent
        .get(format!("http://{LOOPBACK}:{port}{path}"))
        .call()
        .map_err(|e| format!("{path}: {e}"))?;
    match reply.status().as_u16() {
        200 => Ok(()),
        status => {
            let body = reply.body_mut().read_to_string().unwrap_or_default();
            Err(format!("{path} answered {status} {body}"))
        }
    }
}

fn greets(port: u16) -> Result<(), String> {
    let stream = TcpStream::connect((LOOPBACK, port)).map_err(|e| format!("connect: {e}"))?;
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    match BufReader::new(stream).read_line(&mut line) {
        Ok(_) if line.starts_with("INFO") => Ok(()),
        Ok(_) => Err(format!("greeted with {line:?}, not INFO")),
        Err(e) => Err(format!("no greeting: {e}")),
    }
}
