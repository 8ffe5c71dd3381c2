//! The node's request-reply API answers every request: a reply too large for the bus's payload
//! limit comes back as an `internal` error naming the limit, never as a caller's timeout.

use keel_bus::{Headers, InProcessBus, InProcessOptions, SharedBus};
use keel_protocol::{subjects, ErrorCode, ReplyStatus};
use keel_runtime::{Node, NodeOptions};
use serde_json::json;
use std::time::Duration;

/// Asks the node (its API loops are subscribed once `serve` returned).
async fn ask(bus: &SharedBus, subject: &str, body: serde_json::Value) -> keel_bus::Message {
    bus.request(
        subject,
        Headers::new(),
        body.to_string().into(),
        Duration::from_secs(5),
    )
    .await
    .expect("the node answers")
}

#[test]
fn a_reply_too_large_for_the_bus_is_an_error_reply_not_a_timeout() {
    actix_rt::System::new().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let options = InProcessOptions {
            max_payload: 4096,
            ..InProcessOptions::default()
        };
        let bus: SharedBus = InProcessBus::new(options).into_shared();
        let node = Node::start(&NodeOptions::new(dir.path()), bus.clone()).unwrap();
        node.recover().await.unwrap();
        node.serve(&bus).await.unwrap();
        for i in 0..100 {
            let sku = json!({ "id": format!("SKU-{i:03}"), "name": "a fairly long product name" });
            let reply = ask(&bus, subjects::SKUS_CREATE, sku).await;
            assert_eq!(
                ReplyStatus::from_headers(&reply.headers),
                ReplyStatus::Created
            );
        }
        let listing = ask(&bus, subjects::SKUS_LIST, json!({})).await;
        let status = ReplyStatus::from_headers(&listing.headers);
        assert_eq!(status, ReplyStatus::Error(ErrorCode::Internal));
        let body: serde_json::Value = serde_json::from_slice(&listing.payload).unwrap();
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("exceeds the bus limit"), "{body}");
        node.shutdown().await.unwrap();
    });
}
