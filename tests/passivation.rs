//! Virtual actors: idle actors leave memory, and come back from the store exactly as they were.
//!
//! Scenario: a node passivates actors after one idle second. Orders reserve stock, one order
//! waits on a backorder. Once every actor has been passivated (the node's `/metrics` says none is
//! active), a new order, a shipment confirmation and a receipt that fills the waiting backorder
//! all find their SKU-location and orders as they left them: reservations, backorder queue and
//! fulfillment steps come back from sled, not from memory.

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::{eventually, expect_2xx, int, list, text, Api, Keel, Network};

/// The number after `name{labels}` in Prometheus text, summed over label sets.
fn active_actors(api: &Api) -> Result<i64, String> {
    let (status, body) = api.get("/metrics");
    let text = body
        .as_str()
        .ok_or(format!("/metrics answered {status} {body}"))?;
    Ok(text
        .lines()
        .filter(|l| l.starts_with("keel_runtime_actors_active{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<i64>().ok())
        .sum())
}

fn wait_until_all_passivated(api: &Api) {
    eventually("every actor passivated", || match active_actors(api)? {
        0 => Ok(()),
        n => Err(format!("{n} actors still active")),
    });
}

#[test]
fn passivated_actors_resume_from_the_store_with_reservations_and_backorders_intact() {
    let dir = tempfile::Builder::new()
        .prefix("keel-test-")
        .tempdir()
        .unwrap();
    let keel = Keel::start_with(dir, &["--actor-idle-secs", "1"]);
    let api = keel.api();
    let net = Network::two_dcs(&api, "pv");
    api.create_sku("pv-sku");
    api.receive("pv-r1", "pv-sku", &net.east, 6);
    for id in ["pv-o1", "pv-o2"] {
        expect_2xx(
            id,
            api.place_order(id, &net.channel, &[("pv-sku", 2)], "east"),
        );
    }
    let waiting = expect_2xx(
        "pv-o3",
        api.place_order("pv-o3", &net.channel, &[("pv-sku", 5)], "east"),
    );
    assert_eq!(text(&waiting, "status"), "partially_allocated", "{waiting}");
    assert!(
        active_actors(&api).unwrap() > 0,
        "actors are active right after the work"
    );

    wait_until_all_passivated(&api);
    let position = api.position("pv-sku", &net.east);
    assert_eq!(
        (int(&position, "on_hand"), int(&position, "allocated")),
        (6, 6),
        "{position}"
    );
    assert_eq!(list(&position, "reservations").len(), 3, "{position}");
    assert_eq!(list(&position, "backorders").len(), 1, "{position}");

    // The order actor and its SKU-location come back to ship o1.
    let f1 = api.order("pv-o1")["fulfillments"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    api.advance(&f1, &["picked", "packed", "shipped"]);
    let position = api.position("pv-sku", &net.east);
    assert_eq!(
        (int(&position, "on_hand"), int(&position, "allocated")),
        (4, 4),
        "{position}"
    );

    // Stock arriving after another passivation fills the reloaded backorder queue.
    wait_until_all_passivated(&api);
    api.receive("pv-r2", "pv-sku", &net.east, 3);
    let filled = api.wait_order("pv-o3", "backorder filled", |o| {
        o["lines"][0]["allocated"] == 5 && o["lines"][0]["backordered"] == 0
    });
    assert_eq!(list(&filled, "fulfillments").len(), 2, "{filled}");
    let position = api.position("pv-sku", &net.east);
    assert_eq!(
        (int(&position, "on_hand"), int(&position, "allocated")),
        (7, 7),
        "{position}"
    );
    assert!(list(&position, "backorders").is_empty(), "{position}");
}
