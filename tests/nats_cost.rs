//! What an order costs in NATS messages on one node, counted by nats-server itself: the
//! messages it received from its clients (`/varz` `in_msgs`), from quiet before the orders to
//! quiet after everything they set off (events, changelog, the warehouse's acceptance),
//! divided by the orders placed. The NATS cost issue's target is at most 9 per order on one
//! node; this fails above twice that. (`load-tests/cluster_bench.py` reports the figure under
//! load.) On one node every command between actors stays in process, so what is left is the
//! request and its reply, the events, and the changelog.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::thread;

use fixtures::{Keel, Network};
use serde_json::json;

/// Orders placed, by this many clients at once.
const ORDERS: usize = 200;
const CLIENTS: usize = 8;
/// Twice the target of 9 messages per order.
const LIMIT: f64 = 18.0;

#[test]
fn an_order_on_one_node_costs_a_few_nats_messages() {
    let mut keel = Keel::start_on_nats();
    let net = Network::two_dcs(&keel, "cost");
    keel.create_sku("cost-sku");
    assert_eq!(
        keel.post_receipt("cost-r1", "cost-sku", &net.east, 10_000)
            .0,
        201
    );

    let before = keel.nats().settled_in_msgs();
    let changelog_before = keel.api().metric("keel_changelog_batches_total");
    let placed: usize = (0..CLIENTS)
        .map(|client| {
            let (api, channel) = (keel.api(), net.channel.clone());
            thread::spawn(move || {
                let mut placed = 0;
                for n in (client..ORDERS).step_by(CLIENTS) {
                    let body = json!({"id": format!("cost-o{n}"), "channel": channel,
                        "lines": [{"sku": "cost-sku", "quantity": 1}],
                        "ship_to": {"region": "east"}});
                    let (status, reply) = api.post("/v1/orders", &body);
                    assert_eq!(status, 201, "{reply}");
                    placed += 1;
                }
                placed
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|client| client.join().expect("a client panicked"))
        .sum();
    let after = keel.nats().settled_in_msgs();
    let changelog = keel.api().metric("keel_changelog_batches_total") - changelog_before;
    // The node's own count of what it sent agrees with its changelog writer's.
    let sent = keel
        .api()
        .metric("keel_nats_messages_sent_total{kind=\"changelog\"}");
    assert!(
        sent >= changelog,
        "{sent} changelog messages counted sent, {changelog} written"
    );
    assert!(
        keel.api()
            .metric("keel_nats_messages_sent_total{kind=\"event\"}")
            > 0
    );

    let per_order = (after - before) as f64 / placed as f64;
    eprintln!(
        "NATS messages per order on one node: {per_order:.2} ({} in {placed} orders; {:.2} of them changelog messages)",
        after - before,
        changelog as f64 / placed as f64
    );
    assert!(
        per_order <= LIMIT,
        "an order cost {per_order:.2} NATS messages (target 9, limit {LIMIT})"
    );
}
