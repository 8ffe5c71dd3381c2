//! Entities to partitions: a stable hash of the entity's key, modulo a count fixed when the
//! cluster is created.

use serde::{Deserialize, Serialize};

/// A partition number, `0..count`.
pub type Partition = u32;

/// The default partition count: 10× the twelve nodes a cluster is planned to reach. Changing
/// it later would move every entity, so it is fixed when the cluster is created.
pub const DEFAULT_PARTITIONS: u32 = 128;

/// How a cluster's entities are spread over partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Partitioning {
    count: u32,
}

impl Partitioning {
    /// `count` partitions (at least one).
    pub fn new(count: u32) -> Partitioning {
        Partitioning {
            count: count.max(1),
        }
    }

    /// How many partitions there are.
    pub fn count(self) -> u32 {
        self.count
    }

    /// Every partition, in order.
    pub fn all(self) -> impl Iterator<Item = Partition> {
        0..self.count
    }

    /// The partition of the entity with this key (`order/o-1`, `stock/SKU@loc`, …).
    ///
    /// FNV-1a: the same on every node, every build and every platform (std's hasher is
    /// neither stable across releases nor meant to be), and it spreads short keys well.
    pub fn of(self, key: &str) -> Partition {
        let hash = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
        });
        u32::try_from(hash % u64::from(self.count)).unwrap_or(0)
    }
}

impl Default for Partitioning {
    fn default() -> Self {
        Partitioning::new(DEFAULT_PARTITIONS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_pinned() {
        // Nodes of different builds must agree: this value may never change (it is FNV-1a 64 of
        // the key, modulo the count, as any implementation computes it).
        assert_eq!(Partitioning::new(128).of("order/o-1"), 11);
        assert_eq!(Partitioning::new(1).of("anything"), 0);
    }

    #[test]
    fn keys_spread_evenly() {
        let partitioning = Partitioning::new(64);
        let mut counts = vec![0u32; 64];
        for i in 0..64_000 {
            counts[partitioning.of(&format!("order/o-{i}")) as usize] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min > 800 && *max < 1200, "min {min} max {max}");
    }
}
