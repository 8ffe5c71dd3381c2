//! Archiving closed orders and forgetting old command ids, end to end against the real binary.
//!
//! Scenario: orders that were delivered or cancelled longer than `--archive-after-secs` ago
//! leave the live keys for the archive. They stay readable (`GET /v1/orders/{id}`, their
//! fulfillments), a retried placement of the same id is still answered from them, and a
//! different body under that id is still a conflict. Open orders are never archived. The node
//! dies half-way through an archive sweep (the hidden `--crash-at archiving`) and nothing is
//! lost or doubled. Ids of commands between actors are forgotten after their retention, a
//! client's receipt ids never. `keel compact` rewrites a stopped node's store into fresh files
//! with every order, position and ledger entry kept, and refuses a store a node is using. Time
//! is the node's clock file, moved on by the test.

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::invariants::check_position;
use fixtures::{
    assert_error, eventually, expect_status, int, list, temp_dir, text, Api, Keel, Network,
    TestClock, Transport,
};

const ARCHIVE_AFTER: u64 = 3600;

/// A node on the embedded bus reading a clock file, archiving after an hour, with `sku`
/// stocked at the east DC.
fn start(prefix: &str, extra: &[&str]) -> (Keel, TestClock, Network, String, Vec<String>) {
    let dir = temp_dir();
    let clock = TestClock::in_dir(dir.path());
    let mut args: Vec<String> = clock.args().to_vec();
    args.extend(["--archive-after-secs".into(), ARCHIVE_AFTER.to_string()]);
    let base = args.clone();
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    let flags: Vec<&str> = args.iter().map(String::as_str).collect();
    let keel = Keel::start_on(Transport::of_this_run(), dir, &flags);
    let net = Network::two_dcs(&keel, prefix);
    let sku = format!("{prefix}-A");
    keel.create_sku(&sku);
    keel.receive(&format!("{prefix}-r1"), &sku, &net.east, 100);
    (keel, clock, net, sku, base)
}

/// Places an order of one unit and walks it to delivered; answers the order.
fn delivered(api: &Api, id: &str, channel: &str, sku: &str) -> serde_json::Value {
    let order = expect_status(
        "place",
        api.place_order(id, channel, &[(sku, 1)], "east"),
        201,
    );
    for f in list(&order, "fulfillments") {
        api.advance(text(f, "id"), &["picked", "packed", "shipped", "delivered"]);
    }
    api.wait_order_status(id, "delivered")
}

/// Polls `/metrics` until the counter `name` is at least `at_least`; answers its value.
#[track_caller]
fn wait_counter(api: &Api, name: &str, at_least: i64) -> i64 {
    eventually(&format!("{name} >= {at_least}"), || {
        let (_, metrics) = api.get("/metrics");
        let text = metrics.as_str().unwrap_or_default();
        let value = text
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse::<i64>().ok())
            .unwrap_or(-1);
        if value >= at_least {
            Ok(value)
        } else {
            Err(format!("{name} {value}"))
        }
    })
}

#[track_caller]
fn wait_archived(api: &Api, at_least: i64) -> i64 {
    wait_counter(api, "keel_orders_archived_total", at_least)
}

#[test]
fn closed_orders_move_to_the_archive_and_stay_readable_and_idempotent() {
    let (mut keel, clock, net, sku, _) = start("ar", &[]);
    let done = delivered(&keel, "ar-o1", &net.channel, &sku);
    let cancelled = expect_status(
        "place",
        keel.place_order("ar-o2", &net.channel, &[(&sku, 2)], "east"),
        201,
    );
    expect_status("cancel", keel.cancel("ar-o2"), 200);
    let open = expect_status(
        "place",
        keel.place_order("ar-o3", &net.channel, &[(&sku, 3)], "east"),
        201,
    );
    let cancelled = keel.wait_order_status(text(&cancelled, "id"), "cancelled");

    clock.advance(ARCHIVE_AFTER - 10);
    clock.advance(11);
    assert_eq!(wait_archived(&keel, 2), 2, "the open order stays live");
    // Readable as before, also after a restart.
    for _ in 0..2 {
        assert_eq!(keel.order("ar-o1"), done);
        assert_eq!(keel.order("ar-o2"), cancelled);
        let f = &list(&done, "fulfillments")[0];
        assert_eq!(keel.fulfillment(text(f, "id"))["status"], "delivered");
        keel.kill();
        keel.restart();
    }
    // A retry of the placement is answered from the archive; another body is a conflict.
    let again = keel.place_order("ar-o1", &net.channel, &[(&sku, 1)], "east");
    assert_eq!(expect_status("retry", again, 200), done);
    let other = keel.place_order("ar-o1", &net.channel, &[(&sku, 5)], "east");
    assert_error(&other, 409, "conflict");
    assert_error(&keel.cancel("ar-o1"), 409, "invalid_transition");
    let f = &list(&done, "fulfillments")[0];
    let repeat = keel.confirm(text(f, "id"), "delivered");
    assert_eq!(
        repeat.0, 200,
        "repeating the last step answers it: {repeat:?}"
    );

    // The open order is archived once it closes, an hour later.
    let f = &list(&open, "fulfillments")[0];
    keel.advance(text(f, "id"), &["picked", "packed", "shipped", "delivered"]);
    keel.wait_order_status("ar-o3", "delivered");
    clock.advance(ARCHIVE_AFTER + 1);
    wait_archived(&keel, 1);
    assert_eq!(keel.order("ar-o3")["status"], "delivered");
    let pos = check_position(&keel, &sku, &net.east).unwrap();
    assert_eq!((int(&pos, "on_hand"), int(&pos, "allocated")), (96, 0));
}

#[test]
fn nothing_is_lost_or_doubled_when_the_node_dies_half_way_through_archiving() {
    const ORDERS: usize = 12;
    let (mut keel, clock, net, sku, base) = start("ac", &[]);
    let orders: Vec<_> = (0..ORDERS)
        .map(|n| delivered(&keel, &format!("ac-o{n}"), &net.channel, &sku))
        .collect();
    let mut crashing = base.clone();
    crashing.extend(["--crash-at".to_owned(), "archiving".to_owned()]);
    keel.set_extra_args(&crashing.iter().map(String::as_str).collect::<Vec<_>>());
    keel.restart();
    clock.advance(ARCHIVE_AFTER + 1);
    eventually("the node dies in its archive sweep", || {
        if keel.has_exited() {
            Ok(())
        } else {
            Err("still running".into())
        }
    });
    assert!(keel.log_tail(40).contains("crash point reached"));
    keel.set_extra_args(&base.iter().map(String::as_str).collect::<Vec<_>>());
    keel.restart();
    // The sweep that died had half of them on disk: the restarted node archives the rest.
    let rest = (ORDERS - ORDERS.div_ceil(2)) as i64;
    assert_eq!(wait_archived(&keel, rest), rest);
    for order in &orders {
        assert_eq!(&keel.order(text(order, "id")), order);
    }
    let pos = check_position(&keel, &sku, &net.east).unwrap();
    assert_eq!(
        (int(&pos, "on_hand"), int(&pos, "allocated")),
        (100 - ORDERS as i64, 0)
    );
    // A later sweep archives one more order, and none of these again.
    let last = delivered(&keel, "ac-last", &net.channel, &sku);
    clock.advance(ARCHIVE_AFTER + 1);
    assert_eq!(wait_archived(&keel, rest + 1), rest + 1);
    assert_eq!(keel.order("ac-last"), last);
}

#[test]
fn ids_between_actors_are_forgotten_after_their_retention_and_receipt_ids_never() {
    let (keel, clock, net, sku, _) = start("af", &["--dedupe-retention-secs", "60"]);
    for n in 0..4 {
        delivered(&keel, &format!("af-o{n}"), &net.channel, &sku);
    }
    let receipt = fixtures::receipt_body("af-r1", &sku, &net.east, 100);
    clock.advance(121);
    let forgotten = wait_counter(&keel, "keel_store_dedupe_expired_total", 1);
    assert!(
        forgotten >= 4,
        "each order's reservation id at least: {forgotten}"
    );
    // A receipt posted again is still recognised: the first answer again, no second receipt.
    let again = expect_status(
        "receipt again",
        keel.post("/v1/inventory/receipts", &receipt),
        200,
    );
    assert_eq!(int(&again["position"], "on_hand"), 100, "{again}");
    let pos = check_position(&keel, &sku, &net.east).unwrap();
    assert_eq!((int(&pos, "on_hand"), int(&pos, "allocated")), (96, 0));
    // An order placed again is answered from the order itself.
    let retry = keel.place_order("af-o0", &net.channel, &[(&sku, 1)], "east");
    assert_eq!(expect_status("retry", retry, 200)["status"], "delivered");
}

/// Runs `keel compact` on `data_dir` with `flags`; answers whether it succeeded, with its
/// output.
fn compact(data_dir: &std::path::Path, flags: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(fixtures::binary())
        .arg("compact")
        .arg("--data-dir")
        .arg(data_dir)
        .args(flags)
        .output()
        .expect("run keel compact");
    let text = String::from_utf8_lossy(if out.status.success() {
        &out.stdout
    } else {
        &out.stderr
    });
    (out.status.success(), text.into_owned())
}

#[test]
fn a_compacted_store_keeps_every_order_position_and_ledger_entry() {
    let (mut keel, clock, net, sku, _) = start("cp", &[]);
    let done = delivered(&keel, "cp-o1", &net.channel, &sku);
    expect_status(
        "place",
        keel.place_order("cp-o2", &net.channel, &[(&sku, 2)], "east"),
        201,
    );
    // Archived too, so that compaction copies the archive as well.
    clock.advance(ARCHIVE_AFTER + 1);
    wait_archived(&keel, 1);
    let open = keel.order("cp-o2");
    let position = check_position(&keel, &sku, &net.east).expect("consistent before");
    let ledger = keel.ledger(&sku, &net.east);

    let (compacted, said) = compact(&keel.data_dir(), &[]);
    assert!(
        !compacted,
        "a store a running node holds is refused: {said}"
    );
    assert_eq!(keel.order("cp-o2"), open, "and the node goes on");

    let (_, clean) = keel.terminate();
    assert!(clean, "SIGTERM stops the node cleanly");
    // Rewritten compressed: the node, started without the flag, runs on it as it is.
    let (compacted, said) = compact(&keel.data_dir(), &["--store-compression", "true"]);
    assert!(compacted, "keel compact failed: {said}");
    let report: serde_json::Value = serde_json::from_str(&said).expect("a JSON report");
    assert!(
        int(&report, "keys") > 0 && int(&report, "bytes_after") > 0,
        "{report}"
    );
    assert_eq!(report["compressed"], true, "{report}");

    keel.restart();
    assert_eq!(keel.order("cp-o1"), done);
    assert_eq!(keel.order("cp-o2"), open);
    assert_eq!(
        check_position(&keel, &sku, &net.east).expect("consistent after"),
        position
    );
    assert_eq!(keel.ledger(&sku, &net.east), ledger);
    expect_status(
        "a write on the compressed store",
        keel.place_order("cp-o3", &net.channel, &[(&sku, 1)], "east"),
        201,
    );
}
