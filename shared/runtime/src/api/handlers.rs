//! One handler per API subject.

use super::bodies::{self, parse};
use crate::actors::Hosts;
use crate::actors::{stock_reads, OrderExec, Place};
use crate::entity::{Durable, Entity};
use crate::{holds, views, Error};
use keel_domain::catalog::{Channel, Location, Sku};
use keel_domain::hold::{Hold, HoldRequest};
use keel_domain::inventory::{Backorder, LedgerEntry, StockCommand};
use keel_domain::order::{FulfillmentStatus, Order, OrderCommand, OrderRequest};
use keel_domain::quantity::{delta, quantity};
use keel_domain::warehouse::WarehouseNode;
use keel_domain::{ChannelId, DocumentId, FulfillmentId, HoldId, LocationId, OrderId, SkuId};
use keel_protocol::{subjects as s, ReplyStatus};
use serde::Serialize;
use serde_json::{json, Value};
use std::sync::Arc;

pub(crate) use crate::forward::Reply;

fn ok(body: Value) -> Reply {
    Ok((ReplyStatus::Ok, body))
}

fn created_or_ok<T: Serialize>((value, created): (T, bool)) -> Reply {
    let status = if created {
        ReplyStatus::Created
    } else {
        ReplyStatus::Ok
    };
    Ok((status, serde_json::to_value(value)?))
}

/// Routes one request to its handler. Changes are flushed before the reply is sent, so a
/// success means the change is on disk.
pub(crate) async fn dispatch(hosts: &Arc<Hosts>, subject: &str, payload: &[u8]) -> Reply {
    if owes_messages(subject) {
        hosts.mesh.relay.admission().await;
    }
    let reply = match subject {
        s::LOCATIONS_CREATE => create_location(hosts, payload),
        s::CHANNELS_CREATE => create_channel(hosts, payload),
        s::SKUS_CREATE => create_sku(hosts, payload),
        s::INVENTORY_RECEIPT => receive(hosts, payload).await,
        s::INVENTORY_ADJUST => adjust(hosts, payload).await,
        s::ORDERS_PLACE => place(hosts, payload).await,
        s::ORDERS_CANCEL => cancel(hosts, payload).await,
        s::FULFILLMENTS_CONFIRM => confirm(hosts, payload).await,
        s::HOLDS_PLACE => place_hold(hosts, payload).await,
        s::HOLDS_RELEASE => release_hold(hosts, payload).await,
        s::INVENTORY_GET => return inventory(hosts, payload).await,
        _ => {
            // Reads scan the store (a ledger page, a position with its reservations): run them
            // on the blocking pool so they never hold up the actors on this thread.
            let (hosts, subject) = (Arc::clone(hosts), subject.to_owned());
            let payload = payload.to_vec();
            return tokio::task::spawn_blocking(move || query(&hosts, &subject, &payload))
                .await
                .map_err(|e| Error::Internal(format!("query task failed: {e}")))?;
        }
    }?;
    // A placement waits for its order's lane only (see `place`); every other write for all.
    if subject != s::ORDERS_PLACE {
        hosts.mesh.store.flush().await?;
    }
    Ok(reply)
}

/// Writes whose effects the relay delivers afterwards (events, warehouse releases, backorder
/// fills): they wait for admission, so accepted work never outruns delivered work for long.
fn owes_messages(subject: &str) -> bool {
    matches!(
        subject,
        s::INVENTORY_RECEIPT
            | s::INVENTORY_ADJUST
            | s::ORDERS_PLACE
            | s::ORDERS_CANCEL
            | s::FULFILLMENTS_CONFIRM
            | s::HOLDS_PLACE
            | s::HOLDS_RELEASE
    )
}

fn query(hosts: &Hosts, subject: &str, payload: &[u8]) -> Reply {
    match subject {
        s::LOCATIONS_GET => get_location(hosts, payload),
        s::LOCATIONS_LIST => ok(json!({ "locations": hosts.catalog.locations() })),
        s::CHANNELS_GET => {
            let id = ChannelId::parse(&parse::<bodies::ById>(payload)?.id)?;
            let channel = hosts.catalog.channel(&id);
            ok(serde_json::to_value(channel.ok_or(
                keel_domain::Error::UnknownChannel(id.to_string()),
            )?)?)
        }
        s::CHANNELS_LIST => ok(json!({ "channels": hosts.catalog.channels() })),
        s::SKUS_GET => {
            let id = SkuId::parse(&parse::<bodies::ById>(payload)?.id)?;
            let sku = hosts.catalog.sku(&id);
            ok(serde_json::to_value(
                sku.ok_or(keel_domain::Error::UnknownSku(id.to_string()))?,
            )?)
        }
        s::SKUS_LIST => ok(json!({ "skus": hosts.catalog.skus() })),
        s::INVENTORY_POSITION => position(hosts, payload),
        s::INVENTORY_RESERVATIONS => reservations(hosts, payload),
        s::INVENTORY_BACKORDERS => backorders(hosts, payload),
        s::INVENTORY_LEDGER => ledger(hosts, payload),
        s::ORDERS_GET => ok(views::order(&stored_order(hosts, payload)?)),
        s::HOLDS_GET => {
            let id = HoldId::parse(&parse::<bodies::ById>(payload)?.id)?;
            ok(hold_view(&holds::stored(hosts, &id)?)?)
        }
        s::FULFILLMENTS_GET => {
            let (id, order) = fulfillment_id(&parse::<bodies::ById>(payload)?.id)?;
            let order = load_order(hosts, &order)?.ok_or_else(|| unknown_fulfillment(&id))?;
            let f = order
                .fulfillment(&id)
                .ok_or_else(|| unknown_fulfillment(&id))?;
            ok(views::fulfillment(&order, f))
        }
        other => Err(Error::NotFound(format!("no API operation at {other}"))),
    }
}

fn create_location(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Location = parse(payload)?;
    created_or_ok(
        hosts
            .catalog
            .add_location(Location::new(&b.id, &b.name, &b.region, b.priority)?)?,
    )
}

fn create_channel(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Channel = parse(payload)?;
    created_or_ok(
        hosts
            .catalog
            .add_channel(Channel::new(&b.id, &b.name, &b.locations)?)?,
    )
}

fn create_sku(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Sku = parse(payload)?;
    created_or_ok(hosts.catalog.add_sku(Sku::new(&b.id, &b.name)?)?)
}

fn get_location(hosts: &Hosts, payload: &[u8]) -> Reply {
    let id = LocationId::parse(&parse::<bodies::ById>(payload)?.id)?;
    let location = hosts
        .catalog
        .location(&id)
        .ok_or_else(|| keel_domain::Error::UnknownLocation(id.to_string()))?;
    let key = crate::keys::warehouse(&id);
    let node: WarehouseNode = stored(hosts, id.clone(), key)?.unwrap_or_default();
    let mut view = serde_json::to_value(location)?;
    view["status"] = json!("online");
    view["open_fulfillments"] = json!(node.open.len());
    view["fulfillments"] = serde_json::to_value(node.counts)?;
    ok(view)
}

/// Parses and checks a SKU-location named by a request.
fn checked(hosts: &Hosts, sku: &str, location: &str) -> Result<(SkuId, LocationId), Error> {
    let (sku, location) = (SkuId::parse(sku)?, LocationId::parse(location)?);
    hosts.catalog.check_sku_location(&sku, &location)?;
    Ok((sku, location))
}

fn sku_location(hosts: &Hosts, payload: &[u8]) -> Result<(SkuId, LocationId), Error> {
    let b: bodies::BySkuLocation = parse(payload)?;
    checked(hosts, &b.sku, &b.location)
}

/// Sends a stock command with a client-chosen document id and answers the position.
async fn stock_document(
    hosts: &Hosts,
    (sku, location): (SkuId, LocationId),
    document: (&str, &DocumentId),
    command: StockCommand,
) -> Reply {
    let command_id = format!("{}:{}", document.0, document.1);
    let executed = hosts
        .stock_exec(&sku, &location, Some(command_id), command)
        .await?;
    let position = executed.reply.grant()?.position;
    let body = json!({
        document.0.to_owned() + "_id": document.1,
        "sku": sku,
        "location": location,
        "position": views::position(&sku, &location, &position),
    });
    let status = if executed.replayed {
        ReplyStatus::Ok
    } else {
        ReplyStatus::Created
    };
    Ok((status, body))
}

async fn receive(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Receipt = parse(payload)?;
    let receipt = DocumentId::parse(&b.receipt_id)?;
    let at = checked(hosts, &b.sku, &b.location)?;
    let command = StockCommand::Receive {
        receipt: receipt.clone(),
        quantity: quantity(bodies::whole(&b.quantity)?)?,
    };
    stock_document(hosts, at, ("receipt", &receipt), command).await
}

async fn adjust(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Adjustment = parse(payload)?;
    let adjustment = DocumentId::parse(&b.adjustment_id)?;
    let at = checked(hosts, &b.sku, &b.location)?;
    keel_domain::catalog::validate_name("reason", &b.reason)?;
    let command = StockCommand::Adjust {
        adjustment: adjustment.clone(),
        delta: delta(bodies::whole(&b.delta)?)?,
        reason: b.reason,
    };
    stock_document(hosts, at, ("adjustment", &adjustment), command).await
}

/// A SKU's position at every location: read here for the SKU-locations this node serves,
/// asked of their serving nodes for the others.
async fn inventory(hosts: &Hosts, payload: &[u8]) -> Reply {
    let sku = SkuId::parse(&parse::<bodies::BySku>(payload)?.sku)?;
    if hosts.catalog.sku(&sku).is_none() {
        return Err(keel_domain::Error::UnknownSku(sku.to_string()).into());
    }
    let locations = hosts.catalog.locations();
    let reads = locations.iter().map(|l| {
        let sku = &sku;
        async move {
            let key = crate::keys::sku_location(sku, &l.id);
            let partition = hosts.mesh.partitions.of(&key);
            if hosts.mesh.partitions.serves(partition) {
                let position = stock_reads::position(&hosts.mesh.store, &key)?;
                return Ok(views::position(sku, &l.id, &position));
            }
            let body = json!({ "sku": sku, "location": l.id }).to_string();
            let (_, mut view) = crate::forward::forward(
                &hosts.mesh.bus,
                partition,
                s::INVENTORY_POSITION,
                keel_bus::Headers::new(),
                body.as_bytes(),
            )
            .await?;
            if let Some(fields) = view.as_object_mut() {
                fields.retain(|name, _| {
                    !name.starts_with("reservations") && !name.starts_with("backorders")
                });
            }
            Ok::<Value, Error>(view)
        }
    });
    let positions = futures::future::try_join_all(reads).await?;
    ok(json!({ "sku": sku, "locations": positions }))
}

/// Reservations (and backorders) a position shows, and a page holds by default; at most.
const RESERVATION_PAGE: u64 = 1000;
/// (64-character order ids: 5000 entries stay well inside the 1 MiB bus payload.)
const RESERVATION_PAGE_MAX: u64 = 5_000;

/// A position, its first page of reservations (`reservations_next` continues them) and its
/// backorder queue.
fn position(hosts: &Hosts, payload: &[u8]) -> Reply {
    let (sku, location) = sku_location(hosts, payload)?;
    let key = crate::keys::sku_location(&sku, &location);
    let page = usize::try_from(RESERVATION_PAGE).unwrap_or(usize::MAX);
    let (held, next) = stock_reads::reservations(&hosts.mesh.store, &key, None, page)?;
    let mut view = views::position(
        &sku,
        &location,
        &stock_reads::position(&hosts.mesh.store, &key)?,
    );
    view["reservations"] = views::reservations(&held);
    view["reservations_next"] = json!(next);
    let queue = stock_reads::backorders(&hosts.mesh.store, &key)?;
    let (waiting, next) = queue_page(&queue, None, page);
    view["backorders"] = views::backorders(waiting);
    view["backorders_next"] = json!(next);
    ok(view)
}

/// A page request on one SKU-location, checked, with its page size.
struct PageRequest {
    sku: SkuId,
    location: LocationId,
    key: String,
    page: bodies::Page,
    limit: usize,
}

fn page_request(
    hosts: &Hosts,
    payload: &[u8],
    default: u64,
    max: u64,
) -> Result<PageRequest, Error> {
    let page: bodies::Page = parse(payload)?;
    let (sku, location) = checked(hosts, &page.sku, &page.location)?;
    let limit = bodies::opt_u64(page.limit.as_ref(), "limit")?
        .unwrap_or(default)
        .clamp(1, max);
    Ok(PageRequest {
        key: crate::keys::sku_location(&sku, &location),
        sku,
        location,
        page,
        limit: usize::try_from(limit).unwrap_or(usize::MAX),
    })
}

impl PageRequest {
    /// `{"sku","location","entries","next"}`.
    fn reply(&self, entries: Value, next: Value) -> Reply {
        ok(json!({ "sku": self.sku, "location": self.location, "entries": entries, "next": next }))
    }
}

/// Up to `limit` backorders after queue ticket `after`, and the ticket to continue after when
/// there are more. (The queue is read whole and sliced: an index by ticket would make this
/// O(page), but reading a queue is an operator's query, not a hot path.)
fn queue_page(
    queue: &[Backorder],
    after: Option<u64>,
    limit: usize,
) -> (&[Backorder], Option<u64>) {
    let start = after.map_or(0, |t| queue.partition_point(|b| b.ticket <= t));
    let rest = &queue[start..];
    let page = &rest[..rest.len().min(limit)];
    let next = (rest.len() > limit)
        .then(|| page.last().map(|b| b.ticket))
        .flatten();
    (page, next)
}

/// A page of a position's backorder queue, in queue order.
fn backorders(hosts: &Hosts, payload: &[u8]) -> Reply {
    let req = page_request(hosts, payload, RESERVATION_PAGE, RESERVATION_PAGE_MAX)?;
    let after = bodies::opt_u64(req.page.after.as_ref(), "after")?;
    let queue = stock_reads::backorders(&hosts.mesh.store, &req.key)?;
    let (waiting, next) = queue_page(&queue, after, req.limit);
    req.reply(views::backorders(waiting), json!(next))
}

/// A page of a position's reservations, by order id.
fn reservations(hosts: &Hosts, payload: &[u8]) -> Reply {
    let req = page_request(hosts, payload, RESERVATION_PAGE, RESERVATION_PAGE_MAX)?;
    let after = match &req.page.after {
        None | Some(Value::Null) => None,
        Some(Value::String(order)) => Some(OrderId::parse(order)?),
        Some(_) => {
            return Err(keel_domain::Error::Malformed("after must be an order id".into()).into())
        }
    };
    let (held, next) =
        stock_reads::reservations(&hosts.mesh.store, &req.key, after.as_ref(), req.limit)?;
    req.reply(views::reservations(&held), json!(next))
}

/// Entries one ledger page holds by default, and at most.
const LEDGER_PAGE: u64 = 1000;
const LEDGER_PAGE_MAX: u64 = 10_000;
/// A page also ends once its entries reach this many bytes, so that a reply always fits the
/// bus's payload limit (1 MiB, as on NATS): a too-large reply cannot be sent at all.
const LEDGER_PAGE_BYTES: usize = 512 * 1024;

fn ledger(hosts: &Hosts, payload: &[u8]) -> Reply {
    let req = page_request(hosts, payload, LEDGER_PAGE, LEDGER_PAGE_MAX)?;
    let from = bodies::opt_u64(req.page.from.as_ref(), "from")?.unwrap_or(0);
    let (mut entries, mut bytes, mut more) = (Vec::new(), 0, false);
    for raw in hosts.mesh.store.ledger(&req.key, from) {
        let raw = raw?;
        if entries.len() == req.limit || bytes + raw.len() > LEDGER_PAGE_BYTES {
            more = true;
            break;
        }
        bytes += raw.len();
        entries.push(serde_json::from_slice::<LedgerEntry>(&raw)?);
    }
    // `next` is where the following page starts, when there is one.
    let next = entries
        .last()
        .filter(|_| more)
        .map(|e: &LedgerEntry| e.seq + 1);
    req.reply(serde_json::to_value(&entries)?, json!(next))
}

async fn place(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Order = parse(payload)?;
    let lines = bodies::lines(&b.lines)?;
    let mut request = OrderRequest::new(&b.id, &b.channel, &lines, &b.ship_to.region)?;
    if let Some(hold) = &b.hold {
        request = request.on_hold(hold)?;
    }
    let key = crate::keys::order(&request.id);
    let (order, created) = hosts.orders.ask(&key, Place { request }).await??;
    // What the placement had other actors do (reserve, convert a hold) waited for their own
    // lanes to be durable (`Mesh::command`); the order's commits and the outbox it owes are
    // on its lane: the reply waits for that lane, not for the slowest of all.
    hosts.mesh.store.flush_key(&key).await?;
    let view = views::order(&order);
    if created {
        crate::observed::order_placed(view["status"].as_str().unwrap_or("unknown"));
    }
    Ok((created_status(created), view))
}

fn created_status(created: bool) -> ReplyStatus {
    if created {
        ReplyStatus::Created
    } else {
        ReplyStatus::Ok
    }
}

async fn place_hold(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Hold = parse(payload)?;
    let lines = bodies::lines(&b.lines)?;
    let ttl = b.ttl_secs.as_i64().ok_or_else(|| {
        keel_domain::Error::Malformed(format!("ttl_secs {} is not a whole number", b.ttl_secs))
    })?;
    let request = HoldRequest::new(&b.id, &b.channel, &lines, &b.ship_to.region, ttl)?;
    let (hold, created) = holds::place(hosts, request).await?;
    Ok((created_status(created), hold_view(&hold)?))
}

async fn release_hold(hosts: &Hosts, payload: &[u8]) -> Reply {
    let id = HoldId::parse(&parse::<bodies::ById>(payload)?.id)?;
    ok(hold_view(&holds::release(hosts, &id).await?)?)
}

fn hold_view(hold: &Hold) -> Result<Value, Error> {
    views::hold(hold).ok_or_else(|| Error::Internal("a hold without its request".into()))
}

async fn order_command(
    hosts: &Hosts,
    order: &OrderId,
    command: OrderCommand,
) -> Result<Order, Error> {
    let key = crate::keys::order(order);
    let msg = OrderExec {
        command_id: None,
        command,
    };
    hosts.orders.ask(&key, msg).await?
}

async fn cancel(hosts: &Hosts, payload: &[u8]) -> Reply {
    let id = OrderId::parse(&parse::<bodies::ById>(payload)?.id)?;
    ok(views::order(
        &order_command(hosts, &id, OrderCommand::Cancel).await?,
    ))
}

async fn confirm(hosts: &Hosts, payload: &[u8]) -> Reply {
    let b: bodies::Confirmation = parse(payload)?;
    let (id, order) = fulfillment_id(&b.id)?;
    let step = FulfillmentStatus::parse_step(&b.step).ok_or_else(|| {
        keel_domain::Error::Malformed(format!(
            "step {:?} is not picked|packed|shipped|delivered",
            b.step
        ))
    })?;
    let command = OrderCommand::Confirm {
        fulfillment: id.clone(),
        step,
    };
    let order = match order_command(hosts, &order, command).await {
        Err(Error::Domain(keel_domain::Error::UnknownOrder(_))) => {
            return Err(unknown_fulfillment(&id))
        }
        other => other?,
    };
    let f = order
        .fulfillment(&id)
        .ok_or_else(|| unknown_fulfillment(&id))?;
    let mut view = views::fulfillment(&order, f);
    view["order_status"] = serde_json::to_value(order.status())?;
    ok(view)
}

fn fulfillment_id(raw: &str) -> Result<(FulfillmentId, OrderId), Error> {
    Ok(FulfillmentId::parse(raw)?)
}

fn unknown_fulfillment(id: &FulfillmentId) -> Error {
    keel_domain::Error::UnknownFulfillment(id.to_string()).into()
}

/// Reads a stored entity (reads need no actor: a committed state is the truth).
fn stored<E: Entity>(hosts: &Hosts, id: E::Id, key: String) -> Result<Option<E>, Error> {
    Ok(Durable::<E>::load(&hosts.mesh.store, id, key)?.state)
}

/// An order, live or archived.
fn load_order(hosts: &Hosts, id: &OrderId) -> Result<Option<Order>, Error> {
    let key = crate::keys::order(id);
    Ok(Durable::<Order>::load_with_archive(&hosts.mesh.store, id.clone(), key)?.state)
}

fn stored_order(hosts: &Hosts, payload: &[u8]) -> Result<Order, Error> {
    let id = OrderId::parse(&parse::<bodies::ById>(payload)?.id)?;
    load_order(hosts, &id)?.ok_or_else(|| keel_domain::Error::UnknownOrder(id.to_string()).into())
}
