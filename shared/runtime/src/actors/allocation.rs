//! The order's side of the work: placing, the reservation saga, and executing commands.
//!
//! The saga's steps are decided by the pure `keel_domain::order::saga::step` (which the
//! domain's simulation drives too); this module does them: read what the channel's locations
//! can promise (the node's availability hint) → plan (pure sourcing policy) → write the plan
//! ahead (the first one with the order itself) → reserve each planned line at its SKU-location
//! (which grants what is really available: the only place a reservation is decided) → settle:
//! all granted, or compensate the partial grants and re-plan, at most
//! `MAX_ALLOCATION_ATTEMPTS` times, then keep what was granted and backorder the rest. A crash
//! mid-saga leaves the plan and an "allocating" marker in the store; recovery releases the
//! plan's grants and runs the saga again.
//!
//! An order placed on a cart hold first converts the hold (which refuses a hold that ended,
//! belongs to another channel or holds other lines, changing nothing), and its one attempt's
//! plan is what the hold got: each SKU-location turns the held units into the order's
//! reservation, and whatever the hold lacked is backordered. Recovery repeats the conversions
//! under the same command ids instead of releasing them.

use crate::actors::Hosts;
use crate::entity::Durable;
use crate::Error;
use futures::future::try_join_all;
use keel_domain::catalog::Location;
use keel_domain::effects::Effect;
use keel_domain::hold::HoldCommand;
use keel_domain::inventory::{SkuLocation, StockCommand};
use keel_domain::order::saga::{self, ReleaseReason, SagaAction, SagaOutcome};
use keel_domain::order::{
    Allocation, Order, OrderCommand, OrderRequest, PlannedLine, RequestedLine,
};
use keel_domain::sourcing;
use keel_domain::{HoldId, LocationId, SkuId};
use std::collections::HashMap;

use super::{OrderExec, Summary};

fn state(d: &Durable<Order>) -> Result<&Order, Error> {
    d.state
        .as_ref()
        .ok_or_else(|| keel_domain::Error::UnknownOrder(d.id.to_string()).into())
}

/// Places the order in `d`, or answers the stored one when the same request comes again.
pub(crate) async fn place(
    hosts: &Hosts,
    d: &mut Durable<Order>,
    request: OrderRequest,
) -> Result<(Order, bool), Error> {
    if let Some(existing) = &d.state {
        if existing.request != request {
            return Err(keel_domain::Error::Conflict(format!(
                "order {} exists with a different request",
                request.id
            ))
            .into());
        }
        // A retry of an order whose allocation was interrupted finishes it.
        resume(hosts, d).await?;
        return Ok((state(d)?.clone(), false));
    }
    let locations = hosts.catalog.order_locations(&request)?;
    let plan = match &request.hold {
        Some(hold) => convert_hold(hosts, &d.key, &request, hold).await?,
        None => {
            let region = &request.ship_to.region;
            next_plan(hosts, &request.lines, region, &locations).await?
        }
    };
    let mut placed = Order::place(request, hosts.mesh.clock.now_ms());
    // The first plan goes into the order's first write (one commit fewer per order); a crash
    // after it is resumed like any interrupted allocation.
    let start = OrderCommand::StartAllocation { plan };
    for event in placed.decide(&start)? {
        placed.apply(&event);
    }
    let created = d.create(&hosts.mesh.writing(), placed)?;
    hosts.mesh.deliver_from_order(created).await;
    drive(hosts, d, &locations, SagaOutcome::Planned).await?;
    Ok((state(d)?.clone(), true))
}

/// Finishes an interrupted allocation (the saga decides how: see `keel_domain::order::saga`).
pub(crate) async fn resume(hosts: &Hosts, d: &mut Durable<Order>) -> Result<(), Error> {
    let order = state(d)?;
    if !matches!(order.allocation, Allocation::InProgress { .. }) {
        return Ok(());
    }
    let locations = hosts.catalog.order_locations(&order.request)?;
    drive(hosts, d, &locations, SagaOutcome::Interrupted).await
}

/// Converts the order's hold (wherever it is served) and answers what it holds, as the
/// order's plan.
async fn convert_hold(
    hosts: &Hosts,
    order_key: &str,
    request: &OrderRequest,
    hold: &HoldId,
) -> Result<Vec<PlannedLine>, Error> {
    let effect = Effect::Hold {
        hold: hold.clone(),
        command: HoldCommand::Convert {
            order: request.id.clone(),
            channel: request.channel.clone(),
            lines: request.lines.clone(),
        },
    };
    let id = format!("{order_key}#hold");
    let executed = hosts
        .mesh
        .command(&id, &effect)
        .await?
        .ok_or_else(|| Error::Internal(format!("{id}: a hold conversion without reply")))?;
    Ok(executed.reply.hold()?.hold.granted)
}

/// The next sourcing plan for `lines`, from what `locations` can promise now.
pub(crate) async fn next_plan(
    hosts: &Hosts,
    lines: &[RequestedLine],
    region: &str,
    locations: &[Location],
) -> Result<Vec<PlannedLine>, Error> {
    let skus: Vec<SkuId> = lines.iter().map(|l| l.sku.clone()).collect();
    let atp = available(hosts, &skus, locations).await?;
    let plan = sourcing::plan(lines, locations, region, |sku, loc| {
        atp.get(&(sku.clone(), loc.clone())).copied().unwrap_or(0)
    });
    Ok(plan.lines)
}

/// Does what the saga asks, from `outcome` on, until the order is allocated (or backordered),
/// and books how long that took.
async fn drive(
    hosts: &Hosts,
    d: &mut Durable<Order>,
    locations: &[Location],
    outcome: SagaOutcome,
) -> Result<(), Error> {
    let started = std::time::Instant::now();
    let resumed = matches!(outcome, SagaOutcome::Interrupted);
    let driven = drive_steps(hosts, d, locations, outcome).await;
    crate::observed::saga(resumed, driven.is_ok(), started.elapsed());
    driven
}

async fn drive_steps(
    hosts: &Hosts,
    d: &mut Durable<Order>,
    locations: &[Location],
    mut outcome: SagaOutcome,
) -> Result<(), Error> {
    let order = state(d)?;
    let (lines, region) = (
        order.request.lines.clone(),
        order.request.ship_to.region.clone(),
    );
    let wait_at = sourcing::backorder_location(locations, &region)
        .cloned()
        .ok_or_else(|| Error::Internal("a channel without locations".into()))?;
    loop {
        outcome = match saga::step(state(d)?, &wait_at, outcome) {
            SagaAction::Plan => {
                let plan = next_plan(hosts, &lines, &region, locations).await?;
                run(hosts, d, None, OrderCommand::StartAllocation { plan }).await?;
                SagaOutcome::Planned
            }
            SagaAction::Reserve {
                attempt,
                plan,
                hold,
            } => SagaOutcome::Reserved(reserve(hosts, d, attempt, &plan, hold.as_ref()).await?),
            SagaAction::Release {
                attempt,
                lines,
                why,
            } => {
                let tag = match why {
                    ReleaseReason::Compensation => "c",
                    ReleaseReason::Recovery => "r",
                };
                release(hosts, d, &format!("{}#a{attempt}.{tag}", d.key), &lines).await?;
                SagaOutcome::Released
            }
            SagaAction::Complete {
                granted,
                backorders,
            } => {
                let complete = OrderCommand::CompleteAllocation {
                    granted,
                    backorders,
                };
                run(hosts, d, None, complete).await?;
                SagaOutcome::Completed
            }
            SagaAction::Done => return Ok(()),
        }
    }
}

/// What each (SKU, location) of the order can promise: the node's hint where its actor has
/// reported one, else the actor's answer (which activates it, so it reports from then on) or,
/// for a SKU-location another node serves, that node's answer.
async fn available(
    hosts: &Hosts,
    skus: &[SkuId],
    locations: &[Location],
) -> Result<HashMap<(SkuId, LocationId), u64>, Error> {
    let pairs: Vec<(SkuId, LocationId)> = skus
        .iter()
        .flat_map(|s| locations.iter().map(move |l| (s.clone(), l.id.clone())))
        .collect();
    let reads = pairs.iter().map(|(sku, loc)| async move {
        let key = crate::keys::sku_location(sku, loc);
        if let Some(available) = hosts.mesh.availability.get(&key) {
            return Ok(available);
        }
        let partition = hosts.mesh.partitions.of(&key);
        if !hosts.mesh.partitions.serves(partition) {
            let body = serde_json::json!({ "sku": sku, "location": loc }).to_string();
            let subject = keel_protocol::subjects::INVENTORY_POSITION;
            let (_, position) = crate::forward::forward(
                &hosts.mesh.bus,
                partition,
                subject,
                keel_bus::Headers::new(),
                body.as_bytes(),
            )
            .await?;
            let available = position["available"].as_u64().unwrap_or(0);
            hosts.mesh.availability.set(&key, available);
            return Ok(available);
        }
        let position = hosts
            .stock
            .ask(&key, Summary::<SkuLocation>::new())
            .await??;
        Ok::<u64, Error>(position.available())
    });
    let values = try_join_all(reads).await?;
    Ok(pairs.into_iter().zip(values).collect())
}

/// Reserves each planned line at its SKU-location (or converts what `hold` keeps there);
/// answers what each granted.
async fn reserve(
    hosts: &Hosts,
    d: &Durable<Order>,
    attempt: u32,
    plan: &[PlannedLine],
    hold: Option<&HoldId>,
) -> Result<Vec<PlannedLine>, Error> {
    let reservations = plan.iter().enumerate().map(|(i, line)| async move {
        let (order, quantity) = (d.id.clone(), line.quantity);
        let command = match hold {
            Some(hold) => StockCommand::ConvertHold {
                hold: hold.clone(),
                order,
                quantity,
            },
            None => StockCommand::Reserve { order, quantity },
        };
        let id = format!("{}#a{attempt}.{i}", d.key);
        let grant = hosts
            .mesh
            .send_stock(&line.sku, &line.location, id, command)
            .await?;
        Ok::<PlannedLine, Error>(PlannedLine {
            quantity: grant.granted,
            ..line.clone()
        })
    });
    try_join_all(reservations).await
}

async fn release(
    hosts: &Hosts,
    d: &Durable<Order>,
    id_prefix: &str,
    lines: &[PlannedLine],
) -> Result<(), Error> {
    let releases = lines.iter().enumerate().map(|(i, line)| {
        let command = StockCommand::Release {
            order: d.id.clone(),
            quantity: line.quantity,
            reason: "allocation compensated".to_owned(),
        };
        hosts.mesh.send_stock(
            &line.sku,
            &line.location,
            format!("{id_prefix}{i}"),
            command,
        )
    });
    try_join_all(releases).await.map(drop)
}

/// Decides and commits one command, then delivers its effects.
async fn run(
    hosts: &Hosts,
    d: &mut Durable<Order>,
    command_id: Option<&str>,
    command: OrderCommand,
) -> Result<(), Error> {
    state(d)?;
    let executed = d.execute(&hosts.mesh.writing(), command_id, &command, || {
        unreachable!("the order exists (checked above)")
    })?;
    hosts.mesh.deliver_from_order(executed).await;
    Ok(())
}

/// Executes an order command (cancel, confirmation, or an effect from another actor).
pub(crate) async fn execute(
    hosts: &Hosts,
    d: &mut Durable<Order>,
    msg: OrderExec,
) -> Result<Order, Error> {
    run(hosts, d, msg.command_id.as_deref(), msg.command).await?;
    Ok(state(d)?.clone())
}
