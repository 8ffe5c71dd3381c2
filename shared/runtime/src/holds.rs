//! Cart holds on the node that serves them: placing one (written ahead, then each planned line
//! kept aside at its SKU-location, then activated with what was granted), releasing one, and
//! reading one. Every change goes through the hold's actor, its single writer; expiry comes
//! from its timer (`timers.rs`).

use crate::actors::{allocation, Exec};
use crate::entity::Durable;
use crate::router::Router;
use crate::Error;
use futures::future::try_join_all;
use keel_domain::hold::{Hold, HoldCommand, HoldRequest, HoldStatus};
use keel_domain::inventory::StockCommand;
use keel_domain::order::PlannedLine;
use keel_domain::HoldId;

/// Places `request` (idempotent by id: the same request answers the stored hold, `created:
/// false`; another is a conflict). A retry of a placement a crash interrupted finishes it.
pub(crate) async fn place(router: &Router, request: HoldRequest) -> Result<(Hold, bool), Error> {
    let key = crate::keys::hold(&request.id);
    let locations = router
        .catalog
        .channel_locations(&request.channel, &request.lines)?;
    let region = request.ship_to.region.clone();
    let plan = allocation::next_plan(router, &request.lines, &region, &locations).await?;
    let at = router.clock.now_ms();
    let (mut hold, created) = exec(router, &key, HoldCommand::Place { request, plan, at }).await?;
    if hold.status == HoldStatus::Placing {
        let granted = keep(router, &key, &hold).await?;
        (hold, _) = exec(router, &key, HoldCommand::Activate { granted }).await?;
    }
    Ok((hold, created))
}

/// Releases the hold `id` (a hold that already ended answers as it is).
pub(crate) async fn release(router: &Router, id: &HoldId) -> Result<Hold, Error> {
    let (hold, _) = exec(router, &crate::keys::hold(id), HoldCommand::Release).await?;
    Ok(hold)
}

/// The stored hold `id`.
pub(crate) fn stored(router: &Router, id: &HoldId) -> Result<Hold, Error> {
    let key = crate::keys::hold(id);
    Durable::<Hold>::load(&router.store, id.clone(), key)?
        .state
        .ok_or_else(|| keel_domain::Error::UnknownHold(id.to_string()).into())
}

/// Asks each planned line's SKU-location to keep its units aside, under ids derived from the
/// hold, so that a repeat (a retried placement) is answered from the first one's record.
async fn keep(router: &Router, key: &str, hold: &Hold) -> Result<Vec<PlannedLine>, Error> {
    let Some(request) = &hold.request else {
        return Ok(Vec::new());
    };
    let kept = hold.plan.iter().enumerate().map(|(i, line)| async move {
        let command = StockCommand::Hold {
            hold: request.id.clone(),
            quantity: line.quantity,
        };
        let id = format!("{key}#p.{i}");
        let reply = router
            .send_stock(&line.sku, &line.location, id, command)
            .await?;
        Ok::<PlannedLine, Error>(PlannedLine {
            quantity: reply.reply["granted"].as_u64().unwrap_or(0),
            ..line.clone()
        })
    });
    try_join_all(kept).await
}

/// Executes `command` on the hold's actor; answers the hold after it and whether it changed.
async fn exec(router: &Router, key: &str, command: HoldCommand) -> Result<(Hold, bool), Error> {
    let msg = Exec {
        command_id: None,
        command,
    };
    let reply = router.ask(&router.holds, key, msg).await??.reply;
    let hold = serde_json::from_value(reply["hold"].clone())?;
    Ok((hold, reply["changed"].as_bool().unwrap_or(false)))
}
