//! Sourcing policy v1: which locations supply an order.
//!
//! Prefer one location that can supply the whole order; else the fewest locations; ties go to
//! locations in the ship-to region, then to lower priority. What no location can supply is
//! backordered.

use crate::catalog::Location;
use crate::order::{PlannedLine, RequestedLine};
use crate::{LocationId, SkuId};

/// Above this many candidate locations the minimal-split search is greedy, not exhaustive.
const EXHAUSTIVE_LIMIT: usize = 10;

/// The outcome of sourcing: what to reserve where, and what nothing can supply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    pub lines: Vec<PlannedLine>,
    pub backordered: Vec<RequestedLine>,
}

/// Orders candidate locations by preference: ship-to region first, then priority, then id.
pub fn by_preference<'a>(candidates: &'a [Location], ship_region: &str) -> Vec<&'a Location> {
    let mut sorted: Vec<&Location> = candidates.iter().collect();
    sorted.sort_by(|a, b| {
        (a.region != ship_region, a.priority, &a.id).cmp(&(
            b.region != ship_region,
            b.priority,
            &b.id,
        ))
    });
    sorted
}

/// The location where an order's backorders wait: the most preferred candidate.
pub fn backorder_location<'a>(
    candidates: &'a [Location],
    ship_region: &str,
) -> Option<&'a LocationId> {
    by_preference(candidates, ship_region)
        .first()
        .map(|l| &l.id)
}

/// Plans where to source `lines` from `candidates`, given what each SKU-location can promise.
pub fn plan(
    lines: &[RequestedLine],
    candidates: &[Location],
    ship_region: &str,
    atp: impl Fn(&SkuId, &LocationId) -> u64,
) -> Plan {
    let preferred = by_preference(candidates, ship_region);
    let covers = |set: &[&Location]| {
        lines
            .iter()
            .all(|l| set.iter().map(|loc| atp(&l.sku, &loc.id)).sum::<u64>() >= l.quantity)
    };
    let chosen: Vec<&Location> = match fewest_covering(&preferred, &covers) {
        Some(set) => set,
        // Nothing covers the order: take what every location can give, preferred first.
        None => preferred.clone(),
    };
    fill(lines, &chosen, &atp)
}

/// The smallest set of locations that covers every line, best-ranked among equals.
fn fewest_covering<'a>(
    preferred: &[&'a Location],
    covers: &dyn Fn(&[&Location]) -> bool,
) -> Option<Vec<&'a Location>> {
    if preferred.len() > EXHAUSTIVE_LIMIT {
        return greedy_covering(preferred, covers);
    }
    let n = preferred.len();
    // Subsets in order of size, then of their members' preference ranks (lexicographic), so the
    // first covering subset found is the one the policy wants.
    for size in 1..=n {
        let mut best: Option<Vec<usize>> = None;
        for_each_combination(n, size, &mut |ranks| {
            let set: Vec<&Location> = ranks.iter().map(|&i| preferred[i]).collect();
            if best.is_none() && covers(&set) {
                best = Some(ranks.to_vec());
            }
        });
        if let Some(ranks) = best {
            return Some(ranks.into_iter().map(|i| preferred[i]).collect());
        }
    }
    None
}

/// Adds the most preferred remaining location until the set covers the order.
fn greedy_covering<'a>(
    preferred: &[&'a Location],
    covers: &dyn Fn(&[&Location]) -> bool,
) -> Option<Vec<&'a Location>> {
    let mut set = Vec::new();
    for loc in preferred {
        set.push(*loc);
        if covers(&set) {
            return Some(set);
        }
    }
    None
}

/// Calls `visit` with every `size`-subset of `0..n` as ascending indices, lexicographically.
fn for_each_combination(n: usize, size: usize, visit: &mut dyn FnMut(&[usize])) {
    let mut idx: Vec<usize> = (0..size).collect();
    loop {
        visit(&idx);
        let Some(i) = (0..size).rev().find(|&i| idx[i] != i + n - size) else {
            return;
        };
        idx[i] += 1;
        for j in i + 1..size {
            idx[j] = idx[j - 1] + 1;
        }
    }
}

/// Takes each line from the chosen locations in their order; the rest is backordered.
fn fill(
    lines: &[RequestedLine],
    chosen: &[&Location],
    atp: &impl Fn(&SkuId, &LocationId) -> u64,
) -> Plan {
    let mut plan = Plan::default();
    for line in lines {
        let mut missing = line.quantity;
        for loc in chosen {
            if missing == 0 {
                break;
            }
            let take = atp(&line.sku, &loc.id).min(missing);
            if take > 0 {
                plan.lines.push(PlannedLine {
                    location: loc.id.clone(),
                    sku: line.sku.clone(),
                    quantity: take,
                });
                missing -= take;
            }
        }
        if missing > 0 {
            plan.backordered.push(RequestedLine {
                sku: line.sku.clone(),
                quantity: missing,
            });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn loc(id: &str, region: &str, priority: u32) -> Location {
        Location::new(id, id, region, i64::from(priority)).unwrap()
    }

    fn line(sku: &str, quantity: u64) -> RequestedLine {
        RequestedLine {
            sku: SkuId::parse(sku).unwrap(),
            quantity,
        }
    }

    fn run(
        lines: &[RequestedLine],
        locs: &[Location],
        region: &str,
        stock: &[(&str, &str, u64)],
    ) -> Plan {
        let stock: HashMap<(String, String), u64> = stock
            .iter()
            .map(|(s, l, q)| ((s.to_string(), l.to_string()), *q))
            .collect();
        plan(lines, locs, region, |s, l| {
            stock
                .get(&(s.to_string(), l.to_string()))
                .copied()
                .unwrap_or(0)
        })
    }

    fn locations_of(plan: &Plan) -> Vec<&str> {
        let mut locs: Vec<&str> = plan.lines.iter().map(|l| l.location.as_str()).collect();
        locs.dedup();
        locs
    }

    #[test]
    fn one_location_that_supplies_everything_wins_over_a_split() {
        let locs = [loc("east", "east", 1), loc("west", "west", 2)];
        let stock = [
            ("A", "east", 5),
            ("B", "east", 0),
            ("A", "west", 5),
            ("B", "west", 5),
        ];
        let plan = run(&[line("A", 2), line("B", 1)], &locs, "east", &stock);
        assert_eq!(locations_of(&plan), ["west"]);
        assert!(plan.backordered.is_empty());
    }

    #[test]
    fn ties_go_to_the_ship_to_region_then_priority() {
        let locs = [
            loc("a", "west", 1),
            loc("b", "east", 5),
            loc("c", "east", 2),
        ];
        let stock = [("A", "a", 9), ("A", "b", 9), ("A", "c", 9)];
        assert_eq!(
            locations_of(&run(&[line("A", 1)], &locs, "east", &stock)),
            ["c"]
        );
        assert_eq!(
            locations_of(&run(&[line("A", 1)], &locs, "north", &stock)),
            ["a"]
        );
    }

    #[test]
    fn the_fewest_locations_cover_a_split_order() {
        let locs = [loc("l1", "r", 1), loc("l2", "r", 2), loc("l3", "r", 3)];
        // l1 has A only, l2 has B only, l3 has B and C: {l1, l3} covers, {l1, l2} does not.
        let stock = [
            ("A", "l1", 1),
            ("B", "l2", 1),
            ("B", "l3", 1),
            ("C", "l3", 1),
        ];
        let plan = run(
            &[line("A", 1), line("B", 1), line("C", 1)],
            &locs,
            "r",
            &stock,
        );
        assert_eq!(locations_of(&plan), ["l1", "l3", "l3"][..2].to_vec());
        assert!(plan.backordered.is_empty());
    }

    #[test]
    fn what_no_location_has_is_backordered() {
        let locs = [loc("l1", "r", 1), loc("l2", "r", 2)];
        let plan = run(
            &[line("A", 5)],
            &locs,
            "r",
            &[("A", "l1", 2), ("A", "l2", 1)],
        );
        let planned: u64 = plan.lines.iter().map(|l| l.quantity).sum();
        assert_eq!(planned, 3);
        assert_eq!(plan.backordered, vec![line("A", 2)]);
    }

    #[test]
    fn combinations_are_visited_in_lexicographic_order() {
        let mut seen = Vec::new();
        for_each_combination(4, 2, &mut |c| seen.push(c.to_vec()));
        assert_eq!(seen, [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]);
    }
}
