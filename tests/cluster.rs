//! The cluster on NATS: partition leases with epochs, membership, and what a node does with
//! them (every scenario on a real `nats-server` and real `keel` processes).
//!
//! * The lease protocol (JetStream KV, revision compare-and-set): a lease is exclusive; it
//!   expires when its owner stops renewing and only then can another node take it, with a
//!   higher epoch; the stale owner's renewal is refused and, by its own clock, it stopped
//!   counting on the lease before the new owner got it; a released lease is free at once; the
//!   partition count is fixed by the first node.
//! * A node: it holds every partition (epoch 1, as `keel cluster status --json` shows); a
//!   second node on the same NATS stands by (not ready); a SIGKILLed node restarted on its disk
//!   takes its partitions back with epoch 2 (the standby keeps waiting); SIGTERM gives every
//!   lease back and leaves the membership, and the standby takes every partition over at once
//!   (epoch 3), restoring node a's state from the changelog. Node loss and fencing are in
//!   `cluster_faults.rs`.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::time::{Duration, Instant};

use fixtures::nats::NatsServer;
use fixtures::{eventually, Keel};
use keel_cluster::{ClusterStatus, Coordinator, Error, JoinOptions};
use serde_json::Value;

fn options(node: &str, partitions: u32, ttl: Duration) -> JoinOptions {
    JoinOptions {
        node: node.to_owned(),
        partitions,
        lease_ttl: ttl,
        replicas: 1,
    }
}

async fn join(url: &str, node: &str, partitions: u32) -> Result<Coordinator, Error> {
    let client = async_nats::connect(url).await.expect("connect to NATS");
    let js = async_nats::jetstream::new(client);
    Coordinator::join(&js, &options(node, partitions, Duration::from_secs(2))).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_exclusive_expire_and_rise_in_epoch() {
    let nats = NatsServer::start();
    let a = join(&nats.url(), "node-a", 8).await.unwrap();
    let b = join(&nats.url(), "node-b", 8).await.unwrap();
    assert!(
        matches!(join(&nats.url(), "node-c", 16).await, Err(Error::Config(_))),
        "a node expecting another partition count must be refused"
    );

    let held = a
        .acquire(3)
        .await
        .unwrap()
        .expect("a free partition is taken");
    assert_eq!(held.epoch, 1);
    assert!(held.is_valid());
    assert_eq!(
        b.acquire(3).await.unwrap(),
        None,
        "a held lease is exclusive"
    );
    let held = a.renew(&held).await.expect("the owner renews");

    // node-a stops renewing (a pause): the lease lapses on the server, and only then does
    // node-b get it, with a higher epoch.
    let paused_at = Instant::now();
    let taken = loop {
        if let Some(taken) = b.acquire(3).await.unwrap() {
            break taken;
        }
        assert!(
            paused_at.elapsed() < Duration::from_secs(30),
            "the lease never expired"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(taken.epoch, 2);
    assert!(
        !held.is_valid(),
        "the stale owner must have stopped counting on its lease before another node got it"
    );
    assert!(matches!(a.renew(&held).await, Err(Error::Lost(3))));
    let grant = a.last_grant(3).await.unwrap().unwrap();
    assert_eq!((grant.owner.as_str(), grant.epoch), ("node-b", 2));

    // A released lease is free at once, and the next owner's epoch is higher again.
    b.release(&taken).await.unwrap();
    let again = a
        .acquire(3)
        .await
        .unwrap()
        .expect("a released lease is free");
    assert_eq!(again.epoch, 3);

    let status = ClusterStatus::read(&a).await.unwrap();
    assert_eq!(status.partitions, 8);
    assert_eq!(status.leases.len(), 1);
    assert_eq!(status.unowned.len(), 7);
}

/// The changelog fences a stale writer: once a new owner claimed a partition after what it
/// restored, nothing the old owner commits becomes durable, and it learns it is fenced out.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_fences_the_previous_writer_out_of_the_changelog() {
    use keel_cluster::changelog::{self, Changelog};
    use keel_store::{Commit, Lane, Options, Store};
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    changelog::ensure_stream(&js, 1).await.unwrap();
    // One partition, so every key is on the lane claimed here.
    let lane = Lane::Partition(0);
    let node = |name: &str| {
        let fence: changelog::Fence = std::sync::Arc::new(|| true);
        let writer = Changelog::start(js.clone(), name, keel_cluster::Partitioning::new(1), fence);
        let dir = tempfile::tempdir().unwrap();
        let options = Options {
            replica: Some(std::sync::Arc::new(writer.clone())),
            ..Options::default()
        };
        let store = Store::open(dir.path(), &options).unwrap();
        (writer, store, dir)
    };
    let commit = |key: &str| Commit {
        key: key.to_owned(),
        expected_version: 0,
        version: 1,
        state: b"{}".to_vec(),
        ..Commit::default()
    };
    let (old, old_store, _old_dir) = node("old");
    let (new, new_store, _new_dir) = node("new");

    let claimed = old.claim(lane, 1, 0).await.unwrap();
    old.open(lane, 1, claimed);
    old_store.commit(&commit("o/1")).unwrap();
    old_store.flush().await.expect("the owner's write lands");

    let head = changelog::head(&js, lane).await.unwrap();
    assert!(
        matches!(new.claim(lane, 2, head - 1).await, Err(Error::Stale { .. })),
        "a claim must follow the last write it restored"
    );
    changelog::restore(&js, &new_store, Some(lane), 0)
        .await
        .unwrap();
    let taken = new.claim(lane, 2, head).await.unwrap();
    new.open(lane, 2, taken);

    old_store.commit(&commit("o/2")).unwrap();
    let refused = old_store
        .flush()
        .await
        .expect_err("the old owner's write is refused");
    assert!(
        refused.to_string().contains("another node owns it"),
        "{refused}"
    );
    assert!(old.fenced().borrow().is_some());
    new_store.commit(&commit("o/3")).unwrap();
    new_store.flush().await.expect("the new owner writes on");

    // What a restore sees: the old owner's write before the claim, the new owner's after.
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &Options::default()).unwrap();
    let restored = changelog::restore(&js, &store, Some(lane), 0)
        .await
        .unwrap();
    assert_eq!(restored.messages, 4, "two claims and two writes");
    assert!(store.load("o/1").unwrap().is_some());
    assert!(
        store.load("o/2").unwrap().is_none(),
        "the fenced write never landed"
    );
    assert!(store.load("o/3").unwrap().is_some());
}

fn status(keel: &Keel) -> Value {
    let (code, body) = keel.get("/status");
    assert_eq!(code, 200, "{body}");
    body
}

/// The node is ready and holds every partition, all at `epoch`.
fn holds_everything_at(keel: &Keel, epoch: u64) -> Result<(), String> {
    let s = status(keel);
    let epochs = s["epochs"].as_object().cloned().unwrap_or_default();
    let partitions = s["cluster"]["partitions"].as_u64().unwrap_or(0);
    if s["serving"] == true
        && keel.get("/readyz").0 == 200
        && epochs.len() as u64 == partitions
        && epochs.values().all(|e| e.as_u64() == Some(epoch))
    {
        Ok(())
    } else {
        Err(format!("{s}"))
    }
}

#[test]
fn a_node_holds_its_partitions_a_second_stands_by_and_takes_over_after_sigterm() {
    let mut a = Keel::start_on_nats();
    eventually("node a holds every partition at epoch 1", || {
        holds_everything_at(&a, 1)
    });
    let url = a.nats().url();
    let cli = std::process::Command::new(fixtures::binary())
        .args(["cluster", "status", "--json", "--nats", &url])
        .output()
        .expect("run keel cluster status");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let view: Value = serde_json::from_slice(&cli.stdout).expect("status is JSON on stdout");
    assert_eq!(view["spread"], serde_json::json!([128, 128]), "{view}");
    assert_eq!(view["members"].as_array().map(Vec::len), Some(1), "{view}");
    assert_eq!(view["unowned"].as_array().map(Vec::len), Some(0), "{view}");
    assert_eq!(
        view["planned_moves"],
        serde_json::json!([]),
        "a settled map plans nothing"
    );

    let b = Keel::start_beside(&url, &[]);
    eventually("node b stands by", || {
        let s = status(&b);
        match (
            b.get("/readyz").0,
            s["serving"].as_bool(),
            s["waiting"].as_str(),
        ) {
            (503, Some(false), Some(why)) if why.contains("held by") => Ok(()),
            _ => Err(format!("{s}")),
        }
    });
    // The placement would spread the partitions over both members, a bounded round at a
    // time; nothing moves them yet (docs/cluster.md), and the status says what it would do.
    let plan = eventually("the status plans a round of moves to node b", || {
        let s = status(&a);
        let moves = s["cluster"]["planned_moves"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if moves.len() == keel_cluster::MOVES_PER_ROUND {
            Ok(moves)
        } else {
            Err(format!("{s}"))
        }
    });
    assert!(plan.iter().all(|m| m["to"] != m["from"]), "{plan:?}");
    let (code, _) = a.post("/v1/locations", &fixtures::location_body("east", "east", 1));
    assert!(code < 300, "node a keeps serving");

    // SIGKILL and restart on the same disk: the same member takes its partitions back with
    // a higher epoch (its earlier incarnation is fenced by the epoch).
    a.restart();
    eventually("node a holds every partition at epoch 2", || {
        holds_everything_at(&a, 2)
    });
    assert_eq!(
        b.get("/readyz").0,
        503,
        "node a's restarted incarnation keeps its partitions: node b still waits"
    );

    a.assert_metrics(&[
        "keel_cluster_partitions_held 128",
        "keel_cluster_ownership_changes_total 128",
    ]);

    // SIGTERM: drain, flush, give the leases back, leave.
    let (took, clean) = a.terminate();
    assert!(clean, "node a exited with an error on SIGTERM");
    eprintln!("graceful leave took {took:?}");
    // Node a gave its leases back: node b takes every partition over at once, with the next
    // epoch, from the changelog (node a's location is there).
    eventually("node b holds every partition at epoch 3", || {
        holds_everything_at(&b, 3)
    });
    let view = eventually("node a left the membership", || {
        let s = status(&b);
        let members = s["cluster"]["members"].as_array().map_or(0, Vec::len);
        if members == 1 {
            Ok(s)
        } else {
            Err(s.to_string())
        }
    });
    assert_eq!(view["takeover"]["restored"], true, "{view}");
    assert_eq!(
        b.get("/v1/locations/east").0,
        200,
        "node a's location is restored from the changelog"
    );
}
