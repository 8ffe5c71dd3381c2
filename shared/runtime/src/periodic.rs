//! Background work a node does on a period (firing timers, archiving): one task on the
//! current arbiter that stops with the node.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Runs `work` on `on` every `period` (a late tick is delayed, never bunched up) until `on` is
/// gone.
pub(crate) fn every<T, F, Fut>(on: &Arc<T>, period: Duration, mut work: F)
where
    T: Send + Sync + 'static,
    F: FnMut(Arc<T>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let on = Arc::downgrade(on);
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(on) = on.upgrade() else {
                return;
            };
            work(on).await;
        }
    });
}
