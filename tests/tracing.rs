//! One order is one trace: a client places an order over NATS and confirms it to delivered,
//! every request carrying the client's `traceparent`; the node's spans, collected by an
//! in-memory OpenTelemetry exporter, then share that one trace id and cover the API ingress,
//! the order actor, each SKU-location actor, the outbox's later delivery of a command (the
//! relay hop, from the trace context stored with the command) and the warehouse-node actor —
//! each span's parent being another span of the trace.
//!
//! The node runs in this test's process (so the exporter sees its spans), on a real
//! `nats-server` of the test's own.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::time::{Duration, Instant};

use clap::Parser;
use fixtures::nats::NatsServer;
use opentelemetry::trace::{SpanId, TraceId};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
use serde_json::{json, Value};
use tracing_subscriber::layer::SubscriberExt;

const DEADLINE: Duration = Duration::from_secs(30);

/// Asks the node over NATS with `context` in the headers; returns the JSON reply.
async fn ask(
    client: &async_nats::Client,
    context: &BTreeMap<String, String>,
    subject: &str,
    body: Value,
) -> Value {
    let mut headers = async_nats::HeaderMap::new();
    for (name, value) in context {
        headers.insert(name.as_str(), value.as_str());
    }
    let deadline = Instant::now() + DEADLINE;
    loop {
        let reply = client
            .request_with_headers(subject.to_owned(), headers.clone(), body.to_string().into())
            .await
            .expect("a reply");
        let status = reply
            .headers
            .as_ref()
            .and_then(|h| h.get("Keel-Status"))
            .map(|v| v.as_str().to_owned());
        let payload: Value = serde_json::from_slice(&reply.payload).expect("JSON reply");
        match status.as_deref() {
            Some("ok" | "created") => return payload,
            // A confirmation before the warehouse node accepted the fulfillment: again shortly.
            _ if payload["error"]["code"] == "invalid_transition" && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            other => panic!("{subject} {body}: {other:?} {payload}"),
        }
    }
}

fn attribute(span: &SpanData, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key.as_str() == key)
        .map(|kv| kv.value.as_str().into_owned())
}

#[test]
fn one_order_over_nats_is_one_trace_across_every_actor_hop() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_subscriber::EnvFilter::new("info"))
        .with(keel_telemetry::otel_layer(&provider, "keel-test"));
    tracing::subscriber::set_global_default(subscriber).expect("the only subscriber");

    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let port = fixtures::free_port();
    let config = keel::config::Config::parse_from([
        "keel",
        "--data-dir",
        dir.path().to_str().unwrap(),
        "--http-addr",
        &format!("127.0.0.1:{port}"),
        "--seed-demo",
        "false",
        "--nats",
        &nats.url(),
    ]);
    std::thread::spawn(move || actix_rt::System::new().block_on(keel::run(config)));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (trace_id, root_id) = runtime.block_on(async {
        let client = async_nats::connect(nats.url()).await.expect("connect");
        let setup = BTreeMap::new();
        // The node answers once it is ready (until then: no responders).
        let deadline = Instant::now() + DEADLINE;
        while client.request("keel.v1.api.locations.list", "{}".into()).await.is_err() {
            assert!(Instant::now() < deadline, "the node never answered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for (id, region) in [("tr-east", "east"), ("tr-west", "west")] {
            ask(&client, &setup, "keel.v1.api.locations.create", json!({"id": id, "name": id, "region": region, "priority": 1})).await;
        }
        ask(&client, &setup, "keel.v1.api.channels.create", json!({"id": "tr-web", "name": "Web", "locations": ["tr-east", "tr-west"]})).await;
        for (sku, location) in [("tr-a", "tr-east"), ("tr-b", "tr-west")] {
            ask(&client, &setup, "keel.v1.api.skus.create", json!({"id": sku, "name": sku})).await;
            ask(&client, &setup, "keel.v1.api.inventory.receipt", json!({"receipt_id": format!("tr-r-{sku}"), "sku": sku, "location": location, "quantity": 5})).await;
        }

        // The client's trace: one root span for the whole order.
        let root = tracing::info_span!("client.order");
        let mut context = BTreeMap::new();
        keel_telemetry::inject(&root, &mut context);
        let order = json!({"id": "tr-o-1", "channel": "tr-web", "ship_to": {"region": "east"},
                           "lines": [{"sku": "tr-a", "quantity": 1}, {"sku": "tr-b", "quantity": 1}]});
        let placed = ask(&client, &context, "keel.v1.api.orders.place", order).await;
        let fulfillments: Vec<String> = placed["fulfillments"].as_array().expect("fulfillments")
            .iter().map(|f| f["id"].as_str().unwrap().to_owned()).collect();
        assert_eq!(fulfillments.len(), 2, "split over both locations: {placed}");
        for id in &fulfillments {
            for step in ["picked", "packed", "shipped", "delivered"] {
                ask(&client, &context, "keel.v1.api.fulfillments.confirm", json!({"id": id, "step": step})).await;
            }
        }
        let order = ask(&client, &context, "keel.v1.api.orders.get", json!({"id": "tr-o-1"})).await;
        assert_eq!(order["status"], "delivered", "{order}");
        use opentelemetry::trace::TraceContextExt;
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let cx = root.context();
        let ids = (cx.span().span_context().trace_id(), cx.span().span_context().span_id());
        drop(root);
        ids
    });

    // Wait for the warehouse actor's spans of every acknowledgement and confirmation (accept +
    // 4 steps, for each of the 2 fulfillments), and for the spans still open around them (a
    // consumer span ends after its acknowledgement).
    let deadline = Instant::now() + DEADLINE;
    let (spans, all_ids) = loop {
        let spans: Vec<SpanData> = exporter
            .get_finished_spans()
            .expect("finished spans")
            .into_iter()
            .filter(|s| s.span_context.trace_id() == trace_id)
            .collect();
        let all_ids: HashSet<SpanId> = spans.iter().map(|s| s.span_context.span_id()).collect();
        let warehouse_execs = spans
            .iter()
            .filter(|s| {
                s.name == "actor.exec" && attribute(s, "kind").as_deref() == Some("warehouse")
            })
            .count();
        let open_parents = spans
            .iter()
            .filter(|s| s.span_context.span_id() != root_id && !all_ids.contains(&s.parent_span_id))
            .count();
        if (warehouse_execs >= 10 && open_parents == 0) || Instant::now() >= deadline {
            break (spans, all_ids);
        }
        std::thread::sleep(Duration::from_millis(50));
    };

    let names: BTreeSet<String> = spans
        .iter()
        .map(|s| match attribute(s, "kind") {
            Some(kind) => format!("{}:{kind}", s.name),
            None => s.name.to_string(),
        })
        .collect();
    for expected in [
        "client.order",
        "api.request",
        "actor.order",
        "actor.exec:sku_location",
        "outbox.deliver",
        "actor.exec:warehouse",
    ] {
        assert!(
            names.contains(expected),
            "no {expected} span in trace {trace_id}; spans: {names:?}"
        );
    }
    let sku_locations: BTreeSet<String> = spans
        .iter()
        .filter(|s| attribute(s, "kind").as_deref() == Some("sku_location"))
        .filter_map(|s| attribute(s, "key"))
        .collect();
    assert_eq!(
        sku_locations.len(),
        2,
        "both SKU-locations' actors are in the trace: {sku_locations:?}"
    );
    for span in &spans {
        let id = span.span_context.span_id();
        if id == root_id {
            continue;
        }
        assert!(
            all_ids.contains(&span.parent_span_id),
            "span {} ({id}) has a parent ({}) outside the trace",
            span.name,
            span.parent_span_id
        );
    }
    // Across the outbox hop (a command delivered later, by the relay, from the trace context
    // stored with it): the delivery span is the child of the actor span that committed the
    // command, and the warehouse actor runs inside it, or inside the consumer span of a
    // warehouse confirmation that came through JetStream.
    let by_id: HashMap<SpanId, &SpanData> = spans
        .iter()
        .map(|s| (s.span_context.span_id(), s))
        .collect();
    for delivery in spans.iter().filter(|s| s.name == "outbox.deliver") {
        let parent = by_id[&delivery.parent_span_id];
        assert!(
            parent.name.starts_with("actor."),
            "outbox.deliver's parent is {}",
            parent.name
        );
    }
    for exec in spans
        .iter()
        .filter(|s| attribute(s, "kind").as_deref() == Some("warehouse"))
    {
        let parent = by_id[&exec.parent_span_id];
        assert!(
            ["outbox.deliver", "wms.consume"].contains(&parent.name.as_ref()),
            "a warehouse actor span's parent is {}",
            parent.name
        );
    }
    assert_ne!(trace_id, TraceId::INVALID);
}
