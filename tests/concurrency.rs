//! Concurrent orders over scarce stock.
//!
//! Scenario: five SKUs with little stock spread over two locations; 16 clients place random
//! orders (1–3 lines, 1–3 units each) at the same time until the demand is three times the
//! stock. Nothing ships. Afterwards no SKU-location is over-allocated and its stock on hand is
//! untouched, the reservations of every position are exactly what the orders' fulfillments hold
//! there (so they also add up to `allocated`), every acknowledged order is retrievable as placed
//! and no order line holds more than it asked for.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::thread;

use fixtures::invariants::{check_order_lines, check_orders_against_inventory, check_position};
use fixtures::{eventually, int, list, sku_quantities, Api, Keel, Network, Resp, Rng};

const CLIENTS: u64 = 16;
/// Units of each SKU at (east, west).
const STOCK: [(i64, i64); 5] = [(24, 6), (6, 24), (18, 12), (0, 18), (12, 12)];

/// One order a client placed, and the reply it got.
struct Placed {
    id: String,
    lines: Vec<(String, i64)>,
    reply: Resp,
}

impl Placed {
    fn sorted_lines(&self) -> Vec<(String, i64)> {
        let mut lines = self.lines.clone();
        lines.sort();
        lines
    }
}

/// Places random orders until the shared demand counter reaches `target` units. An order is only
/// placed when the counter was below `target` before adding it, so the placed orders together
/// demand at least `target`.
fn place_until(
    api: &Api,
    client: u64,
    skus: &[String],
    channel: &str,
    demand: &AtomicI64,
    target: i64,
) -> Vec<Placed> {
    let mut rng = Rng::new(client + 1);
    let mut placed = Vec::new();
    for n in 0.. {
        let lines = rng.order_lines(skus, 3, 3);
        let units: i64 = lines.iter().map(|(_, qty)| qty).sum();
        if demand.fetch_add(units, Ordering::SeqCst) >= target {
            break;
        }
        let id = format!("cc-o-{client}-{n}");
        let region = *rng.pick(&["east", "west"]);
        let reply = api.place_order(&id, channel, &lines, region);
        placed.push(Placed { id, lines, reply });
    }
    placed
}

#[test]
fn concurrent_orders_never_allocate_more_than_is_on_hand() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "cc");
    let locations = net.locations();
    let skus: Vec<String> = (0..STOCK.len()).map(|i| format!("cc-sku-{i}")).collect();
    let mut stock: BTreeMap<(String, String), i64> = BTreeMap::new();
    for (sku, (east, west)) in skus.iter().zip(STOCK) {
        keel.create_sku(sku);
        for (location, qty) in [(&net.east, east), (&net.west, west)] {
            if qty > 0 {
                keel.receive(&format!("cc-r-{sku}-{location}"), sku, location, qty);
            }
            stock.insert((sku.clone(), location.clone()), qty);
        }
    }
    let target = 3 * stock.values().sum::<i64>();

    let demand = AtomicI64::new(0);
    let placed: Vec<Placed> = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (api, skus, channel, demand) = (keel.api(), &skus, &net.channel, &demand);
                scope.spawn(move || place_until(&api, client, skus, channel, demand, target))
            })
            .collect();
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("a client thread panicked"))
            .collect()
    });

    // Every order was created and answered consistently.
    let refused: Vec<String> = placed
        .iter()
        .filter(|p| p.reply.0 != 201)
        .map(|p| format!("{}: {} {}", p.id, p.reply.0, p.reply.1))
        .collect();
    assert!(
        refused.is_empty(),
        "orders not created:\n{}",
        refused.join("\n")
    );
    let placed_units: i64 = placed.iter().flat_map(|p| &p.lines).map(|(_, q)| q).sum();
    assert!(
        placed_units >= target,
        "placed {placed_units} units, wanted ≥ {target}"
    );
    for p in &placed {
        let sent = p.sorted_lines();
        assert_eq!(
            sku_quantities(&p.reply.1),
            sent,
            "{} answered {}",
            p.id,
            p.reply.1
        );
        let problems = check_order_lines(&p.reply.1);
        assert!(problems.is_empty(), "reply to {}: {problems:#?}", p.id);
    }

    // Stock: untouched on hand, never over-allocated, ledgers conserve.
    for ((sku, location), on_hand) in &stock {
        let pos = eventually(&format!("{sku}@{location} consistent"), || {
            check_position(&keel, sku, location)
        });
        assert_eq!(
            int(&pos, "on_hand"),
            *on_hand,
            "nothing shipped, on_hand unchanged: {pos}"
        );
    }
    let backordered: i64 = placed
        .iter()
        .flat_map(|p| list(&p.reply.1, "lines"))
        .map(|l| int(l, "backordered"))
        .sum();
    assert!(
        backordered > 0,
        "demand of 3× the stock must leave backorders"
    );

    // Orders and inventory agree on who holds what; every order is retrievable as placed.
    let ids: Vec<String> = placed.iter().map(|p| p.id.clone()).collect();
    eventually("orders agree with reservations and backorders", || {
        check_orders_against_inventory(&keel, &skus, &locations, &ids)
    });
    for p in &placed {
        let order = keel.order(&p.id);
        assert_eq!(sku_quantities(&order), p.sorted_lines(), "{order}");
    }
}
