//! Cart holds and the durable timers behind their expiry, end to end against the real binary.
//!
//! Scenario: a storefront keeps stock aside at checkout (`POST /v1/holds`). Held units are a
//! bucket of their own (`held`), out of what others may promise. An abandoned cart's hold
//! expires when its ttl passes and its units come back exactly once, also when the node is
//! SIGKILLed and restarted around the expiry. A checkout that completes places the order on
//! the hold: the order takes the held units, with no second reservation. Time is the node's
//! clock file, which the test moves on: nothing here sleeps until a deadline.

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::invariants::check_position;
use fixtures::{
    assert_error, eventually, expect_status, hold_body, int, list, order_body, temp_dir, Api, Keel,
    Network, Rng, TestClock,
};
use serde_json::{json, Value};

/// A node reading `clock`, with one SKU stocked at the east DC.
fn start(prefix: &str, on_hand: i64) -> (Keel, TestClock, Network, String) {
    let dir = temp_dir();
    let clock = TestClock::in_dir(dir.path());
    let args = clock.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let keel = Keel::start_with(dir, &args);
    let net = Network::two_dcs(&keel, prefix);
    let sku = format!("{prefix}-A");
    keel.create_sku(&sku);
    keel.receive(&format!("{prefix}-r1"), &sku, &net.east, on_hand);
    (keel, clock, net, sku)
}

fn place_hold(api: &Api, body: &Value) -> (u16, Value) {
    api.post("/v1/holds", body)
}

fn hold(api: &Api, id: &str) -> Value {
    expect_status(
        &format!("hold {id}"),
        api.get(&format!("/v1/holds/{id}")),
        200,
    )
}

/// Polls the hold until it shows `status`.
#[track_caller]
fn wait_hold(api: &Api, id: &str, status: &str) -> Value {
    eventually(&format!("hold {id} {status}"), || {
        let h = hold(api, id);
        if h["status"] == status {
            Ok(h)
        } else {
            Err(h.to_string())
        }
    })
}

/// Polls the position until it shows `(on_hand, allocated, held)`, checking the position's
/// invariants (buckets, reservations, ledger) on the way.
#[track_caller]
fn wait_buckets(api: &Api, sku: &str, location: &str, buckets: (i64, i64, i64)) -> Value {
    eventually(&format!("{sku}@{location} at {buckets:?}"), || {
        let pos = check_position(api, sku, location)?;
        let seen = (
            int(&pos, "on_hand"),
            int(&pos, "allocated"),
            int(&pos, "held"),
        );
        if seen == buckets {
            Ok(pos)
        } else {
            Err(pos.to_string())
        }
    })
}

/// The ledger entries of one movement kind.
fn moves(api: &Api, sku: &str, location: &str, movement: &str) -> Vec<Value> {
    let ledger = api.ledger(sku, location);
    list(&ledger, "entries")
        .iter()
        .filter(|e| e["movement"] == movement)
        .cloned()
        .collect()
}

/// Polls `/metrics` until `keel_timers_fired_total` is `n`.
#[track_caller]
fn wait_timers_fired(api: &Api, n: u64) {
    let sample = format!("keel_timers_fired_total {n}");
    eventually(&sample, || {
        let (_, metrics) = api.get("/metrics");
        let text = metrics.as_str().unwrap_or_default().to_owned();
        if text.lines().any(|l| l == sample) {
            Ok(())
        } else {
            Err(text
                .lines()
                .filter(|l| l.starts_with("keel_timers"))
                .collect::<Vec<_>>()
                .join("; "))
        }
    });
}

fn held(hold: &Value) -> i64 {
    list(hold, "lines").iter().map(|l| int(l, "held")).sum()
}

#[test]
fn a_hold_keeps_units_aside_until_it_expires_then_they_come_back_once() {
    let (keel, clock, net, sku) = start("hx", 5);
    let body = hold_body("hx-h1", &net.channel, &[(&sku, 3)], "east", 60);
    let placed = expect_status("place hold", place_hold(&keel, &body), 201);
    assert_eq!(placed["status"], "active", "{placed}");
    assert_eq!(held(&placed), 3);
    assert_eq!(int(&placed, "expires_at"), (clock.now() + 60_000) as i64);
    // Idempotent by id: the same body again is the same hold; another body is a conflict.
    let again = expect_status("place again", place_hold(&keel, &body), 200);
    assert_eq!(again, placed);
    let other = hold_body("hx-h1", &net.channel, &[(&sku, 1)], "east", 60);
    assert_error(&place_hold(&keel, &other), 409, "conflict");

    let pos = wait_buckets(&keel, &sku, &net.east, (5, 0, 3));
    assert_eq!(int(&pos, "available"), 2, "held units are not available");
    // Another cart gets what is left, and no more.
    let short = hold_body("hx-h2", &net.channel, &[(&sku, 4)], "east", 600);
    let second = expect_status("second hold", place_hold(&keel, &short), 201);
    assert_eq!(held(&second), 2, "held may be less than asked: {second}");
    wait_buckets(&keel, &sku, &net.east, (5, 0, 5));

    clock.advance(59);
    assert_eq!(
        hold(&keel, "hx-h1")["status"],
        "active",
        "not before its time"
    );
    clock.advance(1);
    let expired = wait_hold(&keel, "hx-h1", "expired");
    assert_eq!(held(&expired), 0);
    wait_buckets(&keel, &sku, &net.east, (5, 0, 2));
    assert_eq!(hold(&keel, "hx-h2")["status"], "active");
    // Exactly once, however long the clock runs on.
    clock.advance(3600);
    wait_hold(&keel, "hx-h2", "expired");
    wait_buckets(&keel, &sku, &net.east, (5, 0, 0));
    assert_eq!(moves(&keel, &sku, &net.east, "hold").len(), 2);
    assert_eq!(moves(&keel, &sku, &net.east, "hold_release").len(), 2);
    wait_timers_fired(&keel, 2);
}

#[test]
fn a_released_hold_gives_its_units_back_and_its_timer_never_fires() {
    let (keel, clock, net, sku) = start("hr", 4);
    let body = hold_body("hr-h1", &net.channel, &[(&sku, 4)], "east", 30);
    expect_status("place hold", place_hold(&keel, &body), 201);
    let released = expect_status("release", keel.post_empty("/v1/holds/hr-h1/release"), 200);
    assert_eq!(released["status"], "released");
    wait_buckets(&keel, &sku, &net.east, (4, 0, 0));
    // Releasing again answers the released hold; the expiry that was set is cancelled.
    let again = expect_status(
        "release again",
        keel.post_empty("/v1/holds/hr-h1/release"),
        200,
    );
    assert_eq!(again["status"], "released");
    clock.advance(3600);
    // A hold placed now expires and fires its own timer: once that fired, the released
    // hold's would have too.
    let later = hold_body("hr-h2", &net.channel, &[(&sku, 1)], "east", 1);
    expect_status("second hold", place_hold(&keel, &later), 201);
    clock.advance(2);
    wait_hold(&keel, "hr-h2", "expired");
    wait_timers_fired(&keel, 1);
    assert_eq!(hold(&keel, "hr-h1")["status"], "released");
    assert_eq!(moves(&keel, &sku, &net.east, "hold_release").len(), 2);
    assert_error(
        &keel.post_empty("/v1/holds/hr-none/release"),
        404,
        "unknown_hold",
    );
    assert_error(&keel.get("/v1/holds/hr-none"), 404, "unknown_hold");
}

#[test]
fn expiry_survives_sigkill_overdue_timers_fire_at_start_and_units_come_back_once() {
    let (mut keel, clock, net, sku) = start("hk", 6);
    for (id, ttl) in [("hk-h1", 10), ("hk-h2", 20)] {
        let body = hold_body(id, &net.channel, &[(&sku, 2)], "east", ttl);
        expect_status("place hold", place_hold(&keel, &body), 201);
    }
    wait_buckets(&keel, &sku, &net.east, (6, 0, 4));
    // h1 expires while the node runs, and the node dies right after.
    clock.advance(10);
    wait_hold(&keel, "hk-h1", "expired");
    keel.kill();
    // h2 becomes overdue while the node is down.
    clock.advance(10);
    keel.restart();
    wait_hold(&keel, "hk-h2", "expired");
    wait_buckets(&keel, &sku, &net.east, (6, 0, 0));
    assert_eq!(
        moves(&keel, &sku, &net.east, "hold_release").len(),
        2,
        "each hold's units came back exactly once"
    );
    keel.kill();
    keel.restart();
    clock.advance(60);
    let late = hold_body("hk-h3", &net.channel, &[(&sku, 1)], "east", 1);
    expect_status("a hold after restarts", place_hold(&keel, &late), 201);
    clock.advance(1);
    wait_hold(&keel, "hk-h3", "expired");
    wait_buckets(&keel, &sku, &net.east, (6, 0, 0));
    assert_eq!(moves(&keel, &sku, &net.east, "hold_release").len(), 3);
}

#[test]
fn an_order_on_a_hold_takes_the_held_units_without_a_second_reservation() {
    let (keel, clock, net, sku) = start("hc", 5);
    let body = hold_body("hc-h1", &net.channel, &[(&sku, 3)], "east", 60);
    expect_status("place hold", place_hold(&keel, &body), 201);
    // Everyone else takes what is not held.
    let rush = keel.place_order("hc-o0", &net.channel, &[(&sku, 5)], "east");
    let rush = expect_status("rush order", rush, 201);
    assert_eq!(int(&list(&rush, "lines")[0], "allocated"), 2, "{rush}");

    let order_on = |id: &str, channel: &str, qty: i64, hold: &str| {
        let mut body = order_body(id, channel, &[(&sku, qty)], "east");
        body["hold"] = json!(hold);
        keel.post("/v1/orders", &body)
    };
    // Refusals change nothing.
    assert_error(
        &order_on("hc-o1", &net.channel, 2, "hc-h1"),
        409,
        "hold_mismatch",
    );
    keel.create_channel("hc-other", &[&net.east]);
    assert_error(
        &order_on("hc-o1", "hc-other", 3, "hc-h1"),
        409,
        "hold_mismatch",
    );
    assert_error(
        &order_on("hc-o1", &net.channel, 3, "hc-none"),
        404,
        "unknown_hold",
    );
    assert_error(
        &order_on("hc-o1", &net.channel, 3, "bad id"),
        400,
        "invalid_id",
    );
    assert_eq!(keel.get("/v1/orders/hc-o1").0, 404, "no order was written");
    assert_eq!(hold(&keel, "hc-h1")["status"], "active");
    wait_buckets(&keel, &sku, &net.east, (5, 2, 3));

    let order = expect_status(
        "order on hold",
        order_on("hc-o1", &net.channel, 3, "hc-h1"),
        201,
    );
    assert_eq!(int(&list(&order, "lines")[0], "allocated"), 3, "{order}");
    assert_eq!(int(&list(&order, "lines")[0], "backordered"), 0);
    let converted = hold(&keel, "hc-h1");
    assert_eq!(converted["status"], "converted");
    assert_eq!(converted["order"], "hc-o1");
    wait_buckets(&keel, &sku, &net.east, (5, 5, 0));
    assert_eq!(
        moves(&keel, &sku, &net.east, "reservation").len(),
        1,
        "only the rush"
    );
    assert_eq!(moves(&keel, &sku, &net.east, "hold_conversion").len(), 1);
    // The same order again is the same order; the hold cannot serve another.
    let again = expect_status("retry", order_on("hc-o1", &net.channel, 3, "hc-h1"), 200);
    assert_eq!(again["id"], "hc-o1");
    assert_error(
        &order_on("hc-o2", &net.channel, 3, "hc-h1"),
        409,
        "hold_expired",
    );
    assert_error(
        &keel.post_empty("/v1/holds/hc-h1/release"),
        409,
        "invalid_transition",
    );
    // Its expiry gives back only what the order did not take: nothing.
    clock.advance(61);
    wait_timers_fired(&keel, 1);
    wait_buckets(&keel, &sku, &net.east, (5, 5, 0));

    // An ended hold cannot be ordered on.
    let body = hold_body("hc-h2", &net.channel, &[(&sku, 1)], "east", 60);
    expect_status("place hold", place_hold(&keel, &body), 201);
    keel.post_empty("/v1/holds/hc-h2/release");
    assert_error(
        &order_on("hc-o3", &net.channel, 1, "hc-h2"),
        409,
        "hold_expired",
    );
}

#[test]
fn bad_hold_requests_get_documented_errors_and_change_nothing() {
    let (keel, _clock, net, sku) = start("hb", 5);
    let with = |change: &dyn Fn(&mut Value)| {
        let mut body = hold_body("hb-h1", &net.channel, &[(&sku, 1)], "east", 60);
        change(&mut body);
        place_hold(&keel, &body)
    };
    assert_error(
        &with(&|b| b["ttl_secs"] = json!(0)),
        400,
        "malformed_request",
    );
    assert_error(
        &with(&|b| b["ttl_secs"] = json!(86_401)),
        400,
        "malformed_request",
    );
    assert_error(
        &with(&|b| b["ttl_secs"] = json!(1.5)),
        400,
        "malformed_request",
    );
    assert_error(
        &with(&|b| b["ttl_secs"] = json!("60")),
        400,
        "malformed_request",
    );
    assert_error(
        &with(&|b| {
            b.as_object_mut().unwrap().remove("ttl_secs");
        }),
        400,
        "malformed_request",
    );
    assert_error(
        &with(&|b| b["lines"][0]["sku"] = json!("hb-nope")),
        404,
        "unknown_sku",
    );
    assert_error(
        &with(&|b| b["channel"] = json!("hb-nope")),
        404,
        "unknown_channel",
    );
    assert_error(
        &with(&|b| b["lines"][0]["quantity"] = json!(0)),
        400,
        "invalid_quantity",
    );
    assert_error(&with(&|b| b["id"] = json!("a.b")), 400, "invalid_id");
    assert_error(&with(&|b| b["lines"] = json!([])), 400, "malformed_request");
    assert_eq!(keel.get("/v1/holds/hb-h1").0, 404);
    let pos = wait_buckets(&keel, &sku, &net.east, (5, 0, 0));
    assert_eq!(
        list(&keel.ledger(&sku, &net.east), "entries").len(),
        1,
        "{pos}"
    );
}

#[test]
fn a_promotion_of_holds_and_orders_never_oversells() {
    let (keel, clock, net, sku) = start("hp", 40);
    keel.receive("hp-r2", &sku, &net.west, 20);
    let port = keel.api().clone();
    let workers: Vec<_> = (0..8u64)
        .map(|w| {
            let (api, channel, sku) = (port.clone(), net.channel.clone(), sku.clone());
            std::thread::spawn(move || {
                let mut rng = Rng::new(w + 1);
                for n in 0..12 {
                    let qty = 1 + (rng.next_u64() % 3) as i64;
                    let id = format!("hp-{w}-{n}");
                    let region = if rng.next_u64().is_multiple_of(2) {
                        "east"
                    } else {
                        "west"
                    };
                    match rng.next_u64() % 4 {
                        // A plain order.
                        0 => {
                            let body = order_body(&id, &channel, &[(&sku, qty)], region);
                            assert!(api.post("/v1/orders", &body).0 < 300);
                        }
                        // A hold, abandoned (it expires) or released.
                        1 | 2 => {
                            let body = hold_body(&id, &channel, &[(&sku, qty)], region, 30);
                            let (status, h) = api.post("/v1/holds", &body);
                            assert_eq!(status, 201, "{h}");
                            if rng.next_u64().is_multiple_of(2) {
                                api.post_empty(&format!("/v1/holds/{id}/release"));
                            }
                        }
                        // A checkout: hold, then the order on it.
                        _ => {
                            let body = hold_body(&id, &channel, &[(&sku, qty)], region, 30);
                            assert_eq!(api.post("/v1/holds", &body).0, 201);
                            let mut order = order_body(&id, &channel, &[(&sku, qty)], region);
                            order["hold"] = json!(id);
                            let (status, o) = api.post("/v1/orders", &order);
                            assert_eq!(status, 201, "{o}");
                        }
                    }
                }
            })
        })
        .collect();
    // While they run: never more promised than on hand, at either location.
    let mut samples = 0;
    while !workers.iter().all(std::thread::JoinHandle::is_finished) {
        for location in [&net.east, &net.west] {
            let pos = keel.position(&sku, location);
            let promised = int(&pos, "allocated") + int(&pos, "held");
            assert!(promised <= int(&pos, "on_hand"), "oversold: {pos}");
            samples += 1;
        }
    }
    for worker in workers {
        worker.join().expect("a worker panicked");
    }
    assert!(samples > 0);
    // Every hold left ends: what it kept comes back; orders keep theirs.
    clock.advance(31);
    for location in [&net.east, &net.west] {
        eventually(&format!("{location} holds nothing"), || {
            let pos = check_position(&keel, &sku, location)?;
            if int(&pos, "held") == 0 {
                Ok(pos)
            } else {
                Err(pos.to_string())
            }
        });
    }
    assert!(
        !moves(&keel, &sku, &net.east, "hold_conversion").is_empty()
            || !moves(&keel, &sku, &net.west, "hold_conversion").is_empty(),
        "some checkouts converted their holds"
    );
}
