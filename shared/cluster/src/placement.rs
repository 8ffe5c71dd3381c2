//! Where partitions should live: an even spread over the members, reached with few moves.
//!
//! Pure: [`plan`] looks at the members and at who owns what now, and says which partitions
//! should change hands next. Every node computes the same plan from the same inputs, so no
//! node has to be the leader: each acts only on the moves that concern it (a node gives up a
//! partition the plan moves away from it; the receiving node takes it once it is free).

use crate::partition::Partition;
use std::collections::{BTreeMap, BTreeSet};

/// One change of owner the plan asks for.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Move {
    pub partition: Partition,
    /// The current owner (a live member), or `None` for a partition nobody (alive) holds.
    pub from: Option<String>,
    pub to: String,
}

/// The moves that bring `owners` closer to an even spread over `members`.
///
/// - Every partition without a live owner is assigned at once (nobody serves it now).
/// - A partition a live member owns moves only when that member holds more than its share, and
///   at most `max_moves` such moves are planned per round (a handoff costs a pause of the
///   partition; spreading them out keeps the cluster serving).
/// - Shares differ by at most one; the larger shares go to the members already holding the
///   most, so a settled cluster plans nothing.
pub fn plan(
    partitions: u32,
    members: &BTreeSet<String>,
    owners: &BTreeMap<Partition, String>,
    max_moves: usize,
) -> Vec<Move> {
    if members.is_empty() {
        return Vec::new();
    }
    let mut held: BTreeMap<&str, Vec<Partition>> =
        members.iter().map(|m| (m.as_str(), Vec::new())).collect();
    let mut orphans = Vec::new();
    for partition in 0..partitions {
        match owners
            .get(&partition)
            .and_then(|o| held.get_mut(o.as_str()))
        {
            Some(list) => list.push(partition),
            None => orphans.push(partition),
        }
    }
    let shares = shares(partitions, &held);
    let mut surplus = Vec::new();
    for (member, list) in &held {
        for &partition in list.iter().skip(shares[member]) {
            surplus.push((partition, *member));
        }
    }
    let mut count: BTreeMap<&str, usize> = held.iter().map(|(m, l)| (*m, l.len())).collect();
    let mut moves = Vec::new();
    let mut receive = |partition: Partition, from: Option<&str>, moves: &mut Vec<Move>| {
        let Some((to, _)) = count
            .iter()
            .filter(|(m, n)| **n < shares[**m])
            .min_by_key(|(m, n)| (**n, **m))
            .map(|(m, n)| (*m, *n))
        else {
            return;
        };
        *count.get_mut(to).unwrap_or(&mut 0) += 1;
        if let Some(from) = from {
            *count.get_mut(from).unwrap_or(&mut 0) -= 1;
        }
        moves.push(Move {
            partition,
            from: from.map(str::to_owned),
            to: to.to_owned(),
        });
    };
    for partition in orphans {
        receive(partition, None, &mut moves);
    }
    for (partition, from) in surplus.into_iter().take(max_moves) {
        receive(partition, Some(from), &mut moves);
    }
    moves
}

/// Each member's share: `partitions / n`, one more for the first `partitions % n` members by
/// (most held, then name).
fn shares<'a>(
    partitions: u32,
    held: &BTreeMap<&'a str, Vec<Partition>>,
) -> BTreeMap<&'a str, usize> {
    let n = held.len();
    let total = partitions as usize;
    let (base, extra) = (total / n, total % n);
    let mut by_load: Vec<(&str, usize)> = held.iter().map(|(m, l)| (*m, l.len())).collect();
    by_load.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    by_load
        .into_iter()
        .enumerate()
        .map(|(rank, (member, _))| (member, base + usize::from(rank < extra)))
        .collect()
}

/// How evenly `owners` spreads over `members`: (fewest, most) partitions held by one member.
pub fn spread(members: &BTreeSet<String>, owners: &BTreeMap<Partition, String>) -> (usize, usize) {
    let counts = members
        .iter()
        .map(|m| owners.values().filter(|o| *o == m).count());
    let (min, max) = counts.fold((usize::MAX, 0), |(lo, hi), n| (lo.min(n), hi.max(n)));
    if members.is_empty() {
        (0, 0)
    } else {
        (min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| (*n).to_owned()).collect()
    }

    fn apply(owners: &mut BTreeMap<Partition, String>, moves: &[Move]) {
        for m in moves {
            owners.insert(m.partition, m.to.clone());
        }
    }

    #[test]
    fn a_first_node_takes_everything_at_once() {
        let moves = plan(8, &members(&["a"]), &BTreeMap::new(), 1);
        assert_eq!(moves.len(), 8);
        assert!(moves.iter().all(|m| m.from.is_none() && m.to == "a"));
    }

    #[test]
    fn a_joining_node_receives_its_share_a_few_at_a_time() {
        let mut owners: BTreeMap<_, _> = (0..8).map(|p| (p, "a".to_owned())).collect();
        let both = members(&["a", "b"]);
        let first = plan(8, &both, &owners, 2);
        assert_eq!(first.len(), 2);
        assert!(first
            .iter()
            .all(|m| m.from.as_deref() == Some("a") && m.to == "b"));
        apply(&mut owners, &first);
        let second = plan(8, &both, &owners, 2);
        apply(&mut owners, &second);
        assert_eq!(spread(&both, &owners), (4, 4));
        assert!(plan(8, &both, &owners, 2).is_empty());
    }

    proptest! {
        /// From any ownership (including owners that left), repeated rounds settle on a spread
        /// within one, every partition owned by a member, never more than `cap` moves of live
        /// owners per round, and a settled map plans nothing.
        #[test]
        fn rounds_settle_evenly(
            partitions in 1u32..200,
            n in 1usize..8,
            cap in 1usize..16,
            seed in proptest::collection::vec((0u32..200, 0usize..10), 0..200),
        ) {
            let names: Vec<String> = (0..n).map(|i| format!("node-{i}")).collect();
            let live: BTreeSet<String> = names.iter().cloned().collect();
            let mut owners: BTreeMap<Partition, String> = seed
                .into_iter()
                .filter(|(p, _)| *p < partitions)
                .map(|(p, o)| (p, format!("node-{o}")))
                .collect();
            for _round in 0..=(partitions as usize) {
                let moves = plan(partitions, &live, &owners, cap);
                if moves.is_empty() {
                    break;
                }
                let live_moves = moves.iter().filter(|m| m.from.is_some()).count();
                prop_assert!(live_moves <= cap);
                for m in &moves {
                    prop_assert!(live.contains(&m.to));
                    if let Some(from) = &m.from {
                        prop_assert_eq!(owners.get(&m.partition), Some(from));
                    }
                }
                apply(&mut owners, &moves);
            }
            prop_assert!(plan(partitions, &live, &owners, cap).is_empty());
            prop_assert!((0..partitions).all(|p| owners.get(&p).is_some_and(|o| live.contains(o))));
            let (min, max) = spread(&live, &owners);
            prop_assert!(max - min <= 1, "spread {}..{}", min, max);
        }
    }
}
