//! Reads the end state through the query API, in parallel, for [`crate::verify`].
//!
//! To get a consistent picture without a snapshot endpoint, positions are read before and after
//! the orders; if any position changed in between (the system was not quiescent yet), the whole
//! read is repeated after a pause.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::Duration;

use crate::api::Position;
use crate::catalog::Catalog;
use crate::client::{
    map_parallel, with_retry, CallError, Connector, KeelClient, Outcome, Reply, RetryPolicy,
};
use crate::verify::{Fetched, Observed, ObservedPosition};

/// Snapshot attempts before verifying whatever was read last.
const MAX_ROUNDS: usize = 5;
/// After this many reads in a row failed without an answer, the server is taken to be gone and
/// the remaining reads fail at once instead of each waiting for its retries.
const GIVE_UP_AFTER: u32 = 32;

/// Counts reads in a row that got no answer, across threads.
#[derive(Debug, Default)]
struct Breaker(AtomicU32);

/// Reads every SKU-location of `catalog` (position and ledger) and the orders `order_ids`.
pub fn observe(
    connector: &dyn Connector,
    threads: usize,
    catalog: &Catalog,
    order_ids: &[String],
) -> Observed {
    let slots: Vec<usize> = (0..catalog.slots()).collect();
    let ids = |slot: usize| {
        let (sku, loc) = catalog.unslot(slot);
        (
            catalog.skus[sku].as_str(),
            catalog.locations[loc].id.as_str(),
        )
    };
    let breaker = Breaker::default();
    let mut round = 0;
    loop {
        round += 1;
        let before: Vec<Fetched<Position>> =
            map_parallel(connector, threads, &slots, |c, &slot| {
                let (sku, loc) = ids(slot);
                breaker.fetch(c, |c| c.position(sku, loc))
            });
        let orders: HashMap<String, _> = map_parallel(connector, threads, order_ids, |c, id| {
            (id.clone(), breaker.fetch(c, |c| c.get_order(id)))
        })
        .into_iter()
        .collect();
        let after: Vec<ObservedPosition> = map_parallel(connector, threads, &slots, |c, &slot| {
            let (sku, loc) = ids(slot);
            ObservedPosition {
                sku: sku.to_owned(),
                location: loc.to_owned(),
                position: breaker.fetch(c, |c| c.position(sku, loc)),
                ledger: breaker.fetch(c, |c| c.ledger(sku, loc)),
            }
        });
        // Only answers can show change; failed reads are reported by the verifier instead.
        let stable = before
            .iter()
            .zip(&after)
            .all(|(b, a)| !matches!((b, &a.position), (Fetched::Ok(b), Fetched::Ok(a)) if b != a));
        if stable || round == MAX_ROUNDS {
            return Observed {
                positions: after,
                orders,
                stable,
                rounds: round,
            };
        }
        eprintln!("keel-load: positions still changing, reading again (round {round})");
        thread::sleep(Duration::from_secs(1));
    }
}

impl Breaker {
    /// One read with retries: `404` is [`Fetched::Missing`], any other failure
    /// [`Fetched::Failed`].
    fn fetch<C: KeelClient + ?Sized, T>(
        &self,
        client: &mut C,
        call: impl FnMut(&mut C) -> Reply<T>,
    ) -> Fetched<T> {
        if self.0.load(Ordering::Relaxed) >= GIVE_UP_AFTER {
            return Fetched::Failed(format!(
                "not read: {GIVE_UP_AFTER} reads in a row got no answer"
            ));
        }
        let outcome = with_retry(client, RetryPolicy::PATIENT, |_| {}, call);
        if matches!(outcome, Outcome::Unknown(_)) {
            self.0.fetch_add(1, Ordering::Relaxed);
        } else {
            self.0.store(0, Ordering::Relaxed);
        }
        match outcome {
            Outcome::Done(v) => Fetched::Ok(v),
            Outcome::Rejected(CallError::Api { status: 404, .. }) => Fetched::Missing,
            Outcome::Rejected(e) | Outcome::Unknown(e) => Fetched::Failed(e.to_string()),
        }
    }
}
