//! The cluster's fault tests, each on a real `nats-server` and real `keel` node processes, with
//! the write workload of `fixtures/writes.rs` (receipts and orders with unique ids, retried
//! until definitive, every acknowledged effect verified afterwards).
//!
//! * **Node loss with its disk.** Three nodes: the first serves, two stand by. 8 clients write
//!   through all three HTTP gateways (a client moves to the next gateway when one fails). The
//!   serving node is SIGKILLed and its data directory removed. A standby takes every partition
//!   over by restoring the changelog (the time from the kill to its `/readyz` is printed), and
//!   afterwards every acknowledged write is there exactly once; the sagas the lost node had not
//!   finished (its outbox and its commands in flight) are finished by the new owner.
//! * **Fencing.** The serving node is SIGSTOPped until a standby took over, and writes are
//!   sent to its gateway meanwhile; then it is SIGCONTed. It exits with status 75, nothing in
//!   the changelog or the event stream after the takeover is its, and every acknowledged write
//!   (those before, during and after the pause) is there exactly once.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::thread;
use std::time::{Duration, Instant};

use fixtures::nats::NatsServer;
use fixtures::writes::{run_clients, verify, Outcome, World, Write};
use fixtures::{eventually, Keel};
use serde_json::Value;

/// Short leases keep takeovers quick (renewed every second).
const LEASE_SECS: &str = "3";
/// What a node exits with once another node owns its partitions.
const FENCED_EXIT: i32 = 75;

fn node(url: &str, id: &str) -> Keel {
    Keel::start_beside(url, &["--node-id", id, "--lease-secs", LEASE_SECS])
}

fn serving(keel: &Keel) -> bool {
    matches!(keel.try_get("/readyz"), Ok((200, _)))
}

/// For [`eventually`]: `Ok` once one of `nodes` serves.
fn one_serves(nodes: &[&Keel]) -> Result<(), String> {
    if nodes.iter().any(|n| serving(n)) {
        Ok(())
    } else {
        Err("no node is ready".to_owned())
    }
}

fn status(keel: &Keel) -> Value {
    let (code, body) = keel.get("/status");
    assert_eq!(code, 200, "{body}");
    body
}

fn stands_by(keel: &Keel) -> Result<(), String> {
    let s = status(keel);
    match (serving(keel), s["waiting"].as_str()) {
        (false, Some(_)) => Ok(()),
        _ => Err(s.to_string()),
    }
}

/// Every message of `stream` after sequence `after`: (sequence, subject, `Keel-Node`).
fn messages_after(url: &str, stream: &str, after: u64) -> Vec<(u64, String, Option<String>)> {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.expect("the stream exists");
        let last = stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence;
        let mut found = Vec::new();
        for sequence in after + 1..=last {
            // Work-queue and deleted messages are simply gone.
            if let Ok(m) = stream.get_raw_message(sequence).await {
                let node = m.headers.get("Keel-Node").map(|v| v.as_str().to_owned());
                found.push((sequence, m.subject.to_string(), node));
            }
        }
        found
    })
}

fn last_sequence(url: &str, stream: &str) -> u64 {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let client = async_nats::connect(url).await.expect("connect to NATS");
        let js = async_nats::jetstream::new(client);
        let mut stream = js.get_stream(stream).await.expect("the stream exists");
        stream
            .info()
            .await
            .expect("stream info")
            .state
            .last_sequence
    })
}

#[test]
fn a_lost_node_and_its_disk_are_replaced_by_a_standby_with_nothing_lost() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut a = node(&url, "a");
    eventually("node a serves", || one_serves(&[&a]));
    let (b, c) = (node(&url, "b"), node(&url, "c"));
    eventually("node b stands by", || stands_by(&b));
    eventually("node c stands by", || stands_by(&c));

    let world = World::create(&a);
    let apis = [a.api(), b.api(), c.api()];
    let mut took = Duration::ZERO;
    let outcomes = run_clients(&apis, &world, (0..8, 40), &[80], true, |_| {
        a.lose_with_disk();
        let lost = Instant::now();
        eventually("a standby takes over", || one_serves(&[&b, &c]));
        took = lost.elapsed();
    });
    eprintln!("node loss: a standby served {took:?} after the SIGKILL (lease {LEASE_SECS} s)");

    let (owner, other) = if serving(&b) { (&b, &c) } else { (&c, &b) };
    let takeover = &status(owner)["takeover"];
    assert_eq!(takeover["restored"], true, "{takeover}");
    assert!(
        takeover["restored_messages"].as_u64() > Some(0),
        "{takeover}"
    );
    verify(owner, &world, &outcomes);
    stands_by(other).expect("the other standby still stands by");
    owner.assert_metrics(&[
        "keel_cluster_partitions_held 128",
        "keel_cluster_ownership_changes_total 128",
    ]);
}

#[test]
fn a_paused_owner_is_fenced_out_and_changes_nothing() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut a = node(&url, "a");
    eventually("node a serves", || one_serves(&[&a]));
    let b = node(&url, "b");
    eventually("node b stands by", || stands_by(&b));
    let world = World::create(&a);
    let mut outcomes = run_clients(&[a.api()], &world, (0..4, 10), &[], false, |_| {});

    a.signal("STOP");
    // Orders sent to the paused node's gateway wait in its accept queue until it wakes up.
    let paused_api = a.api();
    let waiting: Vec<_> = (0..4)
        .map(|n| {
            let (api, channel) = (paused_api.clone(), world.channel.clone());
            let write = Write::Order {
                id: format!("paused-{n}"),
                lines: vec![(world.skus[n % world.skus.len()].clone(), 1)],
                region: "east".to_owned(),
            };
            thread::spawn(move || {
                let (path, body) = write.request(&channel);
                let reply = api.try_post(path, &body);
                (write, reply)
            })
        })
        .collect();
    eventually("node b takes over from the paused node", || {
        one_serves(&[&b])
    });
    let changelog_at = last_sequence(&url, "KEEL_CHANGELOG");
    let events_at = last_sequence(&url, "KEEL_EVENTS");
    outcomes.extend(run_clients(
        &[b.api()],
        &world,
        (4..8, 10),
        &[],
        false,
        |_| {},
    ));

    a.signal("CONT");
    let exit = a.wait_exit(Duration::from_secs(30));
    assert_eq!(
        exit,
        Some(FENCED_EXIT),
        "the stale owner must exit, fenced out"
    );
    for waited in waiting {
        let (write, reply) = waited.join().expect("a paused client panicked");
        if let Ok(reply) = reply {
            if (200..300).contains(&reply.0) {
                // Acknowledged: through NATS by node b, or it must be there anyway.
                outcomes.push(Outcome {
                    write,
                    reply,
                    attempts: 1,
                });
            }
        }
    }

    for (stream, after) in [("KEEL_CHANGELOG", changelog_at), ("KEEL_EVENTS", events_at)] {
        let stale: Vec<_> = messages_after(&url, stream, after)
            .into_iter()
            .filter(|(_, _, node)| node.as_deref() != Some("b"))
            .collect();
        assert!(
            stale.is_empty(),
            "{stream} holds messages after the takeover that node b did not write: {stale:?}"
        );
    }
    verify(&b, &world, &outcomes);
}
