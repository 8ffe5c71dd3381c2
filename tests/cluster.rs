//! The cluster on NATS: partition leases with epochs, membership, and what a node does with
//! them (every scenario on a real `nats-server` and real `keel` processes).
//!
//! * The lease protocol (JetStream KV, revision compare-and-set): a lease is exclusive; it
//!   expires when its owner stops renewing and only then can another node take it, with a
//!   higher epoch; the stale owner's renewal is refused and, by its own clock, it stopped
//!   counting on the lease before the new owner got it; a released lease is free at once; the
//!   partition count is fixed by the first node.
//! * A node: it holds every partition (epoch 1, as `keel cluster status --json` shows), a second node on the same NATS stands by
//!   (not ready) instead of taking work whose state it lacks, a SIGKILLed node restarted on its
//!   disk takes its partitions back with epoch 2, and SIGTERM gives every lease back and
//!   leaves the membership.

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

fn status(keel: &Keel) -> Value {
    let (code, body) = keel.get("/status");
    assert_eq!(code, 200, "{body}");
    body
}

/// The epochs a node holds, all equal to `epoch`, over every partition.
fn holds_everything_at(keel: &Keel, epoch: u64) -> Result<(), String> {
    let s = status(keel);
    let epochs = s["epochs"].as_object().cloned().unwrap_or_default();
    let partitions = s["cluster"]["partitions"].as_u64().unwrap_or(0);
    if s["serving"] == true
        && epochs.len() as u64 == partitions
        && epochs.values().all(|e| e.as_u64() == Some(epoch))
    {
        Ok(())
    } else {
        Err(format!("{s}"))
    }
}

#[test]
fn a_node_holds_its_partitions_a_second_stands_by_and_sigterm_gives_them_back() {
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

    let b = Keel::start_beside(&url);
    eventually("node b stands by", || {
        let s = status(&b);
        match (
            b.get("/readyz").0,
            s["serving"].as_bool(),
            s["waiting"].as_str(),
        ) {
            (503, Some(false), Some(why)) if why.contains("owned by") => Ok(()),
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
        "node b has none of the state: it waits"
    );

    a.assert_metrics(&[
        "keel_cluster_partitions_held 128",
        "keel_cluster_ownership_changes_total 128",
    ]);

    // SIGTERM: drain, flush, give the leases back, leave.
    let (took, clean) = a.terminate();
    assert!(clean, "node a exited with an error on SIGTERM");
    eprintln!("graceful leave took {took:?}");
    let view = eventually("node a's leases and heartbeat are gone", || {
        let s = status(&b);
        let cluster = &s["cluster"];
        let members: Vec<&str> = cluster["members"]
            .as_array()
            .map(|m| m.iter().filter_map(|m| m["node"].as_str()).collect())
            .unwrap_or_default();
        if cluster["leases"].as_object().is_some_and(|l| l.is_empty()) && members.len() == 1 {
            Ok(s)
        } else {
            Err(format!("{s}"))
        }
    });
    assert_eq!(view["serving"], false, "node b still lacks node a's state");
}
