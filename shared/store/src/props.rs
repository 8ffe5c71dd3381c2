//! Property tests of the partition log against a model: a map folded from the same writes.

use super::*;
use crate::record::Write;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;
use std::collections::BTreeMap;

const PARTITIONS: u8 = 3;
const KEYS_PER_PARTITION: u8 = 4;

fn key(partition: u8, n: u8) -> Vec<u8> {
    keyspace::state(&format!("k{}", n * PARTITIONS + partition))
}

/// A round: records, each of one partition, each writing keys of that partition only (as a
/// commit writes its own entity's keys).
fn rounds() -> impl Strategy<Value = Vec<Vec<(u32, Vec<Write>)>>> {
    let write = (0..KEYS_PER_PARTITION, proptest::option::of(any::<u8>()));
    let record = (0..PARTITIONS, vec(write, 1..4)).prop_map(|(p, writes)| {
        let writes = writes
            .into_iter()
            .map(|(n, v)| (key(p, n), v.map(|v| IVec::from(vec![v]))))
            .collect();
        (u32::from(p), writes)
    });
    vec(vec(record, 1..5), 1..10)
}

fn model<'a>(rounds: impl Iterator<Item = &'a Vec<(u32, Vec<Write>)>>) -> BTreeMap<Vec<u8>, IVec> {
    let mut state = BTreeMap::new();
    for (_, writes) in rounds.flatten() {
        for (k, v) in writes {
            match v {
                Some(v) => state.insert(k.clone(), v.clone()),
                None => state.remove(k),
            };
        }
    }
    state
}

/// Every state key the store holds, with its value.
fn states(store: &Store) -> BTreeMap<Vec<u8>, IVec> {
    store
        .log
        .scan_prefix(&keyspace::state(""))
        .map(|item| item.map(|(k, v)| (k.to_vec(), v)).unwrap())
        .collect()
}

/// Writes the log values of `rounds[range]` as the round thread does (round `i` is number i+1).
fn write_log(tree: &sled::Tree, rounds: &[Vec<(u32, Vec<Write>)>], range: std::ops::Range<usize>) {
    for (i, round) in rounds.iter().enumerate().take(range.end).skip(range.start) {
        let mut by_partition: BTreeMap<u32, Vec<&Write>> = BTreeMap::new();
        for (p, writes) in round {
            by_partition.entry(*p).or_default().extend(writes);
        }
        for (p, writes) in by_partition {
            let value = record::encode(writes);
            tree.insert(keyspace::log(i as u64 + 1, p), value).unwrap();
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever a crash leaves — a checkpoint after round k and the log's rounds up to m —
    /// the store opens with the state the commits of rounds 1..=m made.
    #[test]
    fn replaying_any_prefix_of_the_log_onto_a_checkpoint_gives_the_state_at_that_point(
        rounds in rounds(), cut in any::<Index>(), end in any::<Index>(),
    ) {
        let k = cut.index(rounds.len() + 1);
        let m = k + end.index(rounds.len() - k + 1);
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("keel").unwrap();
            for (key, value) in model(rounds[..k].iter()) {
                tree.insert(key, value).unwrap();
            }
            write_log(&tree, &rounds, k..m);
            db.flush().unwrap();
        }
        let store = crate::tests::reopen(dir.path(), &Options::default());
        prop_assert_eq!(states(&store), model(rounds[..m].iter()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// A checkpoint of rounds k+1..=c cut short by a crash — after writing some of its keys, or
    /// all of them and the removal of some of its rounds' log values — loses nothing: the store
    /// opens with the state of every round on disk (1..=m).
    #[test]
    fn a_crash_inside_a_checkpoint_loses_nothing(
        rounds in rounds(), k in any::<Index>(), c in any::<Index>(), m in any::<Index>(),
        keys_written in any::<Index>(), rounds_removed in any::<Index>(),
    ) {
        let k = k.index(rounds.len() + 1);
        let c = k + c.index(rounds.len() - k + 1);
        let m = c + m.index(rounds.len() - c + 1);
        let folded: Vec<(Vec<u8>, Option<IVec>)> = {
            let mut keys = BTreeMap::new();
            for (_, writes) in rounds[k..c].iter().flatten() {
                for (key, value) in writes {
                    keys.insert(key.clone(), value.clone());
                }
            }
            keys.into_iter().collect()
        };
        let written = keys_written.index(folded.len() + 1);
        let removed = if written == folded.len() { rounds_removed.index(c - k + 1) } else { 0 };
        let dir = tempfile::tempdir().unwrap();
        {
            let db = sled::open(dir.path()).unwrap();
            let tree = db.open_tree("keel").unwrap();
            for (key, value) in model(rounds[..k].iter()) {
                tree.insert(key, value).unwrap();
            }
            for (key, value) in &folded[..written] {
                match value {
                    Some(v) => tree.insert(key.as_slice(), v.clone()).unwrap(),
                    None => tree.remove(key.as_slice()).unwrap(),
                };
            }
            write_log(&tree, &rounds, k + removed..m);
            db.flush().unwrap();
        }
        let store = crate::tests::reopen(dir.path(), &Options::default());
        prop_assert_eq!(states(&store), model(rounds[..m].iter()));
    }
}

#[derive(Debug, Clone)]
enum Op {
    Commit { entity: u8, outbox: bool },
    Deliver(Index),
    Flush,
    Checkpoint,
    Reopen,
}

fn ops() -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        6 => (0u8..5, any::<bool>()).prop_map(|(entity, outbox)| Op::Commit { entity, outbox }),
        2 => any::<Index>().prop_map(Op::Deliver),
        1 => Just(Op::Flush),
        1 => Just(Op::Checkpoint),
        1 => Just(Op::Reopen),
    ];
    vec(op, 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Reads see every commit, before and after checkpoints and across reopening.
    #[test]
    fn reads_see_every_commit_across_checkpoints_and_restarts(ops in ops()) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        let dir = tempfile::tempdir().unwrap();
        let options = crate::tests::never_checkpointing();
        let mut store = Store::open(dir.path(), &options).unwrap();
        let mut versions: BTreeMap<u8, u64> = BTreeMap::new();
        let mut outbox: BTreeMap<u64, Vec<u8>> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Commit { entity, outbox: owes } => {
                    let version = versions.get(&entity).copied().unwrap_or(0);
                    let state = format!("{entity}@{}", version + 1);
                    let c = Commit {
                        key: format!("e/{entity}"),
                        expected_version: version,
                        version: version + 1,
                        state: state.clone().into_bytes(),
                        handled: vec![(state.clone(), Vec::new())],
                        outbox: if owes { vec![state.clone().into_bytes()] } else { Vec::new() },
                        ..Commit::default()
                    };
                    let ids = store.commit(&c).unwrap();
                    if let Some(id) = ids.first() {
                        outbox.insert(*id, state.into_bytes());
                    }
                    versions.insert(entity, version + 1);
                }
                Op::Deliver(i) if !outbox.is_empty() => {
                    let id = *outbox.keys().nth(i.index(outbox.len())).unwrap();
                    store.outbox_delivered(id).unwrap();
                    outbox.remove(&id);
                }
                Op::Deliver(_) => {}
                Op::Flush => runtime.block_on(store.flush()).unwrap(),
                Op::Checkpoint => runtime.block_on(store.sync()).unwrap(),
                Op::Reopen => {
                    runtime.block_on(store.flush()).unwrap();
                    drop(store);
                    store = crate::tests::reopen(dir.path(), &options);
                }
            }
            for (entity, version) in &versions {
                let loaded = store.load(&format!("e/{entity}")).unwrap().unwrap();
                prop_assert_eq!(loaded.version, *version);
                prop_assert_eq!(loaded.bytes, format!("{entity}@{version}").into_bytes());
                let handled = format!("{entity}@{version}");
                prop_assert!(store.dedupe(&handled, 0).unwrap().is_some());
            }
            let stored: BTreeMap<u64, Vec<u8>> = store.outbox().map(Result::unwrap).collect();
            prop_assert_eq!(&stored, &outbox);
        }
    }
}
