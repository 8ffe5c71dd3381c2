//! Cart holds on the node that serves them: placing one (written ahead, then each planned line
//! kept aside at its SKU-location, then activated with what was granted), releasing one, and
//! reading one. Every change goes through the hold's actor, its single writer; expiry comes
//! from its timer (`timers.rs`).

use crate::actors::{allocation, Hosts};
use crate::entity::Durable;
use crate::Error;
use futures::future::try_join_all;
use keel_domain::hold::{Hold, HoldCommand, HoldRequest, HoldStatus};
use keel_domain::inventory::StockCommand;
use keel_domain::order::PlannedLine;
use keel_domain::HoldId;

/// Places `request` (idempotent by id: the same request answers the stored hold, `created:
/// false`; another is a conflict). A retry of a placement a crash interrupted finishes it.
pub(crate) async fn place(hosts: &Hosts, request: HoldRequest) -> Result<(Hold, bool), Error> {
    let key = crate::keys::hold(&request.id);
    let locations = hosts
        .catalog
        .channel_locations(&request.channel, &request.lines)?;
    let region = request.ship_to.region.clone();
    let plan = allocation::next_plan(hosts, &request.lines, &region, &locations).await?;
    let at = hosts.mesh.clock.now_ms();
    let (mut hold, created) = exec(hosts, &key, HoldCommand::Place { request, plan, at }).await?;
    if hold.status == HoldStatus::Placing {
        let granted = keep(hosts, &key, &hold).await?;
        (hold, _) = exec(hosts, &key, HoldCommand::Activate { granted }).await?;
    }
    Ok((hold, created))
}

/// Releases the hold `id` (a hold that already ended answers as it is).
pub(crate) async fn release(hosts: &Hosts, id: &HoldId) -> Result<Hold, Error> {
    let (hold, _) = exec(hosts, &crate::keys::hold(id), HoldCommand::Release).await?;
    Ok(hold)
}

/// The stored hold `id`.
pub(crate) fn stored(hosts: &Hosts, id: &HoldId) -> Result<Hold, Error> {
    let key = crate::keys::hold(id);
    Durable::<Hold>::load(&hosts.mesh.store, id.clone(), key)?
        .state
        .ok_or_else(|| keel_domain::Error::UnknownHold(id.to_string()).into())
}

/// Asks each planned line's SKU-location to keep its units aside, under ids derived from the
/// hold, so that a repeat (a retried placement) is answered from the first one's record.
async fn keep(hosts: &Hosts, key: &str, hold: &Hold) -> Result<Vec<PlannedLine>, Error> {
    let Some(request) = &hold.request else {
        return Ok(Vec::new());
    };
    let kept = hold.plan.iter().enumerate().map(|(i, line)| async move {
        let command = StockCommand::Hold {
            hold: request.id.clone(),
            quantity: line.quantity,
        };
        let id = format!("{key}#p.{i}");
        let grant = hosts
            .mesh
            .send_stock(&line.sku, &line.location, id, command)
            .await?;
        Ok::<PlannedLine, Error>(PlannedLine {
            quantity: grant.granted,
            ..line.clone()
        })
    });
    try_join_all(kept).await
}

/// Executes `command` on the hold's actor; answers the hold after it and whether it changed.
async fn exec(hosts: &Hosts, key: &str, command: HoldCommand) -> Result<(Hold, bool), Error> {
    let reply = hosts.exec::<Hold>(key, None, command).await?.reply.hold()?;
    Ok((reply.hold, reply.changed))
}
