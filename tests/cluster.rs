//! The cluster on NATS: partition leases with epochs, membership, and what a node does with
//! them (every scenario on a real `nats-server` and real `keel` processes).
//!
//! * The lease protocol (JetStream KV, revision compare-and-set): a lease is exclusive; it
//!   expires when its owner stops renewing and only then can another node take it, with a
//!   higher epoch; the stale owner's renewal is refused and, by its own clock, it stopped
//!   counting on the lease before the new owner got it; a released lease is free at once; the
//!   partition count is fixed by the first node.
//! * Two nodes: the first holds every partition (epoch 1, as `keel cluster status --json`
//!   shows); SIGKILLed and restarted on its disk it takes them back at epoch 2; a second node
//!   joins and half the partitions move to it (epoch 3), each handed off cleanly; what was
//!   written through either node is readable through both; SIGTERM on the first hands its
//!   half back to the second, which then holds all 128. Node loss, fencing and scaling
//!   1 → 3 → 1 under load are in `cluster_faults.rs`.
//! * Snapshots: a partition's snapshot replaces its changelog below it, and a restore from it
//!   (into an empty store, or over an older local copy) has the same state.
//! * Cart holds over two nodes: conversions across nodes, and expiry timers that fire on the
//!   node a leaving node's partitions moved to.

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
    use keel_cluster::changelog;
    use keel_store::{Lane, Options, Store};
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    changelog::ensure_stream(&js, 1).await.unwrap();
    // One partition, so every key is on the lane claimed here.
    let lane = Lane::Partition(0);
    let commit = |key: &str| first_commit(key, b"{}");
    let (old, old_store, _old_dir) = writer(&js, "old");
    let (new, new_store, _new_dir) = writer(&js, "new");

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

/// A changelog writer `name` on a one-partition cluster (every key on `Lane::Partition(0)`,
/// which it may always write) and a store replicated by it.
fn writer(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> (
    keel_cluster::changelog::Changelog,
    keel_store::Store,
    tempfile::TempDir,
) {
    use keel_cluster::changelog::{Changelog, Fence};
    let fence: Fence = std::sync::Arc::new(|_| true);
    let writer = Changelog::start(js.clone(), name, keel_cluster::Partitioning::new(1), fence);
    let dir = tempfile::tempdir().unwrap();
    let options = keel_store::Options {
        replica: Some(std::sync::Arc::new(writer.clone())),
        ..keel_store::Options::default()
    };
    let store = keel_store::Store::open(dir.path(), &options).unwrap();
    (writer, store, dir)
}

/// An entity's first commit, of `state`.
fn first_commit(key: &str, state: &[u8]) -> keel_store::Commit {
    keel_store::Commit {
        key: key.to_owned(),
        expected_version: 0,
        version: 1,
        state: state.to_vec(),
        ..keel_store::Commit::default()
    }
}

/// A partition's snapshot stands in for its changelog below it: the changelog is purged there,
/// a fresh store restores the snapshot and the messages after it to the same state, a newer
/// snapshot replaces the older (whose object goes), and a local copy older than the snapshot
/// is brought to it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_replaces_the_changelog_below_it() {
    use keel_cluster::changelog::{self, Snapshots};
    use keel_store::{Lane, Options, Store};
    let nats = NatsServer::start();
    let client = async_nats::connect(nats.url()).await.unwrap();
    let js = async_nats::jetstream::new(client);
    changelog::ensure_stream(&js, 1).await.unwrap();
    let snapshots = Snapshots::open(&js, 1).await.unwrap();
    let lane = Lane::Partition(0);
    let (owner, store, _dir) = writer(&js, "owner");
    let claimed = owner.claim(lane, 1, 0).await.unwrap();
    owner.open(lane, 1, claimed);
    for i in 0..20 {
        store
            .commit(&first_commit(&format!("o/{i}"), b"placed"))
            .unwrap();
        store.flush().await.unwrap();
    }
    let early = Store::open(
        tempfile::tempdir().unwrap().keep().as_path(),
        &Options::default(),
    )
    .unwrap();
    let early_at = changelog::restore(&js, &early, Some(lane), 0)
        .await
        .unwrap()
        .heads[&lane];

    assert!(snapshots
        .take(0, store.fold(), "owner", 0)
        .await
        .unwrap()
        .is_some());
    let first = snapshots.head(0).await.unwrap().unwrap().0;
    let replay = Store::open(
        tempfile::tempdir().unwrap().keep().as_path(),
        &Options::default(),
    )
    .unwrap();
    let replayed = changelog::restore(&js, &replay, Some(lane), 0)
        .await
        .unwrap();
    assert_eq!(
        replayed.messages, 1,
        "only the snapshot's own message is left below it"
    );
    assert!(
        snapshots
            .take(0, store.fold(), "owner", 0)
            .await
            .unwrap()
            .is_none(),
        "nothing new to fold"
    );

    let mut update = first_commit("o/3", b"shipped");
    (update.expected_version, update.version) = (1, 2);
    store.commit(&update).unwrap();
    store.commit(&first_commit("o/20", b"placed")).unwrap();
    store.flush().await.unwrap();

    let fresh = Store::open(
        tempfile::tempdir().unwrap().keep().as_path(),
        &Options::default(),
    )
    .unwrap();
    let restored = changelog::restore_partition(&js, &snapshots, &fresh, 0, None)
        .await
        .unwrap();
    assert_eq!(restored.snapshot, Some((first.sequence, first.bytes)));
    assert!(
        (1..=2).contains(&restored.messages),
        "only the update and the new order are replayed, in one or two messages: {restored:?}"
    );
    for i in 0..=20 {
        let key = format!("o/{i}");
        assert_eq!(
            fresh.load(&key).unwrap(),
            store.load(&key).unwrap(),
            "{key}"
        );
    }

    let second = snapshots
        .take(0, store.fold(), "owner", 0)
        .await
        .unwrap()
        .unwrap();
    assert!(second.head.sequence > first.sequence);
    assert!(
        snapshots.read(&first).await.is_err(),
        "the replaced snapshot is deleted"
    );
    let brought = changelog::restore_partition(&js, &snapshots, &early, 0, Some(early_at))
        .await
        .unwrap();
    assert_eq!(
        brought.snapshot,
        Some((second.head.sequence, second.head.bytes))
    );
    assert_eq!(early.load("o/3").unwrap(), store.load("o/3").unwrap());
    assert_eq!(early.load("o/20").unwrap(), store.load("o/20").unwrap());
}

fn status(keel: &Keel) -> Value {
    let (code, body) = keel.get("/status");
    assert_eq!(code, 200, "{body}");
    body
}

/// The node is ready and holds `count` partitions, all at an epoch `epoch` accepts.
fn holds(keel: &Keel, count: u64, epoch: impl Fn(u64) -> bool) -> Result<Value, String> {
    let s = status(keel);
    let epochs = s["epochs"].as_object().cloned().unwrap_or_default();
    if s["ready"] == true
        && keel.get("/readyz").0 == 200
        && epochs.len() as u64 == count
        && epochs.values().all(|e| e.as_u64().is_some_and(&epoch))
    {
        Ok(s)
    } else {
        Err(format!("{s}"))
    }
}

#[test]
fn partitions_spread_over_the_nodes_and_come_back_at_a_graceful_leave() {
    let mut a = Keel::start_on_nats();
    eventually("node a holds every partition at epoch 1", || {
        holds(&a, 128, |e| e == 1)
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
    assert_eq!(
        view["leases"].as_object().map(serde_json::Map::len),
        Some(128),
        "the status shows every partition's lease: {view}"
    );
    let (code, _) = a.post("/v1/locations", &fixtures::location_body("east", "east", 1));
    assert!(code < 300, "node a serves");

    // SIGKILL and restart on the same disk: the same member takes its partitions back with
    // a higher epoch (its earlier incarnation is fenced by the epoch).
    a.restart();
    eventually("node a holds every partition at epoch 2", || {
        holds(&a, 128, |e| e == 2)
    });
    a.assert_metrics(&[
        "keel_cluster_partitions_held 128",
        "keel_cluster_ownership_changes_total 128",
    ]);

    // A second node joins: a bounded round at a time, node a hands partitions off and node b
    // takes each with the next epoch, until both hold 64.
    let b = Keel::start_beside(&url, &[]);
    let joined = Instant::now();
    eventually("node b holds half the partitions at epoch 3", || {
        holds(&b, 64, |e| e == 3)
    });
    eventually("node a keeps the other half", || holds(&a, 64, |e| e == 2));
    eprintln!("rebalanced 128 → 64/64 in {:?}", joined.elapsed());
    let view = status(&b);
    assert!(
        view["handoffs"].as_u64() == Some(0) && status(&a)["handoffs"].as_u64() == Some(64),
        "{view}"
    );
    a.assert_metrics(&["keel_cluster_handoffs_total 64"]);

    // Any node answers for any entity: it forwards to the owner. Four SKUs land on
    // partitions of both nodes.
    let skus: Vec<String> = (0..4).map(|i| format!("spread-{i}")).collect();
    for (i, sku) in skus.iter().enumerate() {
        let (via, other) = if i % 2 == 0 { (&a, &b) } else { (&b, &a) };
        via.create_sku(sku);
        via.receive(&format!("r-{sku}"), sku, "east", 5);
        let position = other.position(sku, "east");
        assert_eq!(fixtures::int(&position, "on_hand"), 5, "{position}");
    }

    // An HTTP gateway (`--role gateway`, no node of its own; ready once it knows the cluster's
    // partitioning) sends each request about one entity straight to the node serving its
    // partition: each receipt is answered by one node, none by a node that forwards it on.
    let gateway = Keel::start_beside(&url, &["--role", "gateway"]);
    eventually("the gateway is ready", || match gateway.get("/readyz") {
        (200, _) => Ok(()),
        (code, body) => Err(format!("{code} {body}")),
    });
    let receipts = "keel_api_request_duration_seconds_count{status=\"created\",subject=\"keel.v1.api.inventory.receipt\"}";
    let answered = || a.api().metric(receipts) + b.api().metric(receipts);
    let before = answered();
    for sku in &skus {
        gateway.receive(&format!("g-{sku}"), sku, "east", 1);
    }
    assert_eq!(
        answered() - before,
        skus.len() as u64,
        "one node answered each receipt"
    );
    let direct = "keel_nats_messages_sent_total{kind=\"forward\"}";
    assert_eq!(gateway.api().metric(direct), skus.len() as u64);
    drop(gateway);

    // SIGTERM: node a drains, flushes, hands its partitions off and leaves; node b takes them
    // at once, restoring node a's writes from the changelog.
    let (took, clean) = a.terminate();
    assert!(clean, "node a exited with an error on SIGTERM");
    eprintln!("graceful leave of 64 partitions took {took:?}");
    assert!(
        took < Duration::from_secs(30),
        "the leave outlasted a 30 s grace period"
    );
    eventually("node b holds every partition", || {
        holds(&b, 128, |e| e >= 3)
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
    assert!(
        view["takeover"]["restored_messages"].as_u64() > Some(0),
        "{view}"
    );
    assert_eq!(b.get("/v1/locations/east").0, 200, "the catalog stays");
    for sku in &skus {
        let position = b.position(sku, "east");
        assert_eq!(
            fixtures::int(&position, "on_hand"),
            6,
            "both receipts, through a node and through the gateway: {position}"
        );
    }
}

/// Cart holds in a cluster: a hold and the order placed on it live on partitions of different
/// nodes (the conversion crosses nodes), and the expiry timers of the holds of a node that
/// leaves fire on the node that takes its partitions over (restored from the changelog).
#[test]
fn holds_convert_across_nodes_and_expire_where_their_partition_moved() {
    let clock_dir = fixtures::temp_dir();
    let clock = fixtures::TestClock::in_dir(clock_dir.path());
    let args = clock.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut a = Keel::start_on(fixtures::Transport::Nats, fixtures::temp_dir(), &args);
    eventually("node a holds every partition", || holds(&a, 128, |_| true));
    let b = Keel::start_beside(&a.nats().url(), &args);
    eventually("node b holds half the partitions", || {
        holds(&b, 64, |_| true)
    });
    eventually("node a keeps the other half", || holds(&a, 64, |_| true));
    // Which node serves an entity's partition, from node a's /status (its held partitions).
    let on_a: std::collections::HashSet<u64> = status(&a)["epochs"]
        .as_object()
        .map(|epochs| epochs.keys().filter_map(|p| p.parse().ok()).collect())
        .unwrap_or_default();
    let partitioning = keel_cluster::Partitioning::new(128);
    let served_by_a = |key: &str| on_a.contains(&u64::from(partitioning.of(key)));
    let net = fixtures::Network::two_dcs(&a, "ch");
    a.create_sku("ch-A");
    a.receive("ch-r1", "ch-A", &net.east, 40);

    // Sixteen holds through node a (their partitions spread over both nodes), each kept 2.
    let ids: Vec<String> = (0..16).map(|n| format!("ch-h{n}")).collect();
    for id in &ids {
        let body = fixtures::hold_body(id, &net.channel, &[("ch-A", 2)], "east", 60);
        let (code, hold) = a.post("/v1/holds", &body);
        assert_eq!(code, 201, "{hold}");
    }
    // Orders on the first eight through node b: some of them convert a hold another node
    // serves.
    for id in &ids[..8] {
        let mut order = fixtures::order_body(id, &net.channel, &[("ch-A", 2)], "east");
        order["hold"] = serde_json::json!(id);
        let (code, placed) = b.post("/v1/orders", &order);
        assert_eq!(code, 201, "{placed}");
        let line = &fixtures::list(&placed, "lines")[0];
        assert_eq!(fixtures::int(line, "allocated"), 2, "{placed}");
    }
    let position = b.position("ch-A", &net.east);
    assert_eq!(
        (
            fixtures::int(&position, "allocated"),
            fixtures::int(&position, "held")
        ),
        (16, 16),
        "{position}"
    );
    let crossing = ids[..8]
        .iter()
        .filter(|id| served_by_a(&format!("h/{id}")) != served_by_a(&format!("o/{id}")))
        .count();
    assert!(crossing > 0, "no conversion crossed nodes: pick other ids");
    let moving = ids[8..]
        .iter()
        .filter(|id| served_by_a(&format!("h/{id}")))
        .count();
    assert!(
        moving > 0,
        "no expiring hold lives on node a: pick other ids"
    );

    // Node a leaves; node b takes its partitions (and their timers) over, then time passes.
    let (_, clean) = a.terminate();
    assert!(clean, "node a exited with an error on SIGTERM");
    eventually("node b holds every partition", || holds(&b, 128, |_| true));
    clock.advance(61);
    for id in &ids[8..] {
        eventually(&format!("hold {id} expired on node b"), || {
            let (_, hold) = b.get(&format!("/v1/holds/{id}"));
            if hold["status"] == "expired" {
                Ok(())
            } else {
                Err(hold.to_string())
            }
        });
    }
    let position = eventually("the expired holds' units are back", || {
        let p = b.position("ch-A", &net.east);
        if fixtures::int(&p, "held") == 0 {
            Ok(p)
        } else {
            Err(p.to_string())
        }
    });
    assert_eq!(
        (
            fixtures::int(&position, "on_hand"),
            fixtures::int(&position, "allocated"),
            fixtures::int(&position, "available")
        ),
        (40, 16, 24),
        "{position}"
    );
}
