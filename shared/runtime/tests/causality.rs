//! On NATS each partition's changelog lane becomes durable on its own, so what a crash keeps
//! is not a prefix of the node's commits: a later commit on one lane can be durable while an
//! earlier one on another is lost. A command one actor owes another on the same node is
//! therefore applied only once the decision that owes it is durable, and its outcome is acted
//! on only once the command's effect is: otherwise a crash could keep a reservation (or a
//! backorder) whose order lost the decision that asked for it, and the order, re-deciding,
//! would ask again.
//!
//! The replica here makes each lane's records durable only when asked to, and notes every
//! record handed over while a record of another lane before it was not durable yet. An order
//! placed and allocated with nothing else running is one chain of causes, so no record of it
//! may be handed over early.

use keel_bus::{Headers, InProcessBus, InProcessOptions, SharedBus};
use keel_protocol::{subjects, ReplyStatus};
use keel_runtime::{Node, NodeOptions};
use keel_store::{Durable, Lane, Replica};
use parking_lot::Mutex;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

/// Partition lanes whose records become durable only when asked to be (`durable`,
/// `durable_on`), each lane on its own, like the changelog's.
#[derive(Debug, Default)]
struct Lanes {
    /// Every record handed over: its lane, and whether it is durable yet.
    records: Mutex<Vec<(Lane, bool)>>,
    /// Records handed over while a record of another lane before them was not durable:
    /// (its index, its lane, the index of that record).
    early: Mutex<Vec<(usize, Lane, usize)>>,
}

impl Replica for Lanes {
    fn partition_of(&self, key: &str) -> u32 {
        let owner = keel_protocol::entities::owner_of(key);
        owner
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)))
            % 16
    }

    fn append(&self, lane: Lane, _record: Vec<u8>) -> Result<(), String> {
        let mut records = self.records.lock();
        let index = records.len();
        let pending = records
            .iter()
            .rposition(|(other, durable)| *other != lane && !durable);
        if let Some(cause) = pending {
            self.early.lock().push((index, lane, cause));
        }
        records.push((lane, false));
        Ok(())
    }

    fn durable(&self) -> Durable {
        for (_, durable) in self.records.lock().iter_mut() {
            *durable = true;
        }
        Box::pin(async { Ok(()) })
    }

    fn durable_on(&self, lane: Lane) -> Durable {
        for (_, durable) in self.records.lock().iter_mut().filter(|(l, _)| *l == lane) {
            *durable = true;
        }
        Box::pin(async { Ok(()) })
    }
}

async fn ask(bus: &SharedBus, subject: &str, body: serde_json::Value) {
    let reply = bus
        .request(
            subject,
            Headers::new(),
            body.to_string().into(),
            Duration::from_secs(10),
        )
        .await
        .expect("the node answers");
    let status = ReplyStatus::from_headers(&reply.headers);
    assert!(
        matches!(status, ReplyStatus::Ok | ReplyStatus::Created),
        "{subject}: {status:?} {}",
        String::from_utf8_lossy(&reply.payload)
    );
}

#[test]
fn a_command_between_local_actors_waits_for_its_cause_and_its_effect_to_be_durable() {
    actix_rt::System::new().block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let lanes = Arc::new(Lanes::default());
        let mut options = NodeOptions::new(dir.path());
        options.replica = Some(lanes.clone());
        let bus: SharedBus = InProcessBus::new(InProcessOptions::default()).into_shared();
        let node = Node::start(&options, bus.clone()).unwrap();
        node.recover().await.unwrap();
        node.serve(&bus).await.unwrap();

        let location = json!({"id": "east", "name": "East", "region": "east", "priority": 1});
        ask(&bus, subjects::LOCATIONS_CREATE, location).await;
        let channel = json!({"id": "web", "name": "Web", "locations": ["east"]});
        ask(&bus, subjects::CHANNELS_CREATE, channel).await;
        ask(
            &bus,
            subjects::SKUS_CREATE,
            json!({"id": "tee", "name": "Tee"}),
        )
        .await;
        let receipt = json!({"receipt_id": "r1", "sku": "tee", "location": "east", "quantity": 1});
        ask(&bus, subjects::INVENTORY_RECEIPT, receipt).await;
        let before = lanes.records.lock().len();
        // Two units where one is in stock: a reservation and a backorder at the SKU-location,
        // each a command the order's saga and its allocation owe it.
        let order = json!({"id": "o1", "channel": "web", "ship_to": {"region": "east"},
                           "lines": [{"sku": "tee", "quantity": 2}]});
        ask(&bus, subjects::ORDERS_PLACE, order).await;
        node.flush().await.unwrap();

        let records = lanes.records.lock().clone();
        let lanes_touched: std::collections::BTreeSet<_> =
            records[before..].iter().map(|(lane, _)| *lane).collect();
        assert!(
            lanes_touched.len() >= 2,
            "the order and its SKU-location share a lane: {records:?}"
        );
        let early: Vec<_> = lanes.early.lock().iter().copied().collect();
        assert!(
            early.iter().all(|(at, _, _)| *at < before),
            "records handed over before a record of another lane before them was durable \
             (at, lane, not yet durable): {early:?}; every record: {records:?}"
        );
        node.shutdown().await.unwrap();
    });
}
