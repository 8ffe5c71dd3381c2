//! Bad input is refused with the documented status and error code, and changes nothing.
//!
//! Scenario: a small world — one location with stock, a channel, a SKU and one released order.
//! Malformed JSON, missing fields, wrong types, invalid ids, out-of-range quantities, references
//! to unknown catalog entries, unknown orders, fulfillments and routes, out-of-order warehouse
//! confirmations and oversized bodies each get their documented
//! `{"error":{"code","message"}}` reply. Afterwards the catalog, the position, its ledger, the
//! order and its fulfillment read exactly as before, and the server still answers `/healthz`.

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::{check_error, expect_status, list, order_body, receipt_body, text, Keel, Resp};
use serde_json::{json, Value};

/// Identifiers that break the rule "1–64 characters of `[A-Za-z0-9_-]`".
fn invalid_ids() -> Vec<(&'static str, String)> {
    vec![
        ("empty", String::new()),
        ("with a space", "a b".into()),
        ("65 characters", "x".repeat(65)),
        ("non-ASCII", "skü".into()),
        ("with a dot", "a.b".into()),
    ]
}

/// Quantities outside "whole numbers from 1 to 1,000,000,000".
fn invalid_quantities() -> Vec<Value> {
    vec![
        json!(0),
        json!(-1),
        json!(1_000_000_000_000_i64),
        json!(1.5),
    ]
}

/// The world the bad requests are thrown at.
struct World {
    keel: Keel,
    sku: String,
    location: String,
    channel: String,
    order: String,
    fulfillment: String,
}

impl World {
    /// `{p}-A` with 10 on hand at `{p}-east`, channel `{p}-web`, order `{p}-o1` for 2, released.
    fn new(p: &str) -> World {
        let keel = Keel::start();
        let (sku, location, channel, order) = (
            format!("{p}-A"),
            format!("{p}-east"),
            format!("{p}-web"),
            format!("{p}-o1"),
        );
        keel.create_location(&location, "east", 1);
        keel.create_channel(&channel, &[&location]);
        keel.create_sku(&sku);
        keel.receive(&format!("{p}-r1"), &sku, &location, 10);
        let placed = expect_status(
            "place order",
            keel.place_order(&order, &channel, &[(&sku, 2)], "east"),
            201,
        );
        let fulfillment = text(&list(&placed, "fulfillments")[0], "id").to_string();
        keel.wait_order_status(&order, "released");
        World {
            keel,
            sku,
            location,
            channel,
            order,
            fulfillment,
        }
    }

    /// Everything a refused request must leave as it was.
    fn snapshot(&self) -> Value {
        let k = &self.keel;
        let get = |path: String| expect_status(&format!("GET {path}"), k.get(&path), 200);
        json!({
            "skus": get("/v1/skus".into()),
            "locations": get("/v1/locations".into()),
            "channels": get("/v1/channels".into()),
            "location": get(format!("/v1/locations/{}", self.location)),
            "inventory": get(format!("/v1/inventory/{}", self.sku)),
            "position": k.position(&self.sku, &self.location),
            "ledger": k.ledger(&self.sku, &self.location),
            "order": k.order(&self.order),
            "fulfillment": k.fulfillment(&self.fulfillment),
        })
    }

    #[track_caller]
    fn assert_unchanged_and_healthy(&self, before: &Value) {
        let after = self.snapshot();
        for (key, was) in before.as_object().expect("snapshot is an object") {
            assert_eq!(&after[key], was, "refused requests changed `{key}`");
        }
        let health = expect_status("healthz", self.keel.get("/healthz"), 200);
        assert_eq!(health["status"], "ok", "{health}");
    }

    fn post(&self, path: &str, body: Value) -> Resp {
        self.keel.post(path, &body)
    }

    /// POSTs `text` as is, declared as JSON.
    fn post_text(&self, path: &str, text: &str) -> Resp {
        self.keel
            .post_raw(path, text.as_bytes(), "application/json")
    }

    fn receipt(&self, id: &str, sku: &str, location: &str, qty: Value) -> Resp {
        let mut body = receipt_body(id, sku, location, 1);
        body["quantity"] = qty;
        self.post("/v1/inventory/receipts", body)
    }

    fn order_with(&self, id: &str, channel: &str, lines: Value) -> Resp {
        let mut body = order_body::<&str>(id, channel, &[], "east");
        body["lines"] = lines;
        self.post("/v1/orders", body)
    }
}

/// Collects every mismatch, so one run reports all wrong answers at once.
#[derive(Default)]
struct Expectations(Vec<String>);

impl Expectations {
    fn refused(&mut self, what: &str, reply: Resp, status: u16, code: &str) {
        if let Err(problem) = check_error(&reply, status, code) {
            self.0.push(format!("{what}: {problem}"));
        }
    }

    #[track_caller]
    fn assert_all_met(self) {
        assert!(
            self.0.is_empty(),
            "{} bad requests got the wrong answer:\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

#[test]
fn bad_catalog_and_inventory_requests_are_refused_and_change_nothing() {
    let w = World::new("bc");
    let longest = "L".repeat(64);
    expect_status(
        "64-character id is valid",
        w.keel
            .post("/v1/skus", &json!({"id": longest, "name": "x"})),
        201,
    );
    let before = w.snapshot();
    let mut e = Expectations::default();
    let (sku, loc) = (w.sku.as_str(), w.location.as_str());

    e.refused(
        "sku: not JSON",
        w.post_text("/v1/skus", r#"{"id": "bc-B", "name": "#),
        400,
        "malformed_request",
    );
    e.refused(
        "sku: missing name",
        w.post("/v1/skus", json!({"id": "bc-B"})),
        400,
        "malformed_request",
    );
    e.refused(
        "sku: name is a number",
        w.post("/v1/skus", json!({"id": "bc-B", "name": 5})),
        400,
        "malformed_request",
    );
    e.refused(
        "sku: body is an array",
        w.post("/v1/skus", json!([{"id": "bc-B", "name": "x"}])),
        400,
        "malformed_request",
    );
    let location = json!({"id": "bc-west", "name": "West", "region": "west", "priority": "high"});
    e.refused(
        "location: priority is a string",
        w.post("/v1/locations", location),
        400,
        "malformed_request",
    );
    let channel = json!({"id": "bc-web2", "name": "Web", "locations": [loc, "bc-nowhere"]});
    e.refused(
        "channel: unknown location",
        w.post("/v1/channels", channel),
        404,
        "unknown_location",
    );
    for (what, id) in invalid_ids() {
        let sku_body = json!({"id": id, "name": "x"});
        e.refused(
            &format!("sku id {what}"),
            w.post("/v1/skus", sku_body),
            400,
            "invalid_id",
        );
        let location = json!({"id": id, "name": "x", "region": "east", "priority": 1});
        e.refused(
            &format!("location id {what}"),
            w.post("/v1/locations", location),
            400,
            "invalid_id",
        );
        let channel = json!({"id": id, "name": "x", "locations": [loc]});
        e.refused(
            &format!("channel id {what}"),
            w.post("/v1/channels", channel),
            400,
            "invalid_id",
        );
        e.refused(
            &format!("receipt id {what}"),
            w.receipt(&id, sku, loc, json!(1)),
            400,
            "invalid_id",
        );
    }

    e.refused(
        "receipt: not JSON",
        w.post_text("/v1/inventory/receipts", "receipt please"),
        400,
        "malformed_request",
    );
    let missing = json!({"receipt_id": "bc-r9", "sku": sku, "location": loc});
    e.refused(
        "receipt: missing quantity",
        w.post("/v1/inventory/receipts", missing),
        400,
        "malformed_request",
    );
    e.refused(
        "receipt: quantity is a string",
        w.receipt("bc-r9", sku, loc, json!("5")),
        400,
        "malformed_request",
    );
    for qty in invalid_quantities() {
        e.refused(
            &format!("receipt quantity {qty}"),
            w.receipt("bc-r9", sku, loc, qty),
            400,
            "invalid_quantity",
        );
    }
    e.refused(
        "receipt: unknown sku",
        w.receipt("bc-r9", "bc-nothing", loc, json!(1)),
        404,
        "unknown_sku",
    );
    e.refused(
        "receipt: unknown location",
        w.receipt("bc-r9", sku, "bc-nowhere", json!(1)),
        404,
        "unknown_location",
    );

    // On hand is 10, allocated 2.
    for (what, delta, status, code) in [
        ("zero delta", 0, 400, "invalid_quantity"),
        (
            "delta beyond the limit",
            -1_000_000_001,
            400,
            "invalid_quantity",
        ),
        ("on_hand negative", -11, 409, "insufficient_stock"),
        ("on_hand below allocated", -9, 409, "insufficient_stock"),
    ] {
        let body = json!({"adjustment_id": "bc-adj", "sku": sku, "location": loc, "delta": delta, "reason": "count"});
        e.refused(
            &format!("adjustment: {what}"),
            w.post("/v1/inventory/adjustments", body),
            status,
            code,
        );
    }
    let body = json!({"adjustment_id": "bc-adj", "sku": "bc-nothing", "location": loc, "delta": 1, "reason": "count"});
    e.refused(
        "adjustment: unknown sku",
        w.post("/v1/inventory/adjustments", body),
        404,
        "unknown_sku",
    );

    e.refused(
        "inventory of unknown sku",
        w.keel.get("/v1/inventory/bc-nothing"),
        404,
        "unknown_sku",
    );
    let at_unknown = w.keel.get(&format!("/v1/inventory/{sku}/bc-nowhere"));
    e.refused(
        "position at unknown location",
        at_unknown,
        404,
        "unknown_location",
    );
    e.refused(
        "unknown location",
        w.keel.get("/v1/locations/bc-nowhere"),
        404,
        "unknown_location",
    );

    e.assert_all_met();
    w.assert_unchanged_and_healthy(&before);
}

#[test]
fn bad_orders_are_refused_and_change_nothing() {
    let w = World::new("bo");
    let before = w.snapshot();
    let mut e = Expectations::default();
    let (sku, channel) = (w.sku.as_str(), w.channel.as_str());
    let one = |qty: Value| json!([{"sku": sku, "quantity": qty}]);

    e.refused(
        "not JSON",
        w.post_text("/v1/orders", r#"{"id": "bo-o2", "lines": [}"#),
        400,
        "malformed_request",
    );
    e.refused(
        "empty body",
        w.post_text("/v1/orders", ""),
        400,
        "malformed_request",
    );
    let no_ship_to = json!({"id": "bo-o2", "channel": channel, "lines": one(json!(1))});
    e.refused(
        "missing ship_to",
        w.post("/v1/orders", no_ship_to),
        400,
        "malformed_request",
    );
    let no_lines = json!({"id": "bo-o2", "channel": channel, "ship_to": {"region": "east"}});
    e.refused(
        "missing lines",
        w.post("/v1/orders", no_lines),
        400,
        "malformed_request",
    );
    e.refused(
        "lines is an object",
        w.order_with("bo-o2", channel, json!({"sku": sku, "quantity": 1})),
        400,
        "malformed_request",
    );
    e.refused(
        "quantity is a string",
        w.order_with("bo-o2", channel, one(json!("2"))),
        400,
        "malformed_request",
    );
    e.refused(
        "empty lines",
        w.order_with("bo-o2", channel, json!([])),
        400,
        "malformed_request",
    );
    let twice = json!([{"sku": sku, "quantity": 1}, {"sku": sku, "quantity": 2}]);
    e.refused(
        "duplicate sku in lines",
        w.order_with("bo-o2", channel, twice),
        400,
        "malformed_request",
    );
    for qty in invalid_quantities() {
        e.refused(
            &format!("quantity {qty}"),
            w.order_with("bo-o2", channel, one(qty)),
            400,
            "invalid_quantity",
        );
    }
    for (what, id) in invalid_ids() {
        e.refused(
            &format!("order id {what}"),
            w.order_with(&id, channel, one(json!(1))),
            400,
            "invalid_id",
        );
    }
    e.refused(
        "unknown channel",
        w.order_with("bo-o2", "bo-nochannel", one(json!(1))),
        404,
        "unknown_channel",
    );
    let unknown_sku = json!([{"sku": sku, "quantity": 1}, {"sku": "bo-nothing", "quantity": 1}]);
    e.refused(
        "unknown sku",
        w.order_with("bo-o2", channel, unknown_sku),
        404,
        "unknown_sku",
    );

    e.refused(
        "GET unknown order",
        w.keel.get("/v1/orders/bo-o2"),
        404,
        "unknown_order",
    );
    e.refused(
        "cancel unknown order",
        w.keel.cancel("bo-o2"),
        404,
        "unknown_order",
    );

    e.assert_all_met();
    w.assert_unchanged_and_healthy(&before);
}

#[test]
fn bad_confirmations_and_unknown_routes_are_refused_and_change_nothing() {
    let w = World::new("bf");
    let before = w.snapshot();
    let mut e = Expectations::default();
    let f = w.fulfillment.as_str();

    e.refused(
        "GET unknown fulfillment",
        w.keel.get("/v1/fulfillments/bf-o9-F1"),
        404,
        "unknown_fulfillment",
    );
    e.refused(
        "confirm unknown fulfillment",
        w.keel.confirm("bf-o9-F1", "picked"),
        404,
        "unknown_fulfillment",
    );
    for step in ["packed", "shipped", "delivered"] {
        e.refused(
            &format!("{step} before picked"),
            w.keel.confirm(f, step),
            409,
            "invalid_transition",
        );
    }
    e.refused(
        "unknown step",
        w.keel.confirm("x", "flying"),
        404,
        "not_found",
    );
    e.refused(
        "unknown step of a real fulfillment",
        w.keel.confirm(f, "flying"),
        404,
        "not_found",
    );
    e.refused("unknown route", w.keel.get("/v1/nothing"), 404, "not_found");
    e.refused(
        "PUT on a POST route",
        w.keel.put("/v1/orders", &json!({})),
        405,
        "method_not_allowed",
    );

    e.assert_all_met();
    w.assert_unchanged_and_healthy(&before);
}

#[test]
fn bodies_over_64_kib_are_refused_with_413() {
    let w = World::new("bz");
    // Just under the limit is fine: padding is JSON whitespace around a valid create.
    let padded = format!(
        "{{\"id\":\"bz-B\",{}\"name\":\"Padded\"}}",
        " ".repeat(60 * 1024)
    );
    expect_status(
        "60 KiB body",
        w.keel
            .post_raw("/v1/skus", padded.as_bytes(), "application/json"),
        201,
    );
    let before = w.snapshot();
    let mut e = Expectations::default();

    let name = "n".repeat(70 * 1024);
    e.refused(
        "70 KiB sku",
        w.post("/v1/skus", json!({"id": "bz-C", "name": name})),
        413,
        "payload_too_large",
    );
    let receipt = format!(
        "{{\"receipt_id\":\"bz-r2\",\"sku\":\"{}\",\"location\":\"{}\",{}\"quantity\":1}}",
        w.sku,
        w.location,
        " ".repeat(100 * 1024)
    );
    e.refused(
        "100 KiB receipt",
        w.post_text("/v1/inventory/receipts", &receipt),
        413,
        "payload_too_large",
    );
    let lines: Vec<Value> = (0..2_000)
        .map(|i| json!({"sku": format!("bz-sku-{i:05}"), "quantity": 1}))
        .collect();
    let order =
        json!({"id": "bz-o2", "channel": w.channel, "lines": lines, "ship_to": {"region": "east"}});
    e.refused(
        "order with 2000 lines",
        w.post("/v1/orders", order),
        413,
        "payload_too_large",
    );

    e.assert_all_met();
    w.assert_unchanged_and_healthy(&before);
}

/// The curl examples of docs/http-api.md use `-d`, which declares
/// `application/x-www-form-urlencoded`: a JSON body is taken as JSON whatever its declared type.
#[test]
fn json_bodies_are_accepted_whatever_their_content_type() {
    let keel = Keel::start();
    for (id, content_type) in [
        ("ct-B", "application/x-www-form-urlencoded"),
        ("ct-C", "text/plain"),
    ] {
        let body = json!({"id": id, "name": "Mug"}).to_string();
        let reply = keel.post_raw("/v1/skus", body.as_bytes(), content_type);
        expect_status(&format!("create sku as {content_type}"), reply, 201);
    }
}
