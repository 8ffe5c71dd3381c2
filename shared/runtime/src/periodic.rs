//! Background work a node does on a period (firing timers, archiving): one task on the
//! current arbiter that stops with the node.

use crate::router::Router;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Runs `work` every `period` (a late tick is delayed, never bunched up) until the router is
/// gone.
pub(crate) fn every<F, Fut>(router: &Arc<Router>, period: Duration, mut work: F)
where
    F: FnMut(Arc<Router>) -> Fut + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let router = Arc::downgrade(router);
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let Some(router) = router.upgrade() else {
                return;
            };
            work(router).await;
        }
    });
}
