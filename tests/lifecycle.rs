//! Order lifecycle, end to end against the real binary.
//!
//! Scenario: a channel sells from two distribution centres, east (priority 1) and west
//! (priority 2). Orders are sourced from one location when one can supply everything (ship-to
//! region first, then priority), split over locations otherwise, backordered at the preferred
//! location when stock is missing and filled when it arrives. Warehouses confirm fulfillments
//! picked → packed → shipped → delivered, and the order follows. Cancels give the stock back.
//! Every create and confirmation is idempotent. Throughout, each position equals the sum of its
//! ledger (conservation) and its reservations add up to `allocated`; the ledger reads in pages.

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::invariants::{check_order_lines, check_position, wait_position};
use fixtures::{
    assert_error, expect_2xx, expect_status, fulfillment_at, holders, int, line, list,
    location_body, order_body, receipt_body, sku_body, sku_quantities, text, Api, Keel, Network,
};
use serde_json::{json, Value};

const TO_SHIPPED: [&str; 3] = ["picked", "packed", "shipped"];

/// Places an order that must be created (201) and returns it.
#[track_caller]
fn place_new(api: &Api, id: &str, channel: &str, lines: &[(&str, i64)], region: &str) -> Value {
    expect_status(
        &format!("place order {id}"),
        api.place_order(id, channel, lines, region),
        201,
    )
}

/// The location of an order's only fulfillment.
#[track_caller]
fn sole_fulfillment_location(order: &Value) -> String {
    match list(order, "fulfillments") {
        [f] => text(f, "location").to_string(),
        _ => panic!("expected exactly one fulfillment: {order}"),
    }
}

#[track_caller]
fn assert_line(order: &Value, sku: &str, allocated: i64, backordered: i64) {
    let l = line(order, sku);
    assert_eq!(
        (int(l, "allocated"), int(l, "backordered")),
        (allocated, backordered),
        "line {sku} should be allocated {allocated}, backordered {backordered}: {order}"
    );
}

#[track_caller]
fn assert_consistent(order: &Value) {
    let problems = check_order_lines(order);
    assert!(problems.is_empty(), "{problems:#?}");
}

/// Confirms `steps` in turn for every fulfillment of `order`.
fn confirm_all(api: &Api, order: &Value, steps: &[&str]) {
    for f in list(order, "fulfillments") {
        api.advance(text(f, "id"), steps);
    }
}

#[test]
fn split_order_is_sourced_per_location_delivered_and_stock_is_conserved() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "sp");
    let (a, b) = ("sp-A", "sp-B");
    keel.create_sku(a);
    keel.create_sku(b);
    keel.receive("sp-r1", a, &net.east, 3);
    keel.receive("sp-r2", b, &net.west, 2);

    let order = place_new(&keel, "sp-o1", &net.channel, &[(a, 2), (b, 2)], "east");
    assert_line(&order, a, 2, 0);
    assert_line(&order, b, 2, 0);
    assert_eq!(
        list(&order, "fulfillments").len(),
        2,
        "one fulfillment per location: {order}"
    );
    let east = fulfillment_at(&order, &net.east).clone();
    let west = fulfillment_at(&order, &net.west).clone();
    assert_eq!(
        sku_quantities(&east),
        [(a.to_string(), 2)],
        "east ships A: {order}"
    );
    assert_eq!(
        sku_quantities(&west),
        [(b.to_string(), 2)],
        "west ships B: {order}"
    );
    for f in [&east, &west] {
        let id = text(f, "id");
        assert!(
            id.starts_with("sp-o1-F"),
            "fulfillment id {id} is not sp-o1-F<n>"
        );
        let stored = keel.fulfillment(id);
        assert_eq!(stored["order"], "sp-o1", "{stored}");
        assert_eq!(sku_quantities(&stored), sku_quantities(f), "{stored}");
    }

    keel.wait_order_status("sp-o1", "released");
    for (step, order_status) in [
        ("picked", "picking"),
        ("packed", "packed"),
        ("shipped", "shipped"),
        ("delivered", "delivered"),
    ] {
        for f in [&east, &west] {
            keel.advance(text(f, "id"), &[step]);
        }
        keel.wait_order_status("sp-o1", order_status);
    }

    let order = keel.order("sp-o1");
    for sku in [a, b] {
        assert_eq!(
            int(line(&order, sku), "shipped"),
            2,
            "all of {sku} shipped: {order}"
        );
    }
    assert_consistent(&order);
    wait_position(&keel, a, &net.east, 1, 0);
    wait_position(&keel, b, &net.west, 0, 0);
    wait_position(&keel, a, &net.west, 0, 0);
    wait_position(&keel, b, &net.east, 0, 0);
    for location in [&net.east, &net.west] {
        fixtures::eventually(
            &format!("{location} counts one delivered fulfillment"),
            || {
                let view = expect_status(
                    "location view",
                    keel.get(&format!("/v1/locations/{location}")),
                    200,
                );
                let delivered = view
                    .pointer("/fulfillments/delivered")
                    .and_then(Value::as_i64);
                match (delivered, view["open_fulfillments"].as_i64()) {
                    (Some(1), Some(0)) => Ok(()),
                    _ => Err(view.to_string()),
                }
            },
        );
    }
}

#[test]
fn whole_order_goes_to_one_location_preferring_ship_to_region_then_priority() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "pf");
    // Lists west first, so "lower priority wins" cannot pass by taking the first location.
    keel.create_channel("pf-web-rev", &[&net.west, &net.east]);
    let (a, b) = ("pf-A", "pf-B");
    keel.create_sku(a);
    keel.create_sku(b);
    keel.receive("pf-r1", a, &net.east, 1);
    keel.receive("pf-r2", b, &net.east, 5);
    keel.receive("pf-r3", a, &net.west, 5);
    keel.receive("pf-r4", b, &net.west, 5);

    // Only west can supply all of it: one fulfillment there, although the customer is east.
    let order = place_new(&keel, "pf-o1", &net.channel, &[(a, 2), (b, 2)], "east");
    assert_eq!(sole_fulfillment_location(&order), net.west, "{order}");
    assert_line(&order, a, 2, 0);
    // Now east has A1 B5 and west A3 B3: both can supply A1 B1; the ship-to region decides.
    let order = place_new(&keel, "pf-o2", &net.channel, &[(a, 1), (b, 1)], "west");
    assert_eq!(
        sole_fulfillment_location(&order),
        net.west,
        "region beats priority: {order}"
    );
    let order = place_new(&keel, "pf-o3", &net.channel, &[(a, 1), (b, 1)], "east");
    assert_eq!(
        sole_fulfillment_location(&order),
        net.east,
        "region match: {order}"
    );
    // East now A0 B4, west A2 B2. Both can supply B1 and neither is in region north: priority.
    let order = place_new(&keel, "pf-o4", "pf-web-rev", &[(b, 1)], "north");
    assert_eq!(
        sole_fulfillment_location(&order),
        net.east,
        "lower priority wins: {order}"
    );

    for (sku, location, on_hand, allocated) in [
        (a, &net.east, 1, 1),
        (b, &net.east, 5, 2),
        (a, &net.west, 5, 3),
        (b, &net.west, 5, 3),
    ] {
        wait_position(&keel, sku, location, on_hand, allocated);
    }
}

#[test]
fn backorder_waits_at_preferred_location_and_is_filled_when_stock_arrives() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "bo");
    let a = "bo-A";
    keel.create_sku(a);

    // West is preferred for a west customer (region match) although east has priority 1.
    let order = place_new(&keel, "bo-o1", &net.channel, &[(a, 5)], "west");
    assert_eq!(order["status"], "backordered", "{order}");
    assert_line(&order, a, 0, 5);
    assert!(
        list(&order, "fulfillments").is_empty(),
        "nothing to fulfil yet: {order}"
    );
    let west = keel.position(a, &net.west);
    assert_eq!(
        holders(&west, "backorders"),
        [("bo-o1".to_string(), 5)],
        "{west}"
    );
    let east = keel.position(a, &net.east);
    assert!(
        holders(&east, "backorders").is_empty(),
        "no backorder at east: {east}"
    );

    keel.receive("bo-r1", a, &net.west, 5);
    let order = keel.wait_order("bo-o1", "allocated from the receipt", |o| {
        int(line(o, a), "allocated") == 5 && !list(o, "fulfillments").is_empty()
    });
    assert_line(&order, a, 5, 0);
    assert!(
        ["allocated", "released"].contains(&text(&order, "status")),
        "fully allocated order: {order}"
    );
    let f = fulfillment_at(&order, &net.west);
    assert_eq!(sku_quantities(f), [(a.to_string(), 5)], "{order}");
    let west = wait_position(&keel, a, &net.west, 5, 5);
    assert_eq!(
        holders(&west, "reservations"),
        [("bo-o1".to_string(), 5)],
        "{west}"
    );
    assert!(
        holders(&west, "backorders").is_empty(),
        "backorder consumed: {west}"
    );
}

#[test]
fn short_stock_allocates_what_exists_and_a_receipt_releases_a_second_fulfillment() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "pa");
    let a = "pa-A";
    keel.create_sku(a);
    keel.receive("pa-r1", a, &net.east, 3);

    let order = place_new(&keel, "pa-o1", &net.channel, &[(a, 5)], "east");
    assert_eq!(order["status"], "partially_allocated", "{order}");
    assert_line(&order, a, 3, 2);
    assert_eq!(
        sku_quantities(fulfillment_at(&order, &net.east)),
        [(a.to_string(), 3)]
    );
    let east = check_position(&keel, a, &net.east).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        holders(&east, "reservations"),
        [("pa-o1".to_string(), 3)],
        "{east}"
    );
    assert_eq!(
        holders(&east, "backorders"),
        [("pa-o1".to_string(), 2)],
        "{east}"
    );

    keel.receive("pa-r2", a, &net.east, 2);
    let order = keel.wait_order("pa-o1", "second fulfillment released", |o| {
        list(o, "fulfillments").len() == 2
    });
    assert_line(&order, a, 5, 0);
    assert_consistent(&order);
    let mut parts: Vec<i64> = list(&order, "fulfillments")
        .iter()
        .map(|f| {
            assert_eq!(f["location"], net.east.as_str(), "{order}");
            int(&list(f, "lines")[0], "quantity")
        })
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        [2, 3],
        "a first fulfillment of 3, then one of 2: {order}"
    );
    let east = wait_position(&keel, a, &net.east, 5, 5);
    assert!(holders(&east, "backorders").is_empty(), "{east}");
}

#[test]
fn cancel_returns_reservations_and_backorders_is_idempotent_and_refused_once_shipped() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "cx");
    let a = "cx-A";
    keel.create_sku(a);
    keel.receive("cx-r1", a, &net.east, 4);

    // A fully allocated order, cancelled twice.
    let placed = place_new(&keel, "cx-o1", &net.channel, &[(a, 3)], "east");
    let cancelled = expect_status("cancel cx-o1", keel.cancel("cx-o1"), 200);
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    assert!(
        list(&cancelled, "fulfillments")
            .iter()
            .all(|f| f["status"] == "cancelled"),
        "every fulfillment cancelled: {cancelled}"
    );
    assert_line(&cancelled, a, 0, 0);
    let east = wait_position(&keel, a, &net.east, 4, 0);
    assert!(holders(&east, "reservations").is_empty(), "{east}");
    let again = expect_status("cancel cx-o1 again", keel.cancel("cx-o1"), 200);
    assert_eq!(again["status"], "cancelled", "{again}");
    let f1 = text(&list(&placed, "fulfillments")[0], "id");
    assert_error(&keel.confirm(f1, "picked"), 409, "invalid_transition");

    // A partially allocated order: cancelling withdraws its backorder too, so later stock
    // stays free.
    let placed = place_new(&keel, "cx-o2", &net.channel, &[(a, 6)], "east");
    assert_line(&placed, a, 4, 2);
    expect_status("cancel cx-o2", keel.cancel("cx-o2"), 200);
    let east = wait_position(&keel, a, &net.east, 4, 0);
    assert!(
        holders(&east, "backorders").is_empty(),
        "backorder withdrawn: {east}"
    );
    let after_receipt = keel.receive("cx-r2", a, &net.east, 2);
    assert_eq!(int(&after_receipt, "allocated"), 0, "{after_receipt}");
    assert_line(&keel.order("cx-o2"), a, 0, 0);

    // A shipped order can no longer be cancelled, and stays shipped.
    let placed = place_new(&keel, "cx-o3", &net.channel, &[(a, 2)], "east");
    keel.wait_order_status("cx-o3", "released");
    confirm_all(&keel, &placed, &TO_SHIPPED);
    keel.wait_order_status("cx-o3", "shipped");
    assert_error(&keel.cancel("cx-o3"), 409, "invalid_transition");
    assert_eq!(keel.order("cx-o3")["status"], "shipped");
    wait_position(&keel, a, &net.east, 4, 0);
}

#[test]
fn creates_and_confirmations_are_idempotent_and_a_changed_body_is_a_conflict() {
    let keel = Keel::start();
    let net = Network::two_dcs(&keel, "id");
    let a = "id-A";
    keel.create_sku(a);

    // Catalog: same body again is 200, a different body under the same id is a conflict.
    expect_status(
        "repeat sku create",
        keel.post("/v1/skus", &sku_body(a)),
        200,
    );
    let renamed = json!({"id": a, "name": "Other"});
    assert_error(&keel.post("/v1/skus", &renamed), 409, "conflict");
    let repeat = keel.post("/v1/locations", &location_body(&net.east, "east", 1));
    expect_status("repeat location create", repeat, 200);
    let moved = json!({"id": net.east, "name": "East", "region": "west", "priority": 1});
    assert_error(&keel.post("/v1/locations", &moved), 409, "conflict");

    // Receipts: a replay does not count twice; a changed body is a conflict.
    expect_status("receipt", keel.post_receipt("id-r1", a, &net.east, 5), 201);
    expect_status(
        "receipt replay",
        keel.post_receipt("id-r1", a, &net.east, 5),
        200,
    );
    let changed = receipt_body("id-r1", a, &net.east, 7);
    assert_error(
        &keel.post("/v1/inventory/receipts", &changed),
        409,
        "conflict",
    );
    wait_position(&keel, a, &net.east, 5, 0);

    // Orders: 201, then 200 with the same order; a changed body is a conflict.
    let lines = [(a, 2)];
    let first = place_new(&keel, "id-o1", &net.channel, &lines, "east");
    let replay = expect_status(
        "order replay",
        keel.place_order("id-o1", &net.channel, &lines, "east"),
        200,
    );
    assert_eq!(
        without_statuses(&replay),
        without_statuses(&first),
        "replay answers the stored order"
    );
    assert!(
        ["allocated", "released"].contains(&text(&replay, "status")),
        "{replay}"
    );
    let changed = order_body("id-o1", &net.channel, &[(a, 3)], "east");
    assert_error(&keel.post("/v1/orders", &changed), 409, "conflict");
    let stored = keel.order("id-o1");
    assert_eq!(
        without_statuses(&stored),
        without_statuses(&first),
        "conflict changed nothing"
    );
    wait_position(&keel, a, &net.east, 5, 2);

    // /metrics measured all that: the order counted once, by the status it was placed in (a
    // replay is not a new order), its saga and its commit's wait; every request by route and
    // status, and the conflicts by their code.
    let placed = format!(
        "keel_orders_placed_total{{status=\"{}\"}}",
        text(&first, "status")
    );
    assert_eq!(keel.metric(&placed), 1, "{placed}");
    for (sample, expected) in [
        ("keel_saga_duration_seconds_count{result=\"finished\",start=\"placed\"}", 1),
        ("keel_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/orders\",status=\"201\"}", 1),
        ("keel_http_request_duration_seconds_count{method=\"POST\",route=\"/v1/orders\",status=\"200\"}", 1),
        ("keel_http_errors_total{code=\"conflict\",route=\"/v1/orders\"}", 1),
        ("keel_http_errors_total{code=\"conflict\",route=\"/v1/skus\"}", 1),
        ("keel_api_request_duration_seconds_count{status=\"created\",subject=\"keel.v1.api.orders.place\"}", 1),
        ("keel_api_errors_total{code=\"conflict\",subject=\"keel.v1.api.orders.place\"}", 1),
    ] {
        assert_eq!(keel.metric(sample), expected, "{sample}");
    }
    assert!(keel.metric("keel_store_flush_wait_seconds_count") >= 4);
    // Embedded, a 2xx waits for its round's fsync (on NATS it waits for the changelog, and
    // the log writes its rounds when it checkpoints).
    if matches!(
        fixtures::Transport::of_this_run(),
        fixtures::Transport::Embedded
    ) {
        assert!(keel.metric("keel_store_round_seconds_count{fsync=\"true\"}") >= 1);
    }

    // Confirmations: repeating the current step answers 200 and ships only once.
    keel.wait_order_status("id-o1", "released");
    let f = text(fulfillment_at(&stored, &net.east), "id").to_string();
    keel.advance(&f, &["picked"]);
    assert_repeat_answers_current_step(&keel, &f, "picked");
    keel.advance(&f, &["packed", "shipped"]);
    keel.wait_order_status("id-o1", "shipped");
    assert_repeat_answers_current_step(&keel, &f, "shipped");
    wait_position(&keel, a, &net.east, 3, 0);
    let ledger = keel.ledger(a, &net.east);
    let shipments = list(&ledger, "entries")
        .iter()
        .filter(|e| e["movement"] == "shipment")
        .count();
    assert_eq!(shipments, 1, "one shipment entry: {ledger}");
    assert_eq!(int(line(&keel.order("id-o1"), a), "shipped"), 2);
}

#[track_caller]
fn assert_repeat_answers_current_step(api: &Api, fulfillment: &str, step: &str) {
    let what = format!("repeat {step} of {fulfillment}");
    let f = expect_status(&what, api.confirm(fulfillment, step), 200);
    assert_eq!(f["status"], step, "{what}: {f}");
}

/// An order with its (time-dependent: allocated → released) statuses blanked out.
fn without_statuses(order: &Value) -> Value {
    let mut order = order.clone();
    order["status"] = Value::Null;
    if let Some(fulfillments) = order["fulfillments"].as_array_mut() {
        for f in fulfillments {
            f["status"] = Value::Null;
        }
    }
    order
}

#[test]
fn the_ledger_is_read_in_pages_that_continue_where_the_last_one_ended() {
    let keel = Keel::start();
    let api = keel.api();
    let net = Network::two_dcs(&api, "lp");
    api.create_sku("lp-a");
    for n in 0..5 {
        api.receive(&format!("lp-r{n}"), "lp-a", &net.east, n + 1);
    }
    let path = format!("/v1/inventory/lp-a/{}/ledger", net.east);
    let first = expect_2xx("first page", api.get(&format!("{path}?limit=2")));
    let seqs = |page: &Value| -> Vec<i64> {
        list(page, "entries")
            .iter()
            .map(|e| int(e, "seq"))
            .collect()
    };
    assert_eq!(
        (seqs(&first), first["next"].as_i64()),
        (vec![0, 1], Some(2)),
        "{first}"
    );
    let rest = expect_2xx("next page", api.get(&format!("{path}?from=2&limit=10")));
    assert_eq!(
        (seqs(&rest), rest["next"].is_null()),
        (vec![2, 3, 4], true),
        "{rest}"
    );
    let whole = expect_2xx("default page", api.get(&path));
    assert_eq!(list(&whole, "entries").len(), 5, "{whole}");
    assert_error(
        &api.get(&format!("{path}?limit=lots")),
        400,
        "malformed_request",
    );
}

#[test]
fn the_reservations_of_a_position_are_read_in_pages_by_order() {
    let keel = Keel::start();
    let api = keel.api();
    let net = Network::two_dcs(&api, "rp");
    api.create_sku("rp-a");
    api.receive("rp-r", "rp-a", &net.east, 10);
    for n in 0..3 {
        place_new(
            &api,
            &format!("rp-o{n}"),
            &net.channel,
            &[("rp-a", 1)],
            "east",
        );
    }
    let orders = |page: &Value, key: &str| -> Vec<String> {
        list(page, key)
            .iter()
            .map(|r| text(r, "order").to_owned())
            .collect()
    };
    let path = format!("/v1/inventory/rp-a/{}/reservations", net.east);
    let first = expect_2xx("first page", api.get(&format!("{path}?limit=2")));
    assert_eq!(orders(&first, "entries"), ["rp-o0", "rp-o1"], "{first}");
    assert_eq!(first["next"], "rp-o1", "{first}");
    let rest = expect_2xx("next page", api.get(&format!("{path}?after=rp-o1&limit=2")));
    assert_eq!(orders(&rest, "entries"), ["rp-o2"], "{rest}");
    assert!(rest["next"].is_null(), "{rest}");
    let position = api.position("rp-a", &net.east);
    assert_eq!(orders(&position, "reservations").len(), 3, "{position}");
    assert!(position["reservations_next"].is_null(), "{position}");
}

#[test]
fn the_backorder_queue_of_a_position_is_read_in_pages_in_queue_order() {
    let keel = Keel::start();
    let api = keel.api();
    let net = Network::two_dcs(&api, "bp");
    api.create_sku("bp-a");
    // Placed in this order, so this is the queue order (not the order ids' sort order).
    for id in ["bp-z", "bp-a1", "bp-m"] {
        place_new(&api, id, &net.channel, &[("bp-a", 2)], "east");
    }
    let orders = |page: &Value, key: &str| -> Vec<String> {
        list(page, key)
            .iter()
            .map(|r| text(r, "order").to_owned())
            .collect()
    };
    let position = api.position("bp-a", &net.east);
    assert_eq!(
        orders(&position, "backorders"),
        ["bp-z", "bp-a1", "bp-m"],
        "{position}"
    );
    assert!(position["backorders_next"].is_null(), "{position}");
    let path = format!("/v1/inventory/bp-a/{}/backorders", net.east);
    let first = expect_2xx("first page", api.get(&format!("{path}?limit=2")));
    assert_eq!(orders(&first, "entries"), ["bp-z", "bp-a1"], "{first}");
    let after = first["next"].as_u64().expect("a next ticket");
    let rest = expect_2xx("next page", api.get(&format!("{path}?after={after}")));
    assert_eq!(
        (orders(&rest, "entries"), rest["next"].is_null()),
        (vec!["bp-m".to_owned()], true),
        "{rest}"
    );
}
