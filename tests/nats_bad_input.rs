//! Bad input on every inbound NATS subject: a request-reply subject answers the documented
//! error code (never a timeout); a fire-and-forget subject sets the message aside on its
//! documented dead-letter subject with the code and the reason (never a silent drop). Nothing
//! changes, and the node keeps serving throughout.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::time::Duration;

use async_nats::jetstream;
use fixtures::nats::replay;
use fixtures::{expect_2xx, list, text, Keel, Network};
use futures::StreamExt;
use keel_protocol::subjects;
use serde_json::{json, Value};

const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// An answer from the node: its `Keel-Status`, its `Keel-Error`, and the body.
#[derive(Debug)]
struct Answer {
    status: String,
    code: Option<String>,
    body: Value,
}

async fn ask(client: &async_nats::Client, subject: &str, payload: Vec<u8>) -> Answer {
    ask_with(client, subject, async_nats::HeaderMap::new(), payload).await
}

async fn ask_with(
    client: &async_nats::Client,
    subject: &str,
    headers: async_nats::HeaderMap,
    payload: Vec<u8>,
) -> Answer {
    let request = async_nats::Request::new()
        .headers(headers)
        .payload(payload.into())
        .timeout(Some(REPLY_TIMEOUT));
    let reply = client
        .send_request(subject.to_owned(), request)
        .await
        .unwrap_or_else(|e| panic!("{subject}: no reply ({e})"));
    let header = |name: &str| {
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let answer = Answer {
        status: header("Keel-Status").unwrap_or_default(),
        code: header("Keel-Error"),
        body: serde_json::from_slice(&reply.payload).unwrap_or(Value::Null),
    };
    if answer.status == "error" {
        assert_eq!(
            answer.body["error"]["code"].as_str(),
            answer.code.as_deref(),
            "{subject}: the header and the body name the same code: {answer:?}"
        );
        assert!(
            answer.body["error"]["message"].is_string(),
            "{subject}: {answer:?}"
        );
    }
    answer
}

#[track_caller]
fn assert_code(answer: &Answer, code: &str, what: &str) {
    assert_eq!(answer.status, "error", "{what}: {answer:?}");
    assert_eq!(answer.code.as_deref(), Some(code), "{what}: {answer:?}");
}

/// Publishes through JetStream (as a WMS adapter does) and waits for the stream's ack.
async fn publish(js: &jetstream::Context, subject: &str, msg_id: Option<&str>, body: &[u8]) {
    let mut headers = async_nats::HeaderMap::new();
    if let Some(id) = msg_id {
        headers.insert("Nats-Msg-Id", id);
    }
    js.publish_with_headers(subject.to_owned(), headers, body.to_vec().into())
        .await
        .expect("publish")
        .await
        .expect("the stream acknowledges");
}

/// Reads dead letters until `count` arrived (or 20 s passed): `("{dlq subject} <- {original
/// subject}", error code, reason)`, in order.
async fn dead_letters(js: &jetstream::Context, count: usize) -> Vec<(String, String, String)> {
    let mut messages = replay(js, "KEEL_DEAD_LETTERS", "keel.v1.dlq.>").await;
    let mut letters = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while letters.len() < count {
        let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, messages.next()).await else {
            break;
        };
        let header = |name: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(name))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default()
        };
        letters.push((
            format!("{} <- {}", m.subject, header("Keel-Original-Subject")),
            header("Keel-Error"),
            header("Keel-Dead-Letter-Reason"),
        ));
    }
    letters
}

#[test]
fn bad_messages_on_every_inbound_subject_get_their_documented_error() {
    let mut keel = Keel::start_on_nats();
    let url = keel.nats().url();
    let net = Network::two_dcs(&keel, "bi");
    keel.create_sku("bi-sku");
    keel.receive("bi-r1", "bi-sku", &net.east, 5);
    expect_2xx(
        "place",
        keel.place_order("bi-o1", &net.channel, &[("bi-sku", 2)], "east"),
    );
    let order = keel.wait_order_status("bi-o1", "released");
    let fulfillment = text(&list(&order, "fulfillments")[0], "id").to_owned();
    let position_before = keel.position("bi-sku", &net.east);

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = async_nats::connect(url.as_str()).await.expect("connect");
        let js = jetstream::new(client.clone());

        // Request-reply: malformed JSON on every API subject.
        for subject in subjects::ALL {
            let answer = ask(&client, subject, b"{oops".to_vec()).await;
            let lists = subject.ends_with(".list");
            if lists {
                assert_eq!(answer.status, "ok", "{subject} takes no body: {answer:?}");
            } else {
                assert_code(&answer, "malformed_request", subject);
            }
        }
        // A body of the wrong shape, and one that is not an object at all.
        let answer = ask(&client, subjects::ORDERS_PLACE, br#"{"id":"x"}"#.to_vec()).await;
        assert_code(&answer, "malformed_request", "an order without lines");
        let answer = ask(&client, subjects::INVENTORY_RECEIPT, b"[1,2]".to_vec()).await;
        assert_code(&answer, "malformed_request", "an array for a receipt");

        // Another version, and an operation that does not exist.
        let body = json!({"id": "bi-o1"}).to_string().into_bytes();
        let answer = ask(&client, "keel.v2.api.orders.get", body.clone()).await;
        assert_code(&answer, "unsupported_version", "keel.v2");
        let answer = ask(&client, "keel.v1.api.orders.nope", body).await;
        assert_code(&answer, "not_found", "an unknown operation");

        // Unknown ids and bad values.
        let cases: [(&str, Value, &str); 8] = [
            (subjects::ORDERS_GET, json!({"id": "bi-nope"}), "unknown_order"),
            (subjects::ORDERS_CANCEL, json!({"id": "bi-nope"}), "unknown_order"),
            (
                subjects::ORDERS_PLACE,
                json!({"id": "bi-o2", "channel": net.channel, "ship_to": {"region": "east"},
                       "lines": [{"sku": "bi-none", "quantity": 1}]}),
                "unknown_sku",
            ),
            (
                subjects::ORDERS_PLACE,
                json!({"id": "bi-o3", "channel": "bi-nochannel", "ship_to": {"region": "east"},
                       "lines": [{"sku": "bi-sku", "quantity": 1}]}),
                "unknown_channel",
            ),
            (
                subjects::INVENTORY_RECEIPT,
                json!({"receipt_id": "bi-r2", "sku": "bi-sku", "location": "bi-noloc", "quantity": 1}),
                "unknown_location",
            ),
            (
                subjects::INVENTORY_RECEIPT,
                json!({"receipt_id": "bi-r3", "sku": "bi-sku", "location": net.east, "quantity": -4}),
                "invalid_quantity",
            ),
            (
                subjects::FULFILLMENTS_CONFIRM,
                json!({"id": "bi-nope-F1", "step": "picked"}),
                "unknown_fulfillment",
            ),
            (
                subjects::FULFILLMENTS_CONFIRM,
                json!({"id": fulfillment, "step": "shipped"}),
                "invalid_transition",
            ),
        ];
        for (subject, body, code) in cases {
            let answer = ask(&client, subject, body.to_string().into_bytes()).await;
            assert_code(&answer, code, &format!("{subject} {body}"));
        }
        let answer = ask(
            &client,
            subjects::SKUS_CREATE,
            json!({"id": "has space", "name": "x"}).to_string().into_bytes(),
        )
        .await;
        assert_code(&answer, "invalid_id", "an id with a space");

        // Oversized: above Keel's request limit, then above the server's payload limit (the
        // client refuses to send that; the node never sees it).
        let big = json!({"id": "bi-big", "name": "x".repeat(100 * 1024)}).to_string();
        let answer = ask(&client, subjects::SKUS_CREATE, big.into_bytes()).await;
        assert_code(&answer, "payload_too_large", "a 100 KiB request");
        let huge = vec![b' '; 2 * 1024 * 1024];
        let refused = client
            .request(subjects::SKUS_CREATE.to_owned(), huge.into())
            .await;
        assert!(refused.is_err(), "a 2 MiB request is refused by the client");

        // Fire-and-forget: warehouse confirmations that cannot be applied.
        let east = format!("keel.v1.wms.{}.confirm", net.east);
        let west = format!("keel.v1.wms.{}.confirm", net.west);
        let step = |id: &str, step: &str| json!({"id": id, "step": step}).to_string();
        publish(&js, &east, Some("bi-w1"), b"{oops").await;
        publish(&js, &east, None, step(&fulfillment, "picked").as_bytes()).await;
        publish(&js, &east, Some("bi-w3"), step("bi-nope-F1", "picked").as_bytes()).await;
        publish(&js, &west, Some("bi-w4"), step(&fulfillment, "picked").as_bytes()).await;
        publish(&js, &east, Some("bi-w5"), step(&fulfillment, "shipped").as_bytes()).await;
        publish(&js, &east, Some("bi-w6"), step(&fulfillment, "teleported").as_bytes()).await;
        // And garbage as a command batch for order bi-o1's partition (what another node
        // would send): refused with its code, and set aside for an operator.
        let partition = keel_cluster::Partitioning::new(128).of("o/bi-o1");
        let command = keel_protocol::command_batch_subject(partition);
        let answer = ask(&client, &command, b"not a command".to_vec()).await;
        assert_code(&answer, "malformed_request", "a command batch that does not decode");
        // A batch whose epochs header does not parse: refused and set aside the same way.
        let epochs = |value: &str| {
            let mut headers = async_nats::HeaderMap::new();
            headers.insert(keel_protocol::EPOCHS_HEADER, value);
            headers
        };
        let answer = ask_with(&client, &command, epochs("7=seven"), b"[]".to_vec()).await;
        assert_code(&answer, "malformed_request", "an epochs header that does not parse");
        // A stale owner: once a batch from partition 7's owner at epoch 1000 was applied, one
        // from epoch 999 (the owner before) is refused, and counted.
        let answer = ask_with(&client, &command, epochs("7=1000"), b"[]".to_vec()).await;
        assert_eq!(answer.status, "ok", "{answer:?}");
        let answer = ask_with(&client, &command, epochs("3=1,7=999"), b"[]".to_vec()).await;
        assert_code(&answer, "stale_epoch", "epoch 999");

        let letters = dead_letters(&js, 8).await;
        let expected = [
            (&east, "malformed_request", "not a confirmation"),
            (&east, "malformed_request", "Nats-Msg-Id"),
            (&east, "unknown_fulfillment", "bi-nope-F1"),
            (&west, "unknown_fulfillment", "it is at"),
            (&east, "invalid_transition", ""),
            (&east, "malformed_request", "teleported"),
        ];
        let mut wms_letters: Vec<&(String, String, String)> = letters
            .iter()
            .filter(|(subject, ..)| subject.starts_with("keel.v1.dlq.wms."))
            .collect();
        assert_eq!(wms_letters.len(), expected.len(), "dead letters: {letters:#?}");
        for (origin, code, reason) in expected {
            let location = origin.split('.').nth(3).unwrap();
            let at = wms_letters
                .iter()
                .position(|(subject, c, r)| {
                    subject == &format!("keel.v1.dlq.wms.{location} <- {origin}")
                        && c == code
                        && r.contains(reason)
                })
                .unwrap_or_else(|| {
                    panic!("no dead letter {code} ({reason}) from {origin}: {letters:#?}")
                });
            wms_letters.remove(at);
        }
        assert!(
            letters.iter().any(|(subject, code, _)| subject
                == &format!("keel.v1.dlq.commands <- {command}")
                && code == "malformed_request"),
            "the bad command is dead-lettered: {letters:#?}"
        );
        assert!(
            letters.iter().any(|(_, code, reason)| code == "malformed_request"
                && reason.contains("Keel-Epochs")),
            "the bad epochs header is dead-lettered: {letters:#?}"
        );

        // A good confirmation on the same subject is applied after all that.
        publish(&js, &east, Some("bi-w7"), step(&fulfillment, "picked").as_bytes()).await;
    });

    keel.wait_order_status("bi-o1", "picking");
    assert_eq!(
        keel.position("bi-sku", &net.east),
        position_before,
        "bad input changed the position"
    );
    assert_eq!(keel.get("/readyz").0, 200, "the node still serves");
    keel.assert_metrics(&[
        "keel_dead_letters_total 8",
        "keel_command_batches_stale_total 1",
        "keel_wms_confirmations_applied_total 1",
    ]);
    assert_eq!(keel.starts(), 1, "the node never restarted");
    expect_2xx(
        "a normal order afterwards",
        keel.place_order("bi-o4", &net.channel, &[("bi-sku", 1)], "east"),
    );
}
