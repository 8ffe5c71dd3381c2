use super::*;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &Options::default()).unwrap();
    (dir, store)
}

fn commit(key: &str, expected: u64, state: &str) -> Commit {
    Commit {
        key: key.into(),
        expected_version: expected,
        version: expected + 1,
        state: state.as_bytes().to_vec(),
        ..Commit::default()
    }
}

#[test]
fn a_commit_writes_state_dedupe_outbox_and_ledger_together() {
    let (_dir, store) = open();
    let mut c = commit("s/A@east", 0, "{}");
    c.handled.push(("receipt:r1".into(), b"ok".to_vec()));
    c.outbox = vec![b"m1".to_vec(), b"m2".to_vec()];
    c.ledger = vec![(0, b"e0".to_vec()), (1, b"e1".to_vec())];
    c.marks = vec![("allocating/1".into(), true)];
    c.rows = vec![
        ("r/o1".into(), Some(b"3".to_vec())),
        ("r/o2".into(), Some(b"4".to_vec())),
    ];
    let ids = store.commit(&c).unwrap();
    assert_eq!(ids.len(), 2);
    assert!(ids[0] < ids[1]);
    let loaded = store.load("s/A@east").unwrap().unwrap();
    assert_eq!((loaded.version, loaded.bytes.as_slice()), (1, &b"{}"[..]));
    assert_eq!(store.dedupe("receipt:r1", 0).unwrap(), Some(b"ok".to_vec()));
    let outbox: Vec<_> = store.outbox().map(Result::unwrap).collect();
    assert_eq!(
        outbox,
        vec![(ids[0], b"m1".to_vec()), (ids[1], b"m2".to_vec())]
    );
    store.outbox_delivered(ids[0]).unwrap();
    assert_eq!(store.outbox().count(), 1);
    let ledger: Vec<_> = store.ledger("s/A@east", 0).map(Result::unwrap).collect();
    assert_eq!(ledger, vec![b"e0".to_vec(), b"e1".to_vec()]);
    let tail: Vec<_> = store.ledger("s/A@east", 1).map(Result::unwrap).collect();
    assert_eq!(tail, vec![b"e1".to_vec()]);
    assert_eq!(
        store.ledger("s/A@eas", 0).count(),
        0,
        "prefixes do not leak"
    );
    assert_eq!(store.scan_states("allocating/").count(), 1);
    let mut clear = commit("s/A@east", 1, "{}");
    clear.marks = vec![("allocating/1".into(), false)];
    clear.rows = vec![("r/o1".into(), None)];
    store.commit(&clear).unwrap();
    let rows: Vec<_> = store.rows("s/A@east", "").map(Result::unwrap).collect();
    assert_eq!(rows, vec![("r/o2".to_owned(), b"4".to_vec())]);
    assert_eq!(
        store.rows("s/A@east", "r/o3").count(),
        0,
        "rows from a name on"
    );
    assert_eq!(store.rows("s/A@eas", "").count(), 0, "prefixes do not leak");
    assert_eq!(store.scan_states("allocating/").count(), 0);
}

#[test]
fn a_stale_writer_is_refused_and_changes_nothing() {
    let (_dir, store) = open();
    store.commit(&commit("o/1", 0, "v1")).unwrap();
    let mut stale = commit("o/1", 0, "stale");
    stale.outbox.push(b"lost".to_vec());
    let err = store.commit(&stale).unwrap_err();
    assert!(
        matches!(err, Error::VersionConflict { found: 1, .. }),
        "{err}"
    );
    assert_eq!(store.load("o/1").unwrap().unwrap().bytes, b"v1");
    assert_eq!(store.outbox().count(), 0);
}

#[test]
fn a_command_id_is_handled_once_across_entities() {
    let (_dir, store) = open();
    let mut first = commit("s/A@east", 0, "a");
    first.handled.push(("receipt:r1".into(), b"a".to_vec()));
    store.commit(&first).unwrap();
    let mut second = commit("s/B@east", 0, "b");
    second.handled.push(("receipt:r1".into(), b"b".to_vec()));
    assert!(matches!(
        store.commit(&second),
        Err(Error::AlreadyHandled(_))
    ));
    assert!(store.load("s/B@east").unwrap().is_none());
}

#[test]
fn catalog_inserts_are_first_writer_wins() {
    let (_dir, store) = open();
    assert_eq!(store.catalog_insert("sku/A", b"one").unwrap(), None);
    assert_eq!(
        store.catalog_insert("sku/A", b"two").unwrap(),
        Some(b"one".to_vec())
    );
    assert_eq!(store.catalog_scan("sku/").count(), 1);
}

#[tokio::test]
async fn concurrent_flushes_share_fsyncs_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &Options::default()).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    store.commit(&commit(&format!("o/{i}"), 0, "x")).unwrap();
                    store.flush().await.unwrap();
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        let stats = store.log_stats();
        assert_eq!(stats.waiters, 64);
        assert!(stats.flushes <= 64);
        assert!(stats.rounds <= 64 && stats.records == 64, "{stats:?}");
    }
    let reopened = reopen(dir.path(), &Options::default());
    assert_eq!(reopened.scan_states("o/").count(), 64);
}

#[tokio::test]
async fn rounds_no_checkpoint_wrote_are_replayed_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = Store::open(dir.path(), &never_checkpointing()).unwrap();
        store.commit(&commit("o/1", 0, "before")).unwrap();
        let mut next = Commit {
            handled: vec![("cmd-1".into(), b"reply".to_vec())],
            ledger: vec![(1, b"entry".to_vec())],
            ..commit("o/1", 1, "after")
        };
        next.outbox.push(b"message".to_vec());
        let ids = store.commit(&next).unwrap();
        store.outbox_delivered(ids[0]).unwrap();
        store.flush().await.unwrap();
        assert_eq!(store.log_stats().checkpoints, 0);
        assert!(store.uncheckpointed_keys() > 0);
        // Dropped like a crash after the fsync: the rounds are on disk, no checkpoint is.
    }
    let reopened = reopen(dir.path(), &never_checkpointing());
    let state = reopened.load("o/1").unwrap().unwrap();
    assert_eq!((state.version, state.bytes.as_slice()), (2, &b"after"[..]));
    assert_eq!(
        reopened.dedupe("cmd-1", 0).unwrap(),
        Some(b"reply".to_vec())
    );
    assert_eq!(reopened.ledger("o/1", 0).count(), 1);
    assert_eq!(
        reopened.outbox().count(),
        0,
        "the delivery was replayed too"
    );
    assert_eq!(reopened.uncheckpointed_keys(), 0);
    assert_eq!(
        reopened
            .db
            .open_tree("keel")
            .unwrap()
            .scan_prefix(keyspace::LOG_PREFIX)
            .count(),
        0,
        "the replayed log is dropped"
    );
}

/// Options under which no checkpoint runs unless asked for (`sync`).
pub(crate) fn never_checkpointing() -> Options {
    Options {
        checkpoint: CheckpointPolicy {
            interval: std::time::Duration::from_secs(3600),
            max_bytes: usize::MAX,
            ..CheckpointPolicy::default()
        },
        ..Options::default()
    }
}

#[tokio::test]
async fn a_checkpoint_writes_each_key_once_whatever_its_versions() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &never_checkpointing()).unwrap();
    for version in 0..1_000 {
        let mut c = commit("s/hot", version, &format!("v{version}"));
        c.handled
            .push((format!("reserve-{version}"), b"ok".to_vec()));
        c.outbox.push(b"event".to_vec());
        let ids = store.commit(&c).unwrap();
        store.outbox_delivered(ids[0]).unwrap();
    }
    store.sync().await.unwrap();
    let stats = store.log_stats();
    assert_eq!(stats.checkpoints, 1);
    // One state, 1,000 dedupe records and the log values dropped; the 1,000 outbox entries
    // were written and delivered in between, so sled never sees them.
    assert_eq!(
        stats.checkpoint_writes,
        1 + 1_000 + stats.log_writes,
        "{stats:?}"
    );
    assert_eq!(store.uncheckpointed_keys(), 0);
    let state = store.load("s/hot").unwrap().unwrap();
    assert_eq!(
        (state.version, state.bytes.as_slice()),
        (1_000, &b"v999"[..])
    );
    assert_eq!(store.outbox().count(), 0);
}

#[tokio::test]
async fn a_checkpoint_runs_every_interval_without_being_asked() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        checkpoint: CheckpointPolicy {
            interval: std::time::Duration::from_millis(20),
            ..CheckpointPolicy::default()
        },
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    for round in 0..2 {
        store.commit(&commit("o/1", round, "x")).unwrap();
        store.flush().await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while store.log_stats().checkpoints <= round {
            assert!(std::time::Instant::now() < deadline, "no checkpoint ran");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(store.uncheckpointed_keys(), 0);
    }
}

#[tokio::test]
async fn ledger_entries_are_filed_into_pages_and_read_with_those_not_filed_yet() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |seq: u64| format!("e{seq}").into_bytes();
    {
        // A store from before pages: single-entry ledger keys in sled.
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("keel").unwrap();
        for seq in 0..3 {
            tree.insert(keyspace::ledger("s/A@east", seq), entry(seq))
                .unwrap();
        }
        db.flush().unwrap();
    }
    let store = reopen(dir.path(), &never_checkpointing());
    let (mut version, mut seq) = (0, 3);
    let mut append = |store: &Store, n: u64| {
        let mut c = commit("s/A@east", version, "{}");
        c.ledger = (seq..seq + n).map(|s| (s, entry(s))).collect();
        store.commit(&c).unwrap();
        (version, seq) = (version + 1, seq + n);
    };
    for _ in 0..10 {
        append(&store, 15);
    }
    store.sync().await.unwrap();
    let stats = store.log_stats();
    // Entries 3..153 of one entity in one checkpoint: one page write, not 150 entry writes.
    assert_eq!(
        stats.checkpoint_writes,
        1 + 1 + stats.log_writes,
        "{stats:?}"
    );
    for _ in 0..4 {
        append(&store, 10);
    }
    let expect = |from: u64| -> Vec<Vec<u8>> { (from..193).map(entry).collect() };
    let read = |store: &Store, from: u64| -> Vec<Vec<u8>> {
        store.ledger("s/A@east", from).map(Result::unwrap).collect()
    };
    for from in [0, 1, 3, 63, 64, 100, 152, 153, 170, 192, 193, 500] {
        assert_eq!(read(&store, from), expect(from), "from {from}");
    }
    assert_eq!(
        store.ledger("s/A@eas", 0).count(),
        0,
        "prefixes do not leak"
    );
    drop(store);
    // The entries no checkpoint filed come back from the log, and a checkpoint files them
    // as a second page.
    let store = reopen(dir.path(), &never_checkpointing());
    assert_eq!(read(&store, 0), expect(0));
    store.sync().await.unwrap();
    for from in [0, 152, 153, 160, 192, 193] {
        assert_eq!(read(&store, from), expect(from), "from {from}");
    }
}

#[test]
fn a_legacy_journal_record_a_crash_left_is_finished_when_the_store_opens() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = sled::open(dir.path()).unwrap();
        let tree = db.open_tree("keel").unwrap();
        // What the pre-log store left between its journal record and the writes it announced.
        let interrupted = Commit {
            handled: vec![("cmd-1".into(), b"reply".to_vec())],
            ..commit("o/1", 0, "after")
        };
        let writes =
            interrupted.writes(keyspace::state("o/1"), vec![keyspace::dedupe("cmd-1")], &[]);
        tree.insert(b"j:\0\0\0\0\0\0\0\x63", record::encode(&writes))
            .unwrap();
        db.flush().unwrap();
    }
    let reopened = reopen(dir.path(), &Options::default());
    assert_eq!(reopened.load("o/1").unwrap().unwrap().version, 1);
    assert_eq!(
        reopened.dedupe("cmd-1", 0).unwrap(),
        Some(b"reply".to_vec())
    );
}

#[test]
fn concurrent_commits_of_one_entity_let_exactly_one_writer_win() {
    let (_dir, store) = open();
    store.commit(&commit("s/hot", 0, "v1")).unwrap();
    let winners: usize = std::thread::scope(|scope| {
        let tries: Vec<_> = (0..8)
            .map(|i| {
                let store = store.clone();
                scope.spawn(move || store.commit(&commit("s/hot", 1, &format!("w{i}"))).is_ok())
            })
            .collect();
        tries
            .into_iter()
            .map(|t| usize::from(t.join().unwrap()))
            .sum()
    });
    assert_eq!(winners, 1);
    assert_eq!(store.load("s/hot").unwrap().unwrap().version, 2);
}

/// Keeps what a store hands its replica, in order, per lane.
#[derive(Debug, Default)]
struct Recorded(parking_lot::Mutex<Vec<(Lane, Vec<u8>)>>);

impl Replica for Recorded {
    fn partition_of(&self, key: &str) -> u32 {
        u32::from(key.as_bytes().last().copied().unwrap_or(0) % 4)
    }
    fn append(&self, lane: Lane, record: Vec<u8>) -> Result<(), String> {
        self.0.lock().push((lane, record));
        Ok(())
    }
    fn durable(&self) -> Durable {
        Box::pin(async { Ok(()) })
    }
}

fn open_replicated() -> (tempfile::TempDir, Store, Arc<Recorded>) {
    let dir = tempfile::tempdir().unwrap();
    let replica = Arc::new(Recorded::default());
    let options = Options {
        replica: Some(replica.clone()),
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    (dir, store, replica)
}

#[tokio::test]
async fn a_store_rebuilt_from_its_replica_has_the_same_state() {
    let (_dir, store, replica) = open_replicated();
    let mut c = commit("s/A@east", 0, "{}");
    c.handled.push(("receipt:r1".into(), b"ok".to_vec()));
    c.outbox = vec![b"m1".to_vec(), b"m2".to_vec()];
    c.ledger = vec![(0, b"e0".to_vec())];
    let ids = store.commit(&c).unwrap();
    store.commit(&commit("o/2", 0, "order")).unwrap();
    store.outbox_delivered(ids[0]).unwrap();
    store.catalog_insert("sku/A", b"a").unwrap();
    store.catalog_insert("sku/A", b"other").unwrap();
    store.flush().await.unwrap();

    let records = replica.0.lock().clone();
    let partition = replica.partition_of("s/A@east");
    let lanes: Vec<Lane> = records.iter().map(|(lane, _)| *lane).collect();
    assert_eq!(
        lanes,
        [
            Lane::Partition(partition),
            Lane::Partition(replica.partition_of("o/2")),
            Lane::Partition(partition),
            Lane::Catalog,
        ],
        "one record per commit, the delivery and the first catalog insert"
    );

    let (_other_dir, rebuilt) = open();
    for (_, record) in &records {
        rebuilt.apply_record(record).unwrap();
    }
    assert_eq!(
        rebuilt.load("s/A@east").unwrap(),
        store.load("s/A@east").unwrap()
    );
    assert_eq!(rebuilt.load("o/2").unwrap(), store.load("o/2").unwrap());
    assert_eq!(
        rebuilt.dedupe("receipt:r1", 0).unwrap(),
        Some(b"ok".to_vec())
    );
    let outbox: Vec<_> = rebuilt.outbox().map(Result::unwrap).collect();
    assert_eq!(
        outbox,
        vec![(ids[1], b"m2".to_vec())],
        "the delivered entry stays gone"
    );
    assert_eq!(rebuilt.ledger("s/A@east", 0).count(), 1);
    assert_eq!(rebuilt.catalog_scan("sku/").count(), 1);

    // The rebuilt store's own outbox ids stay clear of the ones it restored.
    let mut next = commit("s/A@east", 1, "{}");
    next.outbox = vec![b"m3".to_vec()];
    let fresh = rebuilt.commit(&next).unwrap();
    assert!(fresh[0] > ids[1], "{fresh:?} after {ids:?}");
    assert_eq!(rebuilt.outbox().count(), 2);

    rebuilt.clear().unwrap();
    assert!(rebuilt.load("s/A@east").unwrap().is_none());
    assert_eq!(rebuilt.outbox().count(), 0);
}

#[tokio::test]
async fn with_a_replica_the_log_writes_no_values_and_a_sync_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        replica: Some(Arc::new(Recorded::default())),
        ..never_checkpointing()
    };
    {
        let store = Store::open(dir.path(), &options).unwrap();
        for version in 0..100 {
            store
                .commit(&commit("s/hot", version, &format!("v{version}")))
                .unwrap();
        }
        store.flush().await.unwrap();
        store.sync().await.unwrap();
        let stats = store.log_stats();
        assert!(stats.rounds >= 1 && stats.records == 100, "{stats:?}");
        assert_eq!((stats.log_writes, stats.log_bytes), (0, 0), "{stats:?}");
        assert_eq!(stats.checkpoint_writes, 1, "the key's newest value only");
    }
    let reopened = Store::open(dir.path(), &options).unwrap();
    assert_eq!(reopened.load("s/hot").unwrap().unwrap().version, 100);
}

#[tokio::test]
async fn a_replica_that_cannot_make_commits_durable_fails_the_flush() {
    let (_dir, store) = with_replica(Arc::new(Refusing { owns: 0 }));
    store.commit(&commit("o/2", 0, "x")).unwrap();
    assert!(matches!(store.flush().await, Err(Error::Replica(r)) if r == "fenced"));
    store.sync().await.unwrap();
}

/// Owns partition `owns` only (keys' last byte mod 2), and can make nothing durable.
#[derive(Debug)]
struct Refusing {
    owns: u32,
}

impl Replica for Refusing {
    fn partition_of(&self, key: &str) -> u32 {
        u32::from(key.as_bytes().last().copied().unwrap_or(0) % 2)
    }
    fn append(&self, lane: Lane, _: Vec<u8>) -> Result<(), String> {
        match lane {
            Lane::Partition(p) if p != self.owns => Err(format!("partition {p} is elsewhere")),
            _ => Ok(()),
        }
    }
    fn durable(&self) -> Durable {
        Box::pin(async { Err("fenced".to_owned()) })
    }
}

fn with_replica(replica: Arc<dyn Replica>) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        replica: Some(replica),
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    (dir, store)
}

#[test]
fn a_commit_the_replica_refuses_writes_nothing() {
    let (_dir, store) = with_replica(Arc::new(Refusing { owns: 0 }));
    // "o/1" ends in '1' (partition 1): not this node's.
    let mut c = commit("o/1", 0, "x");
    c.outbox = vec![b"m".to_vec()];
    assert!(matches!(store.commit(&c), Err(Error::NotOwner(r)) if r.contains("elsewhere")));
    assert!(store.load("o/1").unwrap().is_none());
    assert_eq!(store.outbox().count(), 0);
    // "o/2" (partition 0) is written, and its outbox entry is found by its partition.
    c.key = "o/2".into();
    let ids = store.commit(&c).unwrap();
    let of = |p| store.outbox_of(p).map(|e| e.unwrap().0).collect::<Vec<_>>();
    assert_eq!(of(0), ids);
    assert!(of(1).is_empty());
}

/// Opens the store again once the dropped one has let go of sled's file lock (sled's own I/O
/// threads may still hold it for a moment after the last handle is dropped).
pub(crate) fn reopen(dir: &std::path::Path, options: &Options) -> Store {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match Store::open(dir, options) {
            Ok(store) => return store,
            Err(Error::Sled(sled::Error::Io(e)))
                if e.kind() == std::io::ErrorKind::Other
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => panic!("reopening the store: {e}"),
        }
    }
}

#[tokio::test]
async fn timers_are_found_once_due_in_due_order_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    // Never checkpointed: the timers come back from the log's replay.
    let store = Store::open(dir.path(), &never_checkpointing()).unwrap();
    let timer = |due, name: &str, set| TimerChange {
        due,
        name: name.into(),
        set,
    };
    let mut a = commit("h/a", 0, "a");
    a.timers = vec![timer(2_000, "expire", true)];
    let mut b = commit("h/b", 0, "b");
    b.timers = vec![timer(1_000, "expire", true), timer(5_000, "remind", true)];
    store.commit(&a).unwrap();
    store.commit(&b).unwrap();
    let due = |store: &Store, now| -> Vec<(u64, String, String)> {
        store
            .due_timers(now)
            .map(|t| t.map(|t| (t.due, t.entity, t.name)).unwrap())
            .collect()
    };
    assert!(due(&store, 999).is_empty());
    let expect = |list: &[(u64, &str, &str)]| -> Vec<(u64, String, String)> {
        list.iter()
            .map(|(d, e, n)| (*d, (*e).to_owned(), (*n).to_owned()))
            .collect()
    };
    assert_eq!(due(&store, 1_000), expect(&[(1_000, "h/b", "expire")]));
    assert_eq!(
        due(&store, 4_999),
        expect(&[(1_000, "h/b", "expire"), (2_000, "h/a", "expire")])
    );
    // Cancelled in the commit that handles it: never due again.
    let mut fired = commit("h/b", 1, "b2");
    fired.timers = vec![timer(1_000, "expire", false)];
    store.commit(&fired).unwrap();
    assert_eq!(due(&store, 4_999), expect(&[(2_000, "h/a", "expire")]));
    store.flush().await.unwrap();
    drop(store);
    let store = reopen(dir.path(), &Options::default());
    assert_eq!(
        due(&store, u64::MAX),
        expect(&[(2_000, "h/a", "expire"), (5_000, "h/b", "remind")])
    );
}

#[test]
fn archiving_moves_a_state_out_of_the_live_keys_in_one_record() {
    let (_dir, store) = open();
    let mut c = commit("o/1", 0, "closed");
    c.marks = vec![("archive/0001/1".into(), true)];
    store.commit(&c).unwrap();
    let stale = store.archive("o/1", 0, b"old", &[]).unwrap_err();
    assert!(
        matches!(stale, Error::VersionConflict { found: 1, .. }),
        "{stale}"
    );
    store
        .archive("o/1", 1, b"closed", &["archive/0001/1".into()])
        .unwrap();
    assert!(store.load("o/1").unwrap().is_none());
    assert_eq!(store.scan_states("archive/").count(), 0);
    let archived = store.load_archived("o/1").unwrap().unwrap();
    assert_eq!(
        (archived.version, archived.bytes.as_slice()),
        (1, &b"closed"[..])
    );
    assert!(store.load_archived("o/2").unwrap().is_none());
}

#[test]
fn ids_between_actors_expire_by_bucket_while_document_ids_stay() {
    let dir = tempfile::tempdir().unwrap();
    let options = Options {
        dedupe_retention: std::time::Duration::from_secs(10),
        ..Options::default()
    };
    let store = Store::open(dir.path(), &options).unwrap();
    let mut c = commit("s/A@east", 0, "{}");
    c.at = 15_000;
    c.handled = vec![
        ("o/1#a1.0".into(), b"granted".to_vec()),
        ("receipt:r1".into(), b"received".to_vec()),
    ];
    store.commit(&c).unwrap();
    // A repeat within the retention is refused as handled, whichever bucket it falls in.
    let mut again = commit("s/A@east", 1, "{}");
    again.at = 24_000;
    again.handled = vec![("o/1#a1.0".into(), b"twice".to_vec())];
    assert!(matches!(
        store.commit(&again),
        Err(Error::AlreadyHandled(_))
    ));
    assert_eq!(
        store.expire_dedupe(29_999, 100).unwrap(),
        0,
        "still looked up"
    );
    assert!(store.dedupe("o/1#a1.0", 29_999).unwrap().is_some());
    assert_eq!(store.expire_dedupe(30_000, 100).unwrap(), 1);
    assert_eq!(store.dedupe("o/1#a1.0", 30_000).unwrap(), None);
    assert_eq!(
        store.dedupe("receipt:r1", u64::MAX).unwrap(),
        Some(b"received".to_vec()),
        "a client's document id is kept for good"
    );
    assert_eq!(store.expire_dedupe(u64::MAX, 100).unwrap(), 0);
}

#[tokio::test]
async fn a_compacted_store_holds_the_same_keys_in_less_space() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    {
        let store = Store::open(&data, &never_checkpointing()).unwrap();
        // A hot key rewritten many times, checkpoint after checkpoint: garbage for sled.
        let big = "x".repeat(4096);
        for version in 0..3_000 {
            let mut c = commit("s/hot", version, &format!("{big}{version}"));
            c.ledger = vec![(version, format!("e{version}").into_bytes())];
            c.handled.push((format!("cmd-{version}"), b"ok".to_vec()));
            store.commit(&c).unwrap();
            if version % 500 == 499 {
                store.sync().await.unwrap();
            }
        }
        // The last ones only in the log: compaction must replay them first.
        store.flush().await.unwrap();
    }
    let options = Options::default();
    let report = compact_when_free(&data, &options);
    assert!(report.keys > 3_000, "{report:?}");
    assert!(report.bytes_after < report.bytes_before, "{report:?}");
    let store = reopen(&data, &options);
    let state = store.load("s/hot").unwrap().unwrap();
    assert_eq!(state.version, 3_000);
    assert!(state.bytes.ends_with(b"2999"));
    assert_eq!(store.ledger("s/hot", 0).count(), 3_000);
    assert_eq!(store.dedupe("cmd-2999", 0).unwrap(), Some(b"ok".to_vec()));
}

#[tokio::test]
async fn compaction_can_turn_compression_on_and_the_store_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let json =
        |i: u64| format!(r#"{{"order":"shop-{i:08}","lines":[{{"sku":"P{i}","quantity":1}}]}}"#);
    {
        let store = Store::open(&data, &Options::default()).unwrap();
        for i in 0..2_000 {
            store
                .commit(&commit(&format!("s/o{i}"), 0, &json(i)))
                .unwrap();
        }
        store.flush().await.unwrap();
    }
    let compress = Options {
        compression: Some(true),
        ..Options::default()
    };
    let plain = compact_when_free(&data, &Options::default());
    assert!(!plain.compressed, "kept the store's setting: {plain:?}");
    let compressed = compact_when_free(&data, &compress);
    assert!(compressed.compressed);
    assert!(
        compressed.bytes_after < plain.bytes_after,
        "{plain:?} then {compressed:?}"
    );
    // Opened without asking, it runs compressed, and a later compaction keeps that.
    {
        let store = reopen(&data, &Options::default());
        assert_eq!(
            store.load("s/o1999").unwrap().unwrap().bytes,
            json(1999).as_bytes()
        );
        store
            .commit(&commit("s/new", 0, "written compressed"))
            .unwrap();
        store.flush().await.unwrap();
    }
    let again = compact_when_free(&data, &Options::default());
    assert!(again.compressed, "{again:?}");
    let store = reopen(&data, &Options::default());
    assert_eq!(
        store.load("s/new").unwrap().unwrap().bytes,
        b"written compressed"
    );
}

/// Compacts `data` once sled's I/O threads of a dropped store let go of its file lock.
fn compact_when_free(data: &Path, options: &Options) -> crate::Compaction {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match compact(data, options) {
            Ok(report) => return report,
            Err(Error::Sled(_)) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            Err(e) => panic!("{e}"),
        }
    }
}

/// Everything of the partition of `key` a store holds, for comparing two stores.
fn partition_view(store: &Store, key: &str) -> Vec<String> {
    let mut view = vec![format!("{:?}", store.load(key).unwrap())];
    view.extend(store.outbox().map(|e| format!("outbox {:?}", e.unwrap())));
    view.extend(store.rows(key, "").map(|r| format!("row {:?}", r.unwrap())));
    view.extend(
        store
            .ledger(key, 0)
            .map(|e| format!("ledger {:?}", e.unwrap())),
    );
    view.extend(
        store
            .due_timers(u64::MAX)
            .map(|t| format!("{:?}", t.unwrap())),
    );
    view.extend(
        store
            .scan_states("allocating/")
            .map(|m| format!("{:?}", m.unwrap())),
    );
    view
}

#[tokio::test]
async fn a_snapshot_over_an_older_copy_leaves_what_the_whole_log_would() {
    let (_dir, store, replica) = open_replicated();
    // "s/A" and the marker "allocating/1" are in partition 1; "o/2" is in partition 2.
    let partition = replica.partition_of("s/A");
    assert_eq!(partition, replica.partition_of("allocating/1"));
    let mut first = commit("s/A", 0, "v1");
    first.outbox = vec![b"m1".to_vec()];
    first.rows = vec![("r1".into(), Some(b"1".to_vec()))];
    first.marks = vec![("allocating/1".into(), true)];
    first.timers = vec![TimerChange {
        due: 5,
        name: "t".into(),
        set: true,
    }];
    first.handled.push(("o/9#c1".into(), b"ok".to_vec()));
    first.at = 1;
    let ids = store.commit(&first).unwrap();
    store.commit(&commit("o/2", 0, "other")).unwrap();
    store.flush().await.unwrap();
    let older = replica.0.lock().len();

    // Later the partition deletes what it had and writes new things.
    store.outbox_delivered(ids[0]).unwrap();
    let mut second = commit("s/A", 1, "v2");
    second.rows = vec![("r1".into(), None), ("r2".into(), Some(b"2".to_vec()))];
    second.marks = vec![("allocating/1".into(), false)];
    second.timers = vec![
        TimerChange {
            due: 5,
            name: "t".into(),
            set: false,
        },
        TimerChange {
            due: 9,
            name: "u".into(),
            set: true,
        },
    ];
    second.ledger = vec![(0, b"e0".to_vec())];
    store.commit(&second).unwrap();
    store.flush().await.unwrap();

    let records = replica.0.lock().clone();
    let mut fold = store.fold();
    for (_, record) in records
        .iter()
        .filter(|(l, _)| *l == Lane::Partition(partition))
    {
        fold.apply(record).unwrap();
    }
    let snapshot = fold.encode(0);

    let (_old_dir, old, _) = open_replicated();
    for (_, record) in &records[..older] {
        old.apply_record(record).unwrap();
    }
    assert_ne!(partition_view(&old, "s/A"), partition_view(&store, "s/A"));
    assert!(old.forget_partition(partition).unwrap() >= 5);
    old.apply_record(&snapshot).unwrap();
    assert_eq!(partition_view(&old, "s/A"), partition_view(&store, "s/A"));
    assert_eq!(
        old.load("o/2").unwrap(),
        store.load("o/2").unwrap(),
        "other partitions stay"
    );
    assert_eq!(old.dedupe("o/9#c1", 1).unwrap(), Some(b"ok".to_vec()));

    // Once its retention is over, an id between actors is left out of the next snapshot.
    let week = 7 * 24 * 3600 * 1000;
    assert!(fold.encode(3 * week).len() < snapshot.len());
}
