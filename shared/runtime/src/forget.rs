//! Forgetting the ids of commands between actors once their retention has passed (see
//! keel-store's `dedupe.rs`): a sweep every few seconds drops the buckets no lookup reaches
//! any more, a bounded number of keys at a time.
//!
//! It waits while this node's outbox holds undelivered commands: those may still be repeated
//! (a node that was down longer than the retention delivers its outbox after the restart), and
//! their targets must still recognise the ones they applied.

use crate::mesh::Mesh;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the sweep runs.
const TICK: Duration = Duration::from_secs(5);
/// The most ids forgotten per sweep.
const BATCH: usize = 20_000;

/// Starts the sweep on the current arbiter; answers its counter of forgotten ids.
pub(crate) fn start(mesh: &Arc<Mesh>) -> Arc<AtomicU64> {
    let forgotten = Arc::new(AtomicU64::new(0));
    let counter = Arc::clone(&forgotten);
    crate::periodic::every(mesh, TICK, move |mesh| {
        let counter = Arc::clone(&counter);
        async move {
            if mesh.store.outbox().next().is_some() {
                return;
            }
            match mesh.store.expire_dedupe(mesh.clock.now_ms(), BATCH) {
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
                Err(e) => tracing::warn!(error = %e, "forgetting expired command ids failed"),
            }
        }
    });
    forgotten
}
