//! Durable timers: an entity's decision sets and cancels them in its own commit (see
//! `Entity::timers`), so they are records of its partition's log, restored with it. This loop
//! looks for due timers of the partitions the node serves and fires each as a command to its
//! entity, with an id made of the timer (`{entity}!{name}@{due}`): the commit that handles it
//! also cancels the timer, so it takes effect once, and a timer that was due while the node
//! was down, or before a takeover, fires as soon as the node serves its partition.

use crate::actors::{Hosted, Hosts};
use crate::Error;
use keel_domain::hold::Hold;
use keel_store::Timer;
use parking_lot::Mutex;
use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How often the loop looks for due timers (the resolution of every timer).
const TICK: Duration = Duration::from_millis(100);
/// The most timers fired at once; the rest wait for the next tick.
const BATCH: usize = 512;

/// Counters of the timer loop.
#[derive(Debug, Default)]
pub struct TimerStats {
    /// Timers fired and handled by their entity.
    pub fired: AtomicU64,
    /// Firings that failed (retried on a later tick).
    pub failed: AtomicU64,
}

/// Starts the loop on the current arbiter; it ends with the node.
pub(crate) fn start(hosts: &Arc<Hosts>) -> Arc<TimerStats> {
    let stats = Arc::new(TimerStats::default());
    let in_flight: Arc<Mutex<HashSet<Timer>>> = Arc::default();
    let loop_stats = Arc::clone(&stats);
    crate::periodic::every(hosts, TICK, move |hosts| {
        fire_due(hosts, Arc::clone(&loop_stats), Arc::clone(&in_flight))
    });
    stats
}

/// Fires the due timers of the partitions this node serves that are not in flight already.
async fn fire_due(
    hosts: Arc<Hosts>,
    stats: Arc<TimerStats>,
    in_flight: Arc<Mutex<HashSet<Timer>>>,
) {
    let now = hosts.mesh.clock.now_ms();
    let due: Vec<Timer> = hosts
        .mesh
        .store
        .due_timers(now)
        .filter_map(|t| {
            t.map_err(|e| tracing::warn!(error = %e, "reading due timers failed"))
                .ok()
        })
        .filter(|t| !in_flight.lock().contains(t))
        // Timers of partitions served elsewhere stay for their owner; they must not use up
        // the batch.
        .filter(|t| {
            hosts
                .mesh
                .partitions
                .serves(hosts.mesh.partitions.of(&t.entity))
        })
        .take(BATCH)
        .collect();
    for timer in due {
        let partition = hosts.mesh.partitions.of(&timer.entity);
        let Some(work) = hosts.mesh.partitions.enter(partition) else {
            continue;
        };
        in_flight.lock().insert(timer.clone());
        let (hosts, stats, in_flight) = (
            Arc::clone(&hosts),
            Arc::clone(&stats),
            Arc::clone(&in_flight),
        );
        actix_rt::spawn(async move {
            match fire(&hosts, &timer).await {
                Ok(()) => stats.fired.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(entity = %timer.entity, name = %timer.name, error = %e, "a timer did not fire; retried on a later tick");
                    stats.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
            in_flight.lock().remove(&timer);
            drop(work);
        });
    }
}

/// Fires one timer at its entity, by the kind its key names.
async fn fire(hosts: &Hosts, timer: &Timer) -> Result<(), Error> {
    let span = tracing::info_span!("timer.fire", entity = %timer.entity, name = %timer.name, due = timer.due);
    let fired = async {
        match timer.entity.split_once('/') {
            Some(("h", _)) => fire_at::<Hold>(hosts, timer).await,
            _ => Err(Error::Internal(format!(
                "no entity kind handles the timers of {}",
                timer.entity
            ))),
        }
    };
    fired.instrument(span).await
}

async fn fire_at<E: Hosted>(hosts: &Hosts, timer: &Timer) -> Result<(), Error> {
    let command = E::on_timer(&timer.name, timer.due)
        .ok_or_else(|| Error::Internal(format!("{} has no timer {}", timer.entity, timer.name)))?;
    let id = format!("{}!{}@{}", timer.entity, timer.name, timer.due);
    hosts
        .exec::<E>(&timer.entity, Some(id), command)
        .await
        .map(drop)
}
