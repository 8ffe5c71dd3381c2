//! Events on NATS: a subscriber of the events stream sees every status change of 100 orders
//! placed and confirmed concurrently, in order per order, from `received` to `delivered`, and
//! every fulfillment's steps in order.
//!
//! The subscriber is a plain JetStream consumer of `keel.v1.evt.>` (as a channel adapter would
//! be): it replays the stream from its start, so it misses nothing published before it began.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::thread;
use std::time::{Duration, Instant};

use fixtures::nats::replay;
use fixtures::{expect_2xx, list, order_status_rank, text, Keel, Network};
use futures::StreamExt;
use serde_json::Value;

const ORDERS: usize = 100;
const CLIENTS: usize = 10;
const DEADLINE: Duration = Duration::from_secs(60);

/// Reads the events stream from its start until `done` holds for what was read and the stream
/// is quiet (or the deadline passes); returns the events by subject, in stream order.
fn read_events(
    url: &str,
    done: impl Fn(&BTreeMap<String, Vec<Value>>) -> bool,
) -> BTreeMap<String, Vec<Value>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let jetstream = async_nats::jetstream::new(client);
        let mut messages = replay(&jetstream, "KEEL_EVENTS", "keel.v1.evt.>").await;
        let mut events: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        // Until `done`, then on until the stream is quiet: the events a change publishes
        // after the one `done` looks for (e.g. its fulfillment's) are read too.
        loop {
            let wait_until = if done(&events) {
                tokio::time::Instant::now() + Duration::from_millis(500)
            } else {
                deadline
            };
            let next = tokio::time::timeout_at(wait_until, messages.next()).await;
            let Ok(Some(Ok(message))) = next else {
                break;
            };
            let event: Value = serde_json::from_slice(&message.payload).expect("JSON event");
            events
                .entry(message.subject.to_string())
                .or_default()
                .push(event);
        }
        events
    })
}

#[test]
fn every_status_change_of_concurrent_orders_arrives_in_order() {
    let mut keel = Keel::start_on_nats();
    let url = keel.nats().url();
    let net = Network::two_dcs(&keel, "ev");
    let skus: Vec<String> = (0..3).map(|i| format!("ev-sku-{i}")).collect();
    for sku in &skus {
        keel.create_sku(sku);
        keel.receive(&format!("ev-r-{sku}-e"), sku, &net.east, 150);
        keel.receive(&format!("ev-r-{sku}-w"), sku, &net.west, 150);
    }
    let ids: Vec<String> = (0..ORDERS).map(|i| format!("ev-o-{i}")).collect();

    let started = Instant::now();
    let subscriber = {
        let (url, ids) = (url.clone(), ids.clone());
        thread::spawn(move || {
            read_events(&url, |events| {
                ids.iter().all(|id| {
                    events
                        .get(&format!("keel.v1.evt.order.ev-web.{id}"))
                        .and_then(|e| e.last())
                        .is_some_and(|e| e["status"] == "delivered")
                })
            })
        })
    };
    thread::scope(|scope| {
        for client in 0..CLIENTS {
            let (api, net, skus, ids) = (keel.api(), &net, &skus, &ids);
            scope.spawn(move || {
                for id in ids.iter().skip(client).step_by(CLIENTS) {
                    let n: usize = id.trim_start_matches("ev-o-").parse().unwrap();
                    // 1–3 lines; a west ship-to for some, so orders split and spread.
                    let lines: Vec<(&str, i64)> = (0..=n % 3)
                        .map(|l| (skus[(n + l) % 3].as_str(), 1 + (n % 2) as i64))
                        .collect();
                    let region = if n.is_multiple_of(4) { "west" } else { "east" };
                    expect_2xx(
                        "place order",
                        api.place_order(id, &net.channel, &lines, region),
                    );
                    let order = api.wait_order_status(id, "released");
                    for f in list(&order, "fulfillments") {
                        api.advance(text(f, "id"), &["picked", "packed", "shipped", "delivered"]);
                    }
                }
            });
        }
    });
    let events = subscriber.join().expect("the subscriber panicked");
    eprintln!(
        "{ORDERS} orders placed and delivered, events read, in {:?}",
        started.elapsed()
    );

    for id in &ids {
        let subject = format!("keel.v1.evt.order.ev-web.{id}");
        let seen = events
            .get(&subject)
            .unwrap_or_else(|| panic!("no events for {id}"));
        let statuses: Vec<&str> = seen.iter().map(|e| text(e, "status")).collect();
        assert_eq!(statuses.first(), Some(&"received"), "{id}: {statuses:?}");
        assert_eq!(statuses.last(), Some(&"delivered"), "{id}: {statuses:?}");
        for step in ["released", "picking", "packed", "shipped"] {
            assert!(
                statuses.contains(&step),
                "{id} never showed {step}: {statuses:?}"
            );
        }
        for pair in seen.windows(2) {
            assert!(
                pair[1]["version"].as_u64() > pair[0]["version"].as_u64(),
                "{id}: versions out of order: {} then {}",
                pair[0],
                pair[1]
            );
            assert!(
                order_status_rank(text(&pair[1], "status"))
                    >= order_status_rank(text(&pair[0], "status")),
                "{id}: status went back: {statuses:?}"
            );
        }
    }
    let steps = ["released", "picked", "packed", "shipped", "delivered"];
    let fulfillments: Vec<(&String, &Vec<Value>)> = events
        .iter()
        .filter(|(subject, _)| subject.starts_with("keel.v1.evt.fulfillment."))
        .collect();
    assert!(
        fulfillments.len() >= ORDERS,
        "only {} fulfillments had events",
        fulfillments.len()
    );
    for (subject, seen) in fulfillments {
        let mut statuses: Vec<&str> = seen.iter().map(|e| text(e, "status")).collect();
        statuses.dedup(); // `released` twice: when released and when its node accepted it
        assert_eq!(statuses, steps, "{subject}");
    }
    for sku in &skus {
        let subject = format!("keel.v1.evt.inventory.{}.{sku}", net.east);
        assert!(
            events.contains_key(&subject),
            "no position events on {subject}"
        );
    }
}
