//! Where handled command ids are remembered, and for how long.
//!
//! A client's document id (`receipt:r-1`, `adjustment:a-7`: a `:` names the kind) is kept for
//! good under `d:{id}`: a receipt posted again months later is answered as the first time.
//! Ids of commands between actors (a saga's reservations, outbox deliveries, timer firings:
//! they never hold a `:`) are only ever repeated within minutes (retries, recovery after a
//! restart); they are kept in buckets of one retention period, `x:{bucket}{id}`, looked up in
//! the current and the previous bucket, and a whole bucket is dropped once it is two periods
//! old. So such an id is recognised for at least the retention and at most twice it, and
//! remembering one costs its one key while it lives and nothing after.

use crate::keyspace;
use std::time::Duration;

/// How long ids of commands between actors are remembered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    period_ms: u64,
}

impl Retention {
    pub(crate) fn new(period: Duration) -> Self {
        Retention {
            period_ms: u64::try_from(period.as_millis()).unwrap_or(u64::MAX).max(1),
        }
    }

    fn bucket(&self, at: u64) -> u64 {
        at / self.period_ms
    }

    /// The key the command `id` handled at `at` (ms since the Unix epoch) is recorded under.
    pub(crate) fn key(&self, id: &str, at: u64) -> Vec<u8> {
        if is_document(id) {
            keyspace::dedupe(id)
        } else {
            keyspace::expiring_dedupe(self.bucket(at), id)
        }
    }

    /// Every key the command `id` may be recorded under, looked up at `now`: its bucket and
    /// the previous one, and the key a store from before the buckets used.
    pub(crate) fn candidates(&self, id: &str, now: u64) -> Vec<Vec<u8>> {
        if is_document(id) {
            return vec![keyspace::dedupe(id)];
        }
        let bucket = self.bucket(now);
        let mut keys = vec![keyspace::expiring_dedupe(bucket, id)];
        if let Some(previous) = bucket.checked_sub(1) {
            keys.push(keyspace::expiring_dedupe(previous, id));
        }
        keys.push(keyspace::dedupe(id));
        keys
    }

    /// The first bucket still looked up at `now`: every key below it may go.
    pub(crate) fn oldest_kept(&self, now: u64) -> u64 {
        self.bucket(now).saturating_sub(1)
    }
}

/// Whether `id` is a client's document id (kept for good).
fn is_document(id: &str) -> bool {
    id.contains(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_between_actors_is_found_for_one_period_at_least_and_two_at_most() {
        let r = Retention::new(Duration::from_secs(10));
        let key = r.key("o/1#a1.0", 15_000);
        assert!(r.candidates("o/1#a1.0", 15_000).contains(&key));
        assert!(
            r.candidates("o/1#a1.0", 24_999).contains(&key),
            "one period on"
        );
        assert!(r.candidates("o/1#a1.0", 29_999).contains(&key), "up to two");
        assert!(!r.candidates("o/1#a1.0", 30_000).contains(&key));
        assert_eq!(r.oldest_kept(30_000), 2, "bucket 1 (10-20 s) may go");
        let document = r.key("receipt:r-1", 15_000);
        assert_eq!(r.candidates("receipt:r-1", u64::MAX), vec![document]);
    }
}
