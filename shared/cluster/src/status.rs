//! What `keel cluster status` shows: members, the partition map with epochs, the spread, and
//! (filled in by the CLI) each partition's command backlog.

use crate::leases::{Coordinator, Lease, Member};
use crate::partition::Partition;
use crate::{placement, Error};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};

/// Moves between live members one rebalancing round may make.
pub const MOVES_PER_ROUND: usize = 8;

/// A snapshot of the cluster, read from its coordination buckets.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterStatus {
    pub partitions: u32,
    pub lease_ttl_ms: u64,
    pub members: Vec<Member>,
    /// Partitions each member owns.
    pub owned: BTreeMap<String, usize>,
    /// Fewest and most partitions one member owns.
    pub spread: (usize, usize),
    /// Partitions nobody holds a live lease for.
    pub unowned: Vec<Partition>,
    /// The next round of moves an even spread over the live members calls for
    /// ([`placement::plan`], at most [`MOVES_PER_ROUND`] between live members).
    pub planned_moves: Vec<placement::Move>,
    pub leases: BTreeMap<Partition, Lease>,
}

impl ClusterStatus {
    /// Reads the current status.
    pub async fn read(coordinator: &Coordinator) -> Result<ClusterStatus, Error> {
        ClusterStatus::read_with(coordinator, |_, _| true).await
    }

    /// Reads the current status, counting as members only those `alive` accepts (given each
    /// member and the number of partitions it holds): the plan then moves nothing to the
    /// others, and counts what they hold as orphans.
    pub async fn read_with(
        coordinator: &Coordinator,
        alive: impl Fn(&Member, usize) -> bool,
    ) -> Result<ClusterStatus, Error> {
        let mut members = coordinator.members().await?;
        let leases = coordinator.leases().await?;
        members.retain(|node, member| {
            let holds = leases.values().filter(|l| &l.owner == node).count();
            alive(member, holds)
        });
        let partitions = coordinator.partitioning().count();
        let names: BTreeSet<String> = members.keys().cloned().collect();
        let owners: BTreeMap<Partition, String> =
            leases.iter().map(|(p, l)| (*p, l.owner.clone())).collect();
        let owned = names
            .iter()
            .map(|m| (m.clone(), owners.values().filter(|o| *o == m).count()))
            .collect();
        let planned_moves = placement::plan(partitions, &names, &owners, MOVES_PER_ROUND);
        Ok(ClusterStatus {
            planned_moves,
            partitions,
            lease_ttl_ms: u64::try_from(coordinator.ttl().as_millis()).unwrap_or(u64::MAX),
            spread: placement::spread(&names, &owners),
            unowned: (0..partitions)
                .filter(|p| !leases.contains_key(p))
                .collect(),
            members: members.into_values().collect(),
            owned,
            leases,
        })
    }

    /// A table for a terminal.
    pub fn render(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        let _ = writeln!(
            out,
            "partitions {}  lease {} ms  members {}  spread {}..{}  unowned {}  planned moves {}",
            self.partitions,
            self.lease_ttl_ms,
            self.members.len(),
            self.spread.0,
            self.spread.1,
            self.unowned.len(),
            self.planned_moves.len()
        );
        for member in &self.members {
            let _ = writeln!(
                out,
                "  member {:<24} {:<22} owns {:>4}  version {}",
                member.node,
                member.address,
                self.owned.get(&member.node).copied().unwrap_or(0),
                member.version
            );
        }
        let _ = writeln!(out, "  partition  owner                    epoch");
        for (partition, lease) in &self.leases {
            let _ = writeln!(
                out,
                "  {partition:>9}  {:<24} {:>5}",
                lease.owner, lease.epoch
            );
        }
        out
    }
}
