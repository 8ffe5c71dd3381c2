//! The cluster's fault tests, each on a real `nats-server` and real `keel` node processes, with
//! the write workload of `fixtures/writes.rs` (receipts and orders with unique ids, retried
//! until definitive, every acknowledged effect verified afterwards).
//!
//! * **Node loss with its disk.** Three nodes share the partitions. 8 clients write through
//!   all three HTTP gateways (a client moves to the next gateway when one fails). Node a is
//!   SIGKILLed and its data directory removed. The other two take its partitions over by
//!   restoring the changelog (the time from the kill until they hold all 128 is printed), and
//!   afterwards every acknowledged write is there exactly once; the sagas the lost node had
//!   not finished (its outbox and its command batches in flight to the other nodes, which
//!   were crossing before the kill) are finished by the new owners, each command applied
//!   once, by the node that got it first or by the new owner.
//! * **A command batch applied, its answer lost.** Node b is set to abort once it has applied
//!   and flushed a command batch from node a, before answering it. Writes go through node a
//!   only; b dies on the first batch, a takes its partitions over (restoring b's changelog,
//!   with the batch's effects and dedupe records), a's saga sends the batch again and is
//!   answered from the records: every acknowledged write is there exactly once.
//! * **Fencing.** Two nodes share the partitions. Node a is SIGSTOPped until node b took its
//!   partitions over, and writes are sent to its gateway meanwhile; then it is SIGCONTed. It
//!   exits with status 75, nothing in the changelog or the event stream after the takeover
//!   is its, and every acknowledged write (before, during and after the pause) is there
//!   exactly once.
//! * **Scaling 1 → 3 → 1.** Clients write through node a while nodes b and c join (the
//!   partitions spread 42/43/43) and then leave on SIGTERM one after the other (each within
//!   the grace period, its partitions handed back); every acknowledged write is there.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::thread;
use std::time::{Duration, Instant};

use fixtures::nats::NatsServer;
use fixtures::writes::{run_clients, verify, Outcome, World, Write};
use fixtures::{eventually, eventually_within, Keel};
use serde_json::Value;

/// How long partitions may take to spread or move between nodes: a bounded round of moves at
/// a time, under load, with every node and nats-server on the same two cores.
const REBALANCE: std::time::Duration = std::time::Duration::from_secs(60);

/// Short leases keep takeovers quick (renewed every second).
const LEASE_SECS: &str = "3";
/// What a node exits with once another node owns its partitions.
const FENCED_EXIT: i32 = 75;
/// The chart's termination grace period (`helm/keel`): a graceful leave must end within it.
const GRACE_PERIOD: Duration = Duration::from_secs(60);
/// The partitions of a cluster the tests create.
const PARTITIONS: u64 = 128;

/// Snapshots after a few KB of writes per partition, so that every fault test also snapshots
/// and purges the changelog under load and restores from snapshots.
const SNAPSHOT_BYTES: &str = "2048";

fn node(url: &str, id: &str) -> Keel {
    Keel::start_beside(
        url,
        &[
            "--node-id",
            id,
            "--lease-secs",
            LEASE_SECS,
            "--snapshot-bytes",
            SNAPSHOT_BYTES,
        ],
    )
}

fn status(keel: &Keel) -> Value {
    let (code, body) = keel.get("/status");
    assert_eq!(code, 200, "{body}");
    body
}

/// For [`eventually`]: `Ok` with the partitions each of `nodes` holds once every one is ready,
/// they hold every partition between them and no two differ by more than one.
fn spread_evenly(nodes: &[&Keel]) -> Result<Vec<u64>, String> {
    let mut held = Vec::new();
    for node in nodes {
        let s = status(node);
        let ready = s["ready"] == true && matches!(node.try_get("/readyz"), Ok((200, _)));
        match s["partitions_held"].as_u64() {
            Some(count) if ready => held.push(count),
            _ => return Err(s.to_string()),
        }
    }
    let (least, most) = (held.iter().min(), held.iter().max());
    if held.iter().sum::<u64>() == PARTITIONS && most.zip(least).is_some_and(|(m, l)| m - l <= 1) {
        Ok(held)
    } else {
        Err(format!("partitions held: {held:?}"))
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
fn a_lost_node_and_its_disk_are_replaced_by_the_others_with_nothing_lost() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut a = node(&url, "a");
    let (b, c) = (node(&url, "b"), node(&url, "c"));
    let spread = eventually_within(REBALANCE, "three nodes share the partitions", || {
        spread_evenly(&[&a, &b, &c])
    });
    eprintln!("node loss: spread before {spread:?}");

    let world = World::create(&a);
    let apis = [a.api(), b.api(), c.api()];
    let mut took = Duration::ZERO;
    let outcomes = run_clients(&apis, &world, (0..8, 40), &[80], true, |_| {
        // Commands cross nodes in batches, and node a is in the thick of it when it dies.
        let batches = |n: &Keel| n.metric("keel_command_batches_sent_total");
        assert!(
            batches(&a) > 0 && batches(&b) + batches(&c) > 0,
            "no command batches between the nodes before the kill"
        );
        eventually(
            "node a snapshotted partitions (and purged the changelog below)",
            || {
                let made = a.metric("keel_changelog_snapshots_total");
                let purged = a.metric("keel_changelog_purged_total");
                if made > 0 && purged > 0 {
                    Ok((made, purged))
                } else {
                    Err(format!("{made} made, {purged} purged"))
                }
            },
        );
        a.lose_with_disk();
        let lost = Instant::now();
        let spread = eventually_within(REBALANCE, "nodes b and c hold every partition", || {
            spread_evenly(&[&b, &c])
        });
        took = lost.elapsed();
        eprintln!("node loss: spread after {spread:?}");
    });
    eprintln!("node loss: its partitions were owned again {took:?} after the SIGKILL (lease {LEASE_SECS} s)");

    // A takeover can come in several rounds; `/status` shows only the last one.
    let mut from_snapshots = 0;
    for owner in [&b, &c] {
        assert!(owner.metric("keel_cluster_ownership_changes_total") > 0);
        from_snapshots += owner.metric("keel_cluster_restored_from_snapshots_total");
    }
    assert!(
        from_snapshots > 0,
        "node a's partitions were restored from its snapshots"
    );
    verify(&b, &world, &outcomes);
    verify(&c, &world, &outcomes);
}

#[test]
fn a_command_batch_whose_receiver_dies_before_answering_is_applied_once() {
    let nats = NatsServer::start();
    let url = nats.url();
    let a = node(&url, "a");
    let mut b = Keel::start_beside(
        &url,
        &[
            "--node-id",
            "b",
            "--lease-secs",
            LEASE_SECS,
            "--crash-at",
            "batch-reply",
        ],
    );
    eventually_within(REBALANCE, "two nodes share the partitions", || {
        spread_evenly(&[&a, &b])
    });
    let world = World::create(&a);
    // Everything goes through node a: its sagas reserve at SKU-locations node b owns with
    // command batches, and b dies after applying and flushing the first, before answering.
    let outcomes = run_clients(&[a.api()], &world, (0..4, 20), &[], false, |_| {});
    eventually("node b reached its crash point and died", || {
        b.has_exited()
            .then_some(())
            .ok_or("still running".to_owned())
    });
    let log = std::fs::read_to_string(b.log_path()).expect("node b's log");
    assert!(
        log.contains("crash point reached: a command batch applied, not answered"),
        "node b died elsewhere:\n{log}"
    );
    eventually_within(REBALANCE, "node a holds every partition", || {
        spread_evenly(&[&a])
    });
    // The batch's commands were applied by b and are in the changelog a restored; a's retry
    // was answered from their dedupe records, not applied again.
    verify(&a, &world, &outcomes);
}

#[test]
fn a_paused_owner_is_fenced_out_and_changes_nothing() {
    let nats = NatsServer::start();
    let url = nats.url();
    let mut a = node(&url, "a");
    let b = node(&url, "b");
    eventually_within(REBALANCE, "two nodes share the partitions", || {
        spread_evenly(&[&a, &b])
    });
    let world = World::create(&a);
    let mut outcomes = run_clients(&[a.api(), b.api()], &world, (0..4, 10), &[], false, |_| {});

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
    let paused = Instant::now();
    eventually("node b takes over from the paused node", || {
        spread_evenly(&[&b])
    });
    eprintln!(
        "fencing: node b held every partition {:?} after the SIGSTOP",
        paused.elapsed()
    );
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

/// SIGTERM, checked to end cleanly within the grace period; answers how long it took.
fn leave(node: &mut Keel) -> Duration {
    let (took, clean) = node.terminate();
    assert!(clean, "a node exited with an error on SIGTERM");
    assert!(took < GRACE_PERIOD, "a graceful leave took {took:?}");
    took
}

#[test]
fn scaling_from_one_node_to_three_and_back_loses_nothing() {
    let nats = NatsServer::start();
    let url = nats.url();
    let a = node(&url, "a");
    eventually("node a holds every partition", || spread_evenly(&[&a]));
    let world = World::create(&a);
    let mut joined: Vec<Keel> = Vec::new();
    // Every client writes through node a, which forwards to whichever node owns an entity.
    let outcomes = run_clients(
        &[a.api()],
        &world,
        (0..8, 150),
        &[40, 120, 200],
        false,
        |step| match step {
            0 => {
                let started = Instant::now();
                joined.extend([node(&url, "b"), node(&url, "c")]);
                let spread =
                    eventually_within(REBALANCE, "three nodes share the partitions", || {
                        spread_evenly(&[&a, &joined[0], &joined[1]])
                    });
                eprintln!(
                    "scale 1 → 3: spread {spread:?} after {:?}",
                    started.elapsed()
                );
            }
            _ => {
                let mut leaving = joined.pop().expect("a joined node");
                let took = leave(&mut leaving);
                let left: Vec<&Keel> = std::iter::once(&a).chain(&joined).collect();
                let spread =
                    eventually_within(REBALANCE, "the others hold every partition", || {
                        spread_evenly(&left)
                    });
                eprintln!(
                    "scale down to {}: the leave took {took:?}, spread {spread:?}",
                    left.len()
                );
            }
        },
    );
    verify(&a, &world, &outcomes);
}
