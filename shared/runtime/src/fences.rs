//! The fence on command batches between nodes. A batch names the sender's lease epoch for
//! each partition whose commands it holds (`Keel-Epochs`); the receiver remembers the highest
//! epoch it admitted per partition and refuses a batch that names an older one: it comes from
//! a node that owned that partition once and no longer does (a paused node that woke up, or a
//! node still sending what it owed before a hand-off). The new owner delivers those commands
//! itself, from the outbox it restored.
//!
//! The memory is the receiving node's, since it started: defence in depth. What keeps a stale
//! owner from acting at all is the changelog's fence (nothing it decides becomes durable, and
//! it sends a command only after the decision owing it is durable).

use parking_lot::Mutex;
use std::collections::HashMap;

/// A batch from an epoch older than one admitted before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stale {
    pub partition: u32,
    pub epoch: u64,
    pub admitted: u64,
}

impl std::fmt::Display for Stale {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "commands of partition {} from epoch {}, older than epoch {} already applied: their sender no longer owns that partition",
            self.partition, self.epoch, self.admitted
        )
    }
}

/// The highest epoch admitted per source partition.
#[derive(Debug, Default)]
pub(crate) struct Fences {
    admitted: Mutex<HashMap<u32, u64>>,
}

impl Fences {
    /// Admits a batch naming these (partition, epoch) pairs, raising what is remembered, or
    /// refuses it (whole: nothing is raised) for the first pair older than what was admitted.
    pub(crate) fn admit(&self, epochs: &[(u32, u64)]) -> Result<(), Stale> {
        let mut admitted = self.admitted.lock();
        for &(partition, epoch) in epochs {
            let seen = admitted.get(&partition).copied().unwrap_or(0);
            if epoch < seen {
                return Err(Stale {
                    partition,
                    epoch,
                    admitted: seen,
                });
            }
        }
        for &(partition, epoch) in epochs {
            let seen = admitted.entry(partition).or_insert(epoch);
            *seen = (*seen).max(epoch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_older_epoch_is_refused_once_a_newer_one_was_admitted() {
        let fences = Fences::default();
        assert_eq!(fences.admit(&[(1, 4), (2, 1)]), Ok(()));
        assert_eq!(fences.admit(&[(1, 4)]), Ok(()), "the same epoch again");
        assert_eq!(fences.admit(&[(1, 5)]), Ok(()), "a new owner");
        let stale = Stale {
            partition: 1,
            epoch: 4,
            admitted: 5,
        };
        assert_eq!(fences.admit(&[(2, 9), (1, 4)]), Err(stale));
        assert_eq!(
            fences.admit(&[(2, 8)]),
            Ok(()),
            "a refused batch raised nothing"
        );
        assert!(stale.to_string().contains("no longer owns"));
    }

    #[test]
    fn a_batch_naming_no_epochs_is_admitted() {
        assert_eq!(Fences::default().admit(&[]), Ok(()));
    }
}
