//! Traces do not depend on the log level: a node on NATS that logs only warnings
//! (`RUST_LOG=warn`, what production sets) still exports its spans over OTLP/HTTP, and every
//! export names the node that sent it (`service.instance.id`), so an SRE sees which node did
//! what. The collector is a minimal HTTP server of the test's own that keeps each request.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use fixtures::{Keel, Transport};
use serde_json::json;

/// One request the collector received: its path and body (OTLP protobuf).
type Export = (String, Vec<u8>);

/// Accepts OTLP/HTTP exports on a free port and answers each `200`.
fn start_collector() -> (String, Arc<Mutex<Vec<Export>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the collector");
    let url = format!("http://{}", listener.local_addr().expect("its address"));
    let received = Arc::new(Mutex::new(Vec::new()));
    let keep = Arc::clone(&received);
    std::thread::spawn(move || {
        for connection in listener.incoming().flatten() {
            let keep = Arc::clone(&keep);
            std::thread::spawn(move || serve(connection, &keep));
        }
    });
    (url, received)
}

/// Serves one connection's requests (the exporter keeps its connection alive).
fn serve(connection: TcpStream, received: &Mutex<Vec<Export>>) {
    let mut writer = connection.try_clone().expect("clone the connection");
    let mut reader = BufReader::new(connection);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        let mut length = 0;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        received.lock().expect("not poisoned").push((path, body));
        let answered = writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        if answered.is_err() {
            return;
        }
    }
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn a_node_logging_only_warnings_still_exports_its_spans_named_by_its_node_id() {
    let (collector, received) = start_collector();
    let keel = Keel::start_with_env(
        Transport::Nats,
        fixtures::temp_dir(),
        &["--node-id", "trace-node-7"],
        &[
            ("RUST_LOG", "warn"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", &collector),
            ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ],
    );
    keel.create_location("TR-L1", "east", 1);
    keel.create_channel("web", &["TR-L1"]);
    keel.create_sku("TR-SKU");
    assert_eq!(keel.post_receipt("tr-r1", "TR-SKU", "TR-L1", 5).0, 201);
    let (status, body) = keel.post(
        "/v1/orders",
        &json!({"id": "tr-o1", "channel": "web",
                "lines": [{"sku": "TR-SKU", "quantity": 1}],
                "ship_to": {"region": "east"}}),
    );
    assert_eq!(status, 201, "{body}");

    fixtures::eventually_within(
        Duration::from_secs(30),
        "the node's order spans reach the collector",
        || {
            let received = received.lock().expect("not poisoned");
            let found = received.iter().any(|(path, body)| {
                path == "/v1/traces"
                    && contains(body, "service.instance.id")
                    && contains(body, "trace-node-7")
                    && contains(body, "actor.order")
            });
            let paths: Vec<&str> = received.iter().map(|(p, _)| p.as_str()).collect();
            found
                .then_some(())
                .ok_or_else(|| format!("received {paths:?}"))
        },
    );
    let log = std::fs::read_to_string(keel.log_path()).expect("the node's log");
    assert!(
        !log.contains(" INFO "),
        "RUST_LOG=warn still wrote info lines:\n{log}"
    );
}
