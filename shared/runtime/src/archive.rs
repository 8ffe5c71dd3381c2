//! Archiving closed orders: an order delivered or cancelled longer than the node's
//! `archive_after` leaves the live keys (`s:`, which every actor activation and the sled
//! cache work on) for the archive (`a:`), still read by `GET /v1/orders/{id}` and by a
//! retried placement of the same id. A closed order carries a marker keyed by the time it
//! closed (`archive/{closed_at}/{id}`), so each sweep is a range scan that stops at the first
//! order not due yet: its cost follows what is due, not the history.

use crate::actors::Archive;
use crate::actors::Hosts;
use keel_domain::OrderId;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// How often the archiver looks for orders due.
const TICK: Duration = Duration::from_secs(1);
/// The most orders archived per tick.
const BATCH: usize = 256;

/// Counters of the archiver.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Orders moved to the archive.
    pub archived: AtomicU64,
}

/// What the archiver is told to do.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Age after closing at which an order is archived.
    pub after: Duration,
    /// For fault tests: abort the process half-way through a sweep's batch.
    pub crash_mid_sweep: bool,
}

/// Starts the archiver on the current arbiter; it ends with the node.
pub(crate) fn start(hosts: &Arc<Hosts>, policy: Policy) -> Arc<ArchiveStats> {
    let stats = Arc::new(ArchiveStats::default());
    let sweep_stats = Arc::clone(&stats);
    crate::periodic::every(hosts, TICK, move |hosts| {
        sweep(hosts, policy, Arc::clone(&sweep_stats))
    });
    stats
}

/// Archives the orders due now (a batch of them).
async fn sweep(hosts: Arc<Hosts>, policy: Policy, stats: Arc<ArchiveStats>) {
    let after_ms = u64::try_from(policy.after.as_millis()).unwrap_or(u64::MAX);
    let cutoff = hosts.mesh.clock.now_ms().saturating_sub(after_ms);
    let due = due(&hosts, cutoff);
    let half = due.len().div_ceil(2);
    for (n, id) in due.into_iter().enumerate() {
        if policy.crash_mid_sweep && n == half {
            // The first half on disk, the rest not yet archived: the mixed state to test.
            let flushed = hosts.mesh.store.flush().await;
            tracing::error!(
                ?flushed,
                "crash point reached: half-way through an archive sweep"
            );
            std::process::abort();
        }
        let key = crate::keys::order(&id);
        let Some(_work) = hosts.mesh.partitions.enter(hosts.mesh.partitions.of(&key)) else {
            continue;
        };
        match hosts.orders.ask(&key, Archive { cutoff }).await {
            Ok(Ok(true)) => {
                stats.archived.fetch_add(1, Ordering::Relaxed);
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) | Err(e) => {
                tracing::warn!(order = %id, error = %e, "archiving failed; retried at the next sweep");
            }
        }
    }
}

/// Orders of the partitions this node serves that closed at or before `cutoff`, oldest
/// first, at most [`BATCH`].
fn due(hosts: &Hosts, cutoff: u64) -> Vec<OrderId> {
    let mut due = Vec::new();
    for item in hosts
        .mesh
        .store
        .scan_states(crate::keys::ARCHIVE_DUE_PREFIX)
    {
        let (marker, _) = match item {
            Ok(item) => item,
            Err(e) => {
                tracing::warn!(error = %e, "reading archive markers failed");
                break;
            }
        };
        let rest = &marker[crate::keys::ARCHIVE_DUE_PREFIX.len()..];
        let Some((closed_at, id)) = rest.split_once('/') else {
            continue;
        };
        match (closed_at.parse::<u64>(), OrderId::parse(id)) {
            (Ok(closed_at), _) if closed_at > cutoff => break,
            (Ok(_), Ok(id)) => {
                // Orders of partitions served elsewhere are their owner's to archive.
                let partition = hosts.mesh.partitions.of(&crate::keys::order(&id));
                if hosts.mesh.partitions.serves(partition) {
                    due.push(id);
                }
            }
            _ => tracing::warn!(%marker, "an archive marker that does not parse"),
        }
        if due.len() == BATCH {
            break;
        }
    }
    due
}
