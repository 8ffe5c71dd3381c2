//! A pure, single-threaded simulation of Keel's orchestration: the "world" the property tests
//! drive.
//!
//! It wires the domain's state machines together exactly as the runtime does. Every command is
//! `decide` + `apply` on its actor; every applied event yields effects through
//! [`keel_domain::effects`]; an effect of an order or a SKU-location to a SKU-location is
//! carried out at once (the order actor awaits its SKU-locations), every other effect waits in
//! a FIFO queue per target actor until the test drains it. A cart hold's effects (the units it
//! gives back) wait in the hold's own queue, as the runtime's relay delivers a hold's outbox
//! later. The reservation saga of a new order (plan → write the plan ahead → reserve → settle →
//! compensate and retry, or complete) is driven through [`keel_domain::order::saga::step`],
//! the very function the order actor drives; an order on a cart hold converts the hold first and
//! then runs the saga's single conversion attempt.
//!
//! Rules that must never break while effects are delivered (an effect refused by its target, a
//! grant beyond what is available to promise, a redelivered acknowledgement that is not a
//! no-op, …) are recorded as *violations*; [`World::check`] reports them together with the
//! cross-actor invariants, so a property test can shrink towards the first operation that
//! broke something instead of aborting on a panic.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;

use keel_domain::catalog::{Channel, Location};
use keel_domain::effects::{
    of_hold_event, of_order_event, of_stock_event, of_warehouse_event, Effect,
};
use keel_domain::hold::{Hold, HoldCommand, HoldEvent, HoldRequest, HoldStatus};
use keel_domain::inventory::{fold, LedgerEntry, SkuLocation, StockCommand, StockEvent};
use keel_domain::order::saga::{self, ReleaseReason, SagaAction, SagaOutcome};
use keel_domain::order::{
    Allocation, Fulfillment, FulfillmentStatus, Order, OrderCommand, OrderEvent, OrderRequest,
    OrderStatus, PlannedLine, MAX_ALLOCATION_ATTEMPTS,
};
use keel_domain::sourcing;
use keel_domain::warehouse::{StatusCounts, WarehouseCommand, WarehouseNode};
use keel_domain::{DocumentId, Error, FulfillmentId, HoldId, LocationId, OrderId, SkuId};
use serde::{de::DeserializeOwned, Serialize};

/// The regions of the world's locations, in location order; orders may also ship elsewhere.
pub const REGIONS: [&str; 3] = ["east", "west", "central"];

/// The channel every order comes through; all locations serve it.
pub const CHANNEL: &str = "web";

/// One SKU-location actor: its state and the ledger its events wrote.
#[derive(Debug, Clone, Default)]
pub struct Stock {
    pub state: SkuLocation,
    pub ledger: Vec<LedgerEntry>,
}

/// The actor an effect waits for.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Target {
    Order(OrderId),
    Warehouse(LocationId),
    /// A cart hold: commands for it, and the effects of its events (the units it gives back),
    /// which the runtime's relay delivers from its outbox some time after they were decided.
    Hold(HoldId),
}

/// Something that happens to a planned SKU-location between planning and reserving, so that
/// the reservation comes back short (or not) and the saga must compensate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interference {
    /// Someone else (an outsider, not an order of this world) reserves `quantity` at the
    /// `line`-th planned SKU-location.
    Outsider { line: usize, quantity: u64 },
    /// A negative adjustment (damage write-off) of `quantity` there; may be refused.
    WriteOff { line: usize, quantity: u64 },
    /// A receipt of `quantity` there.
    Receive { line: usize, quantity: u64 },
    /// The order's node restarts once the first `line` lines (modulo the plan's length + 1)
    /// are reserved: the saga resumes from the stored order (`SagaOutcome::Interrupted`).
    Crash { line: usize },
}

/// How a cart hold's placement goes (the runtime writes the hold, has its SKU-locations keep
/// units aside, then activates it with what they granted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldPlacement {
    /// Without incident.
    Whole,
    /// The client releases the hold while its units are being kept aside: the grants that
    /// arrive afterwards go straight back.
    ReleasedMidway,
    /// The placing node stops after the SKU-locations kept their units, before activating the
    /// hold: it stays `placing` until it is released or expires.
    Crashed,
}

/// The whole world: catalog, actors, undelivered effects and a model of the stock flows.
#[derive(Debug)]
pub struct World {
    pub locations: Vec<Location>,
    pub channel: Channel,
    pub skus: Vec<SkuId>,
    pub stock: BTreeMap<(SkuId, LocationId), Stock>,
    pub orders: BTreeMap<OrderId, Order>,
    /// Order ids in placement order (the tests pick orders by index).
    pub placed: Vec<OrderId>,
    pub nodes: BTreeMap<LocationId, WarehouseNode>,
    /// Undelivered effects per target; empty queues are removed.
    pub queues: BTreeMap<Target, VecDeque<Effect>>,
    /// The clock: bumped by every command.
    pub at: u64,
    /// Model: units received plus net accepted adjustments, per SKU-location.
    pub inflow: BTreeMap<(SkuId, LocationId), i64>,
    /// Reservation holders that are not orders of this world (see [`Interference::Outsider`]).
    pub outsiders: BTreeSet<OrderId>,
    /// The cart hold actors.
    pub holds: BTreeMap<HoldId, Hold>,
    /// Hold ids in placement order (the tests pick holds by index).
    pub hold_ids: Vec<HoldId>,
    /// Orders whose hold conversion was committed but which were never written (the placing
    /// node stopped in between); a retried placement may still write them.
    pub abandoned: Vec<OrderRequest>,
    /// What each saga command answered, by the command id the runtime gives it: a repeated
    /// command is answered from here, as the SKU-location actors dedupe by command id.
    replies: BTreeMap<String, u64>,
    /// Orders named so far (written or abandoned).
    named: usize,
    /// Broken delivery rules, in the order they happened.
    pub violations: Vec<String>,
    /// How often each interesting path ran, to prove the generators reach them.
    pub stats: BTreeMap<&'static str, u64>,
    documents: u64,
}

impl World {
    /// Locations `dc-{region}` with the given priorities (one per entry, at most three), one
    /// channel served by all of them, and SKUs `SKU-1..=skus`; no stock anywhere.
    pub fn new(priorities: &[u32], skus: usize) -> World {
        assert!((1..=REGIONS.len()).contains(&priorities.len()));
        let locations: Vec<Location> = priorities
            .iter()
            .zip(REGIONS)
            .map(|(p, region)| {
                let id = format!("dc-{region}");
                Location::new(&id, &id, region, i64::from(*p)).unwrap()
            })
            .collect();
        let ids: Vec<String> = locations.iter().map(|l| l.id.to_string()).collect();
        let channel = Channel::new(CHANNEL, "Web", &ids).unwrap();
        let skus: Vec<SkuId> = (1..=skus)
            .map(|n| SkuId::parse(&format!("SKU-{n}")).unwrap())
            .collect();
        let mut stock = BTreeMap::new();
        for sku in &skus {
            for loc in &locations {
                stock.insert((sku.clone(), loc.id.clone()), Stock::default());
            }
        }
        let nodes = locations
            .iter()
            .map(|l| (l.id.clone(), WarehouseNode::default()))
            .collect();
        World {
            locations,
            channel,
            skus,
            stock,
            orders: BTreeMap::new(),
            placed: Vec::new(),
            nodes,
            queues: BTreeMap::new(),
            at: 0,
            inflow: BTreeMap::new(),
            outsiders: BTreeSet::new(),
            holds: BTreeMap::new(),
            hold_ids: Vec::new(),
            abandoned: Vec::new(),
            replies: BTreeMap::new(),
            named: 0,
            violations: Vec::new(),
            stats: BTreeMap::new(),
            documents: 0,
        }
    }

    /// The `i`-th SKU (modulo their number).
    pub fn sku(&self, i: usize) -> SkuId {
        self.skus[i % self.skus.len()].clone()
    }

    /// The `i`-th location (modulo their number).
    pub fn location(&self, i: usize) -> LocationId {
        self.locations[i % self.locations.len()].id.clone()
    }

    /// The `i`-th placed order (modulo their number), if any was placed.
    pub fn pick_order(&self, i: usize) -> Option<OrderId> {
        (!self.placed.is_empty()).then(|| self.placed[i % self.placed.len()].clone())
    }

    /// The `i`-th placed hold (modulo their number), if any was placed.
    pub fn pick_hold(&self, i: usize) -> Option<HoldId> {
        (!self.hold_ids.is_empty()).then(|| self.hold_ids[i % self.hold_ids.len()].clone())
    }

    /// The hold with this id.
    pub fn hold(&self, id: &HoldId) -> &Hold {
        &self.holds[id]
    }

    /// The state of one SKU-location.
    pub fn sku_location(&self, sku: &SkuId, location: &LocationId) -> &SkuLocation {
        &self.stock[&(sku.clone(), location.clone())].state
    }

    /// The order with this id.
    pub fn order(&self, id: &OrderId) -> &Order {
        &self.orders[id]
    }

    /// Sets a SKU-location's safety stock (a position bucket no command moves yet).
    pub fn set_safety_stock(&mut self, sku: &SkuId, location: &LocationId, units: u64) {
        let key = (sku.clone(), location.clone());
        self.stock
            .get_mut(&key)
            .expect("known SKU-location")
            .state
            .position
            .safety_stock = units;
    }

    /// Bumps `key`'s counter in [`World::stats`].
    pub fn count(&mut self, key: &'static str) {
        *self.stats.entry(key).or_default() += 1;
    }

    fn violation(&mut self, message: String) {
        self.violations.push(message);
    }

    fn tick(&mut self) -> u64 {
        self.at += 1;
        self.at
    }

    fn document(&mut self, prefix: &str) -> DocumentId {
        self.documents += 1;
        DocumentId::parse(&format!("{prefix}-{}", self.documents)).unwrap()
    }

    fn candidates(&self) -> Vec<Location> {
        self.locations
            .iter()
            .filter(|l| self.channel.locations.contains(&l.id))
            .cloned()
            .collect()
    }

    // ---- actors: decide + apply + route effects -------------------------------------------

    /// Runs a command on a SKU-location: decide, apply (writing the ledger), route effects.
    pub fn stock_command(
        &mut self,
        sku: &SkuId,
        location: &LocationId,
        command: StockCommand,
    ) -> Result<Vec<StockEvent>, Error> {
        let at = self.tick();
        let key = (sku.clone(), location.clone());
        let actor = self.stock.get_mut(&key).expect("known SKU-location");
        let events = actor.state.decide(&command)?;
        let mut broken = Vec::new();
        for event in &events {
            if let Some(problem) = grant_problem(&actor.state, event) {
                broken.push(format!("{sku}@{location}: {problem} (command {command:?})"));
            }
            if let Some(entry) = actor.state.apply(event, at) {
                actor.ledger.push(entry);
            }
        }
        self.violations.extend(broken);
        for event in &events {
            match event {
                StockEvent::BackorderQueued { .. } => self.count("backorder queued"),
                StockEvent::BackorderAllocated { .. } => self.count("backorder allocated"),
                StockEvent::Shipped { .. } => self.count("units shipped"),
                StockEvent::HoldReleased { .. } => self.count("held units returned"),
                _ => {}
            }
            for effect in of_stock_event(sku, location, event) {
                self.route(effect);
            }
        }
        Ok(events)
    }

    /// Runs a command on an order: decide, apply, then route the effects of its events.
    pub fn order_command(
        &mut self,
        id: &OrderId,
        command: OrderCommand,
    ) -> Result<Vec<OrderEvent>, Error> {
        let order = self
            .orders
            .get_mut(id)
            .ok_or_else(|| Error::UnknownOrder(id.to_string()))?;
        let events = order.decide(&command)?;
        events.iter().for_each(|e| order.apply(e));
        for event in &events {
            for effect in of_order_event(id, event) {
                self.route(effect);
            }
        }
        Ok(events)
    }

    /// Runs a command on a warehouse node and routes the effects of its events.
    fn warehouse_command(&mut self, location: &LocationId, command: &WarehouseCommand) {
        let node = self.nodes.get_mut(location).expect("known location");
        let events = node.decide(command);
        events.iter().for_each(|e| node.apply(e));
        for effect in events.iter().flat_map(of_warehouse_event) {
            self.route(effect);
        }
    }

    /// Runs a command on a cart hold: decide, apply, then queue the effects of its events in
    /// the hold's own queue (its outbox, delivered later). A refused command leaves no trace,
    /// not even a hold that was never placed.
    pub fn hold_command(
        &mut self,
        id: &HoldId,
        command: HoldCommand,
    ) -> Result<Vec<HoldEvent>, Error> {
        self.tick();
        let mut hold = self.holds.get(id).cloned().unwrap_or_default();
        let events = hold.decide(&command)?;
        events.iter().for_each(|e| hold.apply(e));
        if events.is_empty() {
            return Ok(events);
        }
        let returns_units = self.stock.values().any(|s| s.state.held_for(id) > 0);
        self.holds.insert(id.clone(), hold);
        for event in &events {
            match event {
                HoldEvent::Placed { .. } => self.count("hold placed"),
                HoldEvent::Activated { .. } => self.count("hold activated"),
                HoldEvent::Ended {
                    status: HoldStatus::Expired,
                    ..
                } => self.count("hold expired"),
                HoldEvent::Ended { .. } => self.count("hold released"),
                HoldEvent::GrantsReturned { .. } => self.count("late hold grants returned"),
                HoldEvent::Converted { .. } => self.count("hold converted"),
                HoldEvent::Swept { .. } if returns_units => self.count("converted hold swept"),
                HoldEvent::Swept { .. } => self.count("converted hold found empty"),
            }
            for effect in of_hold_event(id, event) {
                if !matches!(
                    effect,
                    Effect::Stock {
                        command: StockCommand::ReleaseHold { .. },
                        ..
                    }
                ) {
                    self.violation(format!("hold {id} owes an unexpected {effect:?}"));
                }
                let queue = self.queues.entry(Target::Hold(id.clone())).or_default();
                queue.push_back(effect);
            }
        }
        Ok(events)
    }

    /// Stock effects are carried out at once; the others wait in their target's queue.
    fn route(&mut self, effect: Effect) {
        let target = match &effect {
            Effect::Stock { .. } => return self.deliver(effect),
            Effect::Order { order, .. } => Target::Order(order.clone()),
            Effect::Warehouse { location, .. } => Target::Warehouse(location.clone()),
            Effect::Hold { hold, .. } => Target::Hold(hold.clone()),
        };
        self.queues.entry(target).or_default().push_back(effect);
    }

    /// Carries out one effect. Its target must accept it; acknowledgements (warehouse
    /// commands, `AcceptFulfillment`) must also be no-ops when decided again on the new state.
    fn deliver(&mut self, effect: Effect) {
        self.tick();
        self.count("effects delivered");
        match effect {
            Effect::Stock {
                sku,
                location,
                command,
            } => {
                if let Err(e) = self.stock_command(&sku, &location, command.clone()) {
                    self.violation(format!("{sku}@{location} refused effect {command:?}: {e}"));
                }
            }
            Effect::Order { order, command } => {
                match self.order_command(&order, command.clone()) {
                    Err(e) => self.violation(format!("order {order} refused {command:?}: {e}")),
                    Ok(events) => {
                        for event in &events {
                            match event {
                                OrderEvent::BackorderFilled { .. } => {
                                    self.count("backorder filled")
                                }
                                OrderEvent::BackorderReturned { .. } => {
                                    self.count("backorder fill returned")
                                }
                                _ => {}
                            }
                        }
                    }
                }
                if matches!(command, OrderCommand::AcceptFulfillment { .. }) {
                    let again = self.orders.get(&order).map(|o| o.decide(&command));
                    if !matches!(again, Some(Ok(ref events)) if events.is_empty()) {
                        self.violation(format!("redelivered {command:?} to {order}: {again:?}"));
                    }
                }
            }
            Effect::Hold { hold, command } => {
                if let Err(e) = self.hold_command(&hold, command.clone()) {
                    self.violation(format!("hold {hold} refused {command:?}: {e}"));
                }
            }
            Effect::Warehouse { location, command } => {
                self.warehouse_command(&location, &command);
                let again = self.nodes[&location].decide(&command);
                if !again.is_empty() {
                    self.violation(format!("redelivered {command:?} to {location}: {again:?}"));
                }
            }
        }
    }

    /// Records a refusal of a command the orchestration itself sends; returns its events.
    fn must<T: Default + Debug>(&mut self, what: impl Debug, result: Result<T, Error>) -> T {
        result.unwrap_or_else(|e| {
            self.violation(format!("{what:?} refused: {e}"));
            T::default()
        })
    }

    // ---- queues -----------------------------------------------------------------------------

    /// Whether an effect to this target is still undelivered.
    pub fn pending(&self, target: &Target) -> bool {
        self.queues.contains_key(target)
    }

    fn pop(&mut self, target: &Target) -> Option<Effect> {
        let queue = self.queues.get_mut(target)?;
        let effect = queue.pop_front();
        if queue.is_empty() {
            self.queues.remove(target);
        }
        effect
    }

    /// Delivers up to `count` effects from the `pick`-th non-empty queue (modulo their number).
    pub fn drain(&mut self, pick: usize, count: usize) {
        let Some(target) = self
            .queues
            .keys()
            .nth(pick % self.queues.len().max(1))
            .cloned()
        else {
            return;
        };
        for _ in 0..count {
            match self.pop(&target) {
                Some(effect) => self.deliver(effect),
                None => break,
            }
        }
    }

    /// Delivers every undelivered effect, including those that delivering causes.
    pub fn drain_all(&mut self) {
        for _ in 0..100_000 {
            let Some(target) = self.queues.keys().next().cloned() else {
                return;
            };
            if let Some(effect) = self.pop(&target) {
                self.deliver(effect);
            }
        }
        self.violation("effects kept causing effects: no quiescence after 100000".into());
    }

    // ---- operations -------------------------------------------------------------------------

    /// Goods arrived at a SKU-location.
    pub fn receive(&mut self, sku: &SkuId, location: &LocationId, quantity: u64) {
        let receipt = self.document("r");
        let command = StockCommand::Receive { receipt, quantity };
        let result = self.stock_command(sku, location, command.clone());
        self.must((sku, location, command), result);
        *self
            .inflow
            .entry((sku.clone(), location.clone()))
            .or_default() += i64::try_from(quantity).unwrap();
    }

    /// A stock adjustment; the model counts it only when accepted.
    pub fn adjust(
        &mut self,
        sku: &SkuId,
        location: &LocationId,
        delta: i64,
    ) -> Result<Vec<StockEvent>, Error> {
        let adjustment = self.document("adj");
        let command = StockCommand::Adjust {
            adjustment,
            delta,
            reason: "cycle count".into(),
        };
        let events = self.stock_command(sku, location, command)?;
        *self
            .inflow
            .entry((sku.clone(), location.clone()))
            .or_default() += delta;
        Ok(events)
    }

    /// A warehouse confirmation step for one fulfillment of an order.
    pub fn confirm(
        &mut self,
        order: &OrderId,
        fulfillment: &FulfillmentId,
        step: FulfillmentStatus,
    ) -> Result<Vec<OrderEvent>, Error> {
        self.tick();
        let command = OrderCommand::Confirm {
            fulfillment: fulfillment.clone(),
            step,
        };
        self.order_command(order, command)
    }

    /// A client cancels an order.
    pub fn cancel(&mut self, order: &OrderId) -> Result<Vec<OrderEvent>, Error> {
        self.tick();
        self.order_command(order, OrderCommand::Cancel)
    }

    /// Places an order for `lines` shipping to `region` and runs its reservation saga to the
    /// end; `interference[n]` disturbs attempt `n + 1` between planning and reserving.
    pub fn place(
        &mut self,
        lines: &[(SkuId, u64)],
        region: &str,
        interference: &[Option<Interference>],
    ) -> OrderId {
        let request = self.order_request(lines, region);
        let id = request.id.clone();
        self.named += 1;
        let created_at = self.tick();
        self.orders
            .insert(id.clone(), Order::place(request, created_at));
        self.placed.push(id.clone());
        self.count("orders placed");
        // The runtime writes the first plan with the order: the same as planning at once.
        self.run_saga(&id, SagaAction::Plan, interference);
        id
    }

    /// Places an order for `lines` shipping to `region` on the units of `hold`: the hold
    /// converts first (a refusal writes no order and changes nothing), then the order is written
    /// with what the hold got as its first plan and the saga's single attempt converts the held
    /// units. With `abandon`, the placing node stops right after the conversion: no order is
    /// written (see [`World::retry_abandoned`]); the hold's expiry sweeps its units back.
    pub fn place_on_hold(
        &mut self,
        lines: &[(SkuId, u64)],
        region: &str,
        hold: &HoldId,
        interference: &[Option<Interference>],
        abandon: bool,
    ) -> Result<OrderId, Error> {
        let request = self
            .order_request(lines, region)
            .on_hold(hold.as_str())
            .expect("a valid hold id");
        let id = request.id.clone();
        self.convert_and_write(request, interference, abandon)?;
        self.named += 1;
        Ok(id)
    }

    /// Retries the placement of the `i`-th abandoned order (modulo their number), as a client
    /// retries a request that got no answer: the hold answers its conversion as before, and
    /// the order is written now. `None` if no order was abandoned.
    pub fn retry_abandoned(
        &mut self,
        i: usize,
        interference: &[Option<Interference>],
    ) -> Option<Result<OrderId, Error>> {
        if self.abandoned.is_empty() {
            return None;
        }
        let request = self.abandoned.remove(i % self.abandoned.len());
        let id = request.id.clone();
        self.count("abandoned order retried");
        Some(
            self.convert_and_write(request, interference, false)
                .map(|()| id),
        )
    }

    fn convert_and_write(
        &mut self,
        request: OrderRequest,
        interference: &[Option<Interference>],
        abandon: bool,
    ) -> Result<(), Error> {
        let hold = request.hold.clone().expect("an order on a hold");
        let convert = HoldCommand::Convert {
            order: request.id.clone(),
            channel: request.channel.clone(),
            lines: request.lines.clone(),
        };
        if let Err(e) = self.hold_command(&hold, convert) {
            self.count("conversion refused");
            return Err(e);
        }
        if abandon {
            self.count("conversion abandoned");
            self.abandoned.push(request);
            return Ok(());
        }
        let id = request.id.clone();
        let plan = self.holds[&hold].granted.clone();
        let created_at = self.tick();
        self.orders
            .insert(id.clone(), Order::place(request, created_at));
        self.placed.push(id.clone());
        self.count("orders placed on a hold");
        let start = OrderCommand::StartAllocation { plan };
        let result = self.order_command(&id, start.clone());
        self.must(&start, result);
        let first = saga::step(&self.orders[&id], &self.wait_at(&id), SagaOutcome::Planned);
        self.run_saga(&id, first, interference);
        Ok(())
    }

    /// A validated request for the next order's id.
    fn order_request(&self, lines: &[(SkuId, u64)], region: &str) -> OrderRequest {
        let id = format!("o-{}", self.named + 1);
        let raw: Vec<(&str, i64)> = lines
            .iter()
            .map(|(sku, q)| (sku.as_str(), i64::try_from(*q).unwrap()))
            .collect();
        OrderRequest::new(&id, CHANNEL, &raw, region).expect("a valid request")
    }

    /// Where the order's unfilled units wait.
    fn wait_at(&self, order: &OrderId) -> LocationId {
        let region = &self.orders[order].request.ship_to.region;
        sourcing::backorder_location(&self.candidates(), region)
            .expect("the channel has locations")
            .clone()
    }

    /// Drives the order's reservation saga from `action` until [`saga::step`] says it is done,
    /// carrying each action out as the order actor does. `interference[n]` disturbs attempt
    /// `n + 1` once, between its planning and its reservations.
    fn run_saga(
        &mut self,
        id: &OrderId,
        mut action: SagaAction,
        interference: &[Option<Interference>],
    ) {
        let wait_at = self.wait_at(id);
        let attempts = MAX_ALLOCATION_ATTEMPTS as usize + interference.len();
        // Plan, reserve, release per attempt, a repeated conversion, completion, done.
        let bound = 3 * attempts + 3;
        let mut disturbed = 0;
        for _ in 0..bound {
            let outcome = match action {
                SagaAction::Done => return,
                SagaAction::Plan => {
                    let request = self.orders[id].request.clone();
                    let region = &request.ship_to.region;
                    let plan =
                        sourcing::plan(&request.lines, &self.candidates(), region, |sku, loc| {
                            self.sku_location(sku, loc).position.available()
                        });
                    let start = OrderCommand::StartAllocation { plan: plan.lines };
                    let result = self.order_command(id, start.clone());
                    self.must(&start, result);
                    SagaOutcome::Planned
                }
                SagaAction::Reserve {
                    attempt,
                    plan,
                    hold,
                } => {
                    let mut crash = None;
                    if attempt > disturbed {
                        disturbed = attempt;
                        let index = usize::try_from(attempt - 1).unwrap();
                        match interference.get(index).copied().flatten() {
                            Some(Interference::Crash { line }) => {
                                crash = Some(line % (plan.len() + 1));
                            }
                            Some(other) => self.interfere(other, &plan),
                            None => {}
                        }
                    } else if hold.is_some() {
                        self.count("hold conversion repeated");
                    }
                    let reserved = crash.unwrap_or(plan.len());
                    let granted: Vec<PlannedLine> = plan
                        .iter()
                        .enumerate()
                        .take(reserved)
                        .map(|(i, line)| PlannedLine {
                            quantity: self.reserve(id, attempt, i, line, hold.as_ref()),
                            ..line.clone()
                        })
                        .collect();
                    if crash.is_some() {
                        self.count("allocation interrupted");
                        SagaOutcome::Interrupted
                    } else {
                        SagaOutcome::Reserved(granted)
                    }
                }
                SagaAction::Release {
                    attempt,
                    lines,
                    why,
                } => {
                    let (tag, reason) = match why {
                        ReleaseReason::Compensation => {
                            self.count("allocation retried");
                            ("c", "compensation")
                        }
                        ReleaseReason::Recovery => {
                            self.count("allocation recovered");
                            ("r", "recovery")
                        }
                    };
                    for (i, line) in lines.iter().enumerate() {
                        let command_id = format!("{id}#a{attempt}.{tag}{i}");
                        self.release(id, &command_id, line, reason);
                    }
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
                    let result = self.order_command(id, complete.clone());
                    self.must(&complete, result);
                    SagaOutcome::Completed
                }
            };
            action = saga::step(&self.orders[id], &wait_at, outcome);
        }
        self.violation(format!(
            "order {id}: the saga did not settle within {bound} steps ({:?})",
            self.orders[id].allocation
        ));
    }

    /// The saga's reservation of one planned line (or conversion of what `hold` keeps there)
    /// under the runtime's command id; returns the units granted. A repeated command id is
    /// answered as the first time, as the SKU-location actor dedupes it.
    fn reserve(
        &mut self,
        order: &OrderId,
        attempt: u32,
        i: usize,
        line: &PlannedLine,
        hold: Option<&HoldId>,
    ) -> u64 {
        let command_id = format!("{order}#a{attempt}.{i}");
        if let Some(granted) = self.replies.get(&command_id) {
            return *granted;
        }
        let command = match hold {
            Some(hold) => StockCommand::ConvertHold {
                hold: hold.clone(),
                order: order.clone(),
                quantity: line.quantity,
            },
            None => StockCommand::Reserve {
                order: order.clone(),
                quantity: line.quantity,
            },
        };
        let result = self.stock_command(&line.sku, &line.location, command.clone());
        let granted = self
            .must(&command, result)
            .iter()
            .map(|e| match e {
                StockEvent::Reserved { quantity, .. }
                | StockEvent::HoldConverted { quantity, .. } => *quantity,
                _ => 0,
            })
            .sum();
        self.replies.insert(command_id, granted);
        granted
    }

    /// The saga's release of one line, under the runtime's command id (done once).
    fn release(&mut self, order: &OrderId, command_id: &str, line: &PlannedLine, reason: &str) {
        if self.replies.contains_key(command_id) {
            return;
        }
        let command = StockCommand::Release {
            order: order.clone(),
            quantity: line.quantity,
            reason: reason.into(),
        };
        let result = self.stock_command(&line.sku, &line.location, command.clone());
        let released = self
            .must(&command, result)
            .iter()
            .map(|e| match e {
                StockEvent::Released { quantity, .. } => *quantity,
                _ => 0,
            })
            .sum();
        self.replies.insert(command_id.to_owned(), released);
    }

    /// Places a cart hold on `lines` for `ttl_secs`, as the runtime does: plan from what the
    /// channel's locations can promise, write the hold with its plan, have each planned
    /// SKU-location keep what it can aside, then activate the hold with what they granted —
    /// unless `placement` says otherwise.
    pub fn place_hold(
        &mut self,
        lines: &[(SkuId, u64)],
        region: &str,
        ttl_secs: u64,
        placement: HoldPlacement,
    ) -> HoldId {
        let id = format!("h-{}", self.hold_ids.len() + 1);
        let raw: Vec<(&str, i64)> = lines
            .iter()
            .map(|(sku, q)| (sku.as_str(), i64::try_from(*q).unwrap()))
            .collect();
        let ttl = i64::try_from(ttl_secs).unwrap();
        let request = HoldRequest::new(&id, CHANNEL, &raw, region, ttl).expect("a valid hold");
        let id = request.id.clone();
        let plan = sourcing::plan(&request.lines, &self.candidates(), region, |sku, loc| {
            self.sku_location(sku, loc).position.available()
        });
        // The clock's time when the command runs (`hold_command` ticks once).
        let at = self.at + 1;
        let place = HoldCommand::Place {
            request,
            plan: plan.lines,
            at,
        };
        let result = self.hold_command(&id, place.clone());
        self.must(&place, result);
        self.hold_ids.push(id.clone());
        if placement == HoldPlacement::ReleasedMidway {
            let result = self.hold_command(&id, HoldCommand::Release);
            self.must(HoldCommand::Release, result);
        }
        let planned = self.holds[&id].plan.clone();
        let granted: Vec<PlannedLine> = planned
            .iter()
            .map(|line| {
                let command = StockCommand::Hold {
                    hold: id.clone(),
                    quantity: line.quantity,
                };
                let result = self.stock_command(&line.sku, &line.location, command.clone());
                let quantity = self
                    .must(&command, result)
                    .iter()
                    .map(|e| match e {
                        StockEvent::Held { quantity, .. } => *quantity,
                        _ => 0,
                    })
                    .sum();
                PlannedLine {
                    quantity,
                    ..line.clone()
                }
            })
            .collect();
        if placement == HoldPlacement::Crashed {
            self.count("hold placement interrupted");
            return id;
        }
        let activate = HoldCommand::Activate { granted };
        let result = self.hold_command(&id, activate.clone());
        self.must(&activate, result);
        id
    }

    /// A client releases a hold.
    pub fn release_hold(&mut self, hold: &HoldId) -> Result<Vec<HoldEvent>, Error> {
        self.hold_command(hold, HoldCommand::Release)
    }

    /// A hold's expiry timer fires: at its due time (the expiry, or the late sweep of a hold
    /// that ended while placed), or (`early`) a moment before it, as a timer of a previous
    /// due time might.
    pub fn expire_hold(&mut self, hold: &HoldId, early: bool) -> Result<Vec<HoldEvent>, Error> {
        let due = self.holds.get(hold).map_or(self.at, |h| {
            h.timers().first().map_or(h.expires_at, |(due, _)| *due)
        });
        let at = if early { due.saturating_sub(1) } else { due };
        self.hold_command(hold, HoldCommand::Expire { at })
    }

    /// Fires the expiry timer of every hold that still wants one (what the clock reaching
    /// the end of every hold's time does).
    /// A hold may want a second timer (a late sweep after it expired while placed), so
    /// this fires timers until none is left (at most three rounds).
    pub fn expire_all_holds(&mut self) {
        for _ in 0..3 {
            let due: Vec<HoldId> = self
                .holds
                .iter()
                .filter(|(_, h)| !h.timers().is_empty())
                .map(|(id, _)| id.clone())
                .collect();
            for id in due {
                let result = self.expire_hold(&id, false);
                self.must(("expire", &id), result);
            }
        }
    }

    fn interfere(&mut self, interference: Interference, plan: &[PlannedLine]) {
        let (Interference::Outsider { line, quantity }
        | Interference::WriteOff { line, quantity }
        | Interference::Receive { line, quantity }) = interference
        else {
            // A crash is the saga driver's business (see `run_saga`).
            return;
        };
        let Some(target) = (!plan.is_empty()).then(|| plan[line % plan.len()].clone()) else {
            return;
        };
        self.count("interference");
        let (sku, location) = (&target.sku, &target.location);
        match interference {
            Interference::Outsider { .. } => {
                let n = self.outsiders.len() + 1;
                let holder = OrderId::parse(&format!("outsider-{n}")).unwrap();
                self.outsiders.insert(holder.clone());
                let command = StockCommand::Reserve {
                    order: holder,
                    quantity,
                };
                let result = self.stock_command(sku, location, command.clone());
                self.must(&command, result);
            }
            Interference::WriteOff { .. } => {
                let delta = -i64::try_from(quantity).unwrap();
                let _ = self.adjust(sku, location, delta);
            }
            Interference::Receive { .. } => self.receive(sku, location, quantity),
            Interference::Crash { .. } => {}
        }
    }

    // ---- invariants -------------------------------------------------------------------------

    /// Checks every invariant that must hold between operations, and reports the delivery
    /// violations recorded so far. Cross-actor agreement is checked for each order (and node)
    /// with no undelivered effects.
    pub fn check(&self) -> Result<(), String> {
        let mut problems: Vec<String> = self.violations.clone();
        for ((sku, loc), stock) in &self.stock {
            for p in self.stock_problems(stock) {
                problems.push(format!("{sku}@{loc}: {p}"));
            }
        }
        for (id, hold) in &self.holds {
            for p in self.hold_problems(id, hold) {
                problems.push(format!("hold {id}: {p}"));
            }
        }
        problems.extend(self.model_problems());
        for (id, order) in &self.orders {
            for p in self.order_problems(id, order) {
                problems.push(format!("order {id}: {p}"));
            }
        }
        for (loc, node) in &self.nodes {
            if !self.pending(&Target::Warehouse(loc.clone())) {
                for p in self.node_problems(loc, node) {
                    problems.push(format!("node {loc}: {p}"));
                }
            }
        }
        report(problems)
    }

    /// Delivers everything, then checks the invariants for every actor, that every
    /// fulfillment was acknowledged, that nothing is held once every hold is over, and that
    /// every state survives its JSON round trip.
    pub fn settle_and_check(&mut self) -> Result<(), String> {
        self.drain_all();
        let mut problems = Vec::new();
        if let Err(e) = self.check() {
            problems.push(e);
        }
        if self.holds.values().all(|h| h.timers().is_empty()) {
            for ((sku, loc), stock) in &self.stock {
                let s = &stock.state;
                if s.position.held > 0 || !s.holds.is_empty() {
                    problems.push(format!(
                        "{sku}@{loc}: every hold is over, yet {} held for {:?}",
                        s.position.held, s.holds
                    ));
                }
            }
        }
        for (id, hold) in &self.holds {
            problems.extend(round_trip_problem(&format!("hold {id}"), hold));
        }
        for (id, order) in &self.orders {
            for f in order.fulfillments.iter().filter(|f| !f.accepted) {
                problems.push(format!("order {id}: {} was never acknowledged", f.id));
            }
            problems.extend(round_trip_problem(&format!("order {id}"), order));
        }
        for ((sku, loc), stock) in &self.stock {
            problems.extend(round_trip_problem(&format!("{sku}@{loc}"), &stock.state));
        }
        for (loc, node) in &self.nodes {
            problems.extend(round_trip_problem(&format!("node {loc}"), node));
        }
        report(problems)
    }

    /// One SKU-location on its own: buckets, ledger, reservations, backorder queue.
    fn stock_problems(&self, stock: &Stock) -> Vec<String> {
        let mut problems = Vec::new();
        let s = &stock.state;
        let p = &s.position;
        if p.allocated + p.held > p.on_hand {
            problems.push(format!(
                "oversold: allocated {} + held {} > on_hand {}",
                p.allocated, p.held, p.on_hand
            ));
        }
        let totals = fold(&stock.ledger);
        if !totals.matches(p) {
            problems.push(format!("ledger folds to {totals:?}, position is {p:?}"));
        }
        let gaps = stock
            .ledger
            .iter()
            .enumerate()
            .any(|(i, e)| u64::try_from(i) != Ok(e.seq));
        if gaps || u64::try_from(stock.ledger.len()) != Ok(s.next_seq) {
            let seqs: Vec<u64> = stock.ledger.iter().map(|e| e.seq).collect();
            problems.push(format!("ledger seqs {seqs:?}, next_seq {}", s.next_seq));
        }
        let reserved: u64 = s.reservations.values().sum();
        if reserved != p.allocated {
            problems.push(format!(
                "reservations {:?} add up to {reserved}, allocated is {}",
                s.reservations, p.allocated
            ));
        }
        for (holder, q) in &s.reservations {
            if *q == 0 || !(self.orders.contains_key(holder) || self.outsiders.contains(holder)) {
                problems.push(format!("reservation {holder}: {q}"));
            }
        }
        let held: u64 = s.holds.values().sum();
        if held != p.held {
            problems.push(format!(
                "holds {:?} add up to {held}, held is {}",
                s.holds, p.held
            ));
        }
        for (holder, q) in &s.holds {
            let keeps = self.holds.get(holder).is_some_and(|h| {
                h.status.is_open()
                    || (h.status == HoldStatus::Converted && !h.swept)
                    || self.pending(&Target::Hold(holder.clone()))
            });
            if *q == 0 || !keeps {
                let status = self.holds.get(holder).map(|h| (h.status, h.swept));
                problems.push(format!("held {q} for hold {holder} ({status:?})"));
            }
        }
        let mut waiting = BTreeSet::new();
        for b in &s.backorders {
            let live = self.orders.get(&b.order).is_some_and(|o| !o.cancelled);
            if b.quantity == 0 || !live || !waiting.insert(&b.order) {
                problems.push(format!(
                    "backorder queue {:?}: {} may not wait",
                    s.backorders, b.order
                ));
            }
        }
        if !s.backorders.is_empty() && p.available() > 0 {
            problems.push(format!(
                "{} available while {:?} wait",
                p.available(),
                s.backorders
            ));
        }
        problems
    }

    /// The model of stock flows: on hand = received + adjusted − shipped (by the orders' own
    /// account of what shipped), per SKU-location and in total.
    fn model_problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let (mut on_hand, mut expected) = (0i64, 0i64);
        for ((sku, loc), stock) in &self.stock {
            let shipped: u64 = self.orders.values().map(|o| shipped_at(o, sku, loc)).sum();
            let inflow = self.inflow.get(&(sku.clone(), loc.clone())).copied();
            let want = inflow.unwrap_or(0) - i64::try_from(shipped).unwrap();
            let have = i64::try_from(stock.state.position.on_hand).unwrap();
            if have != want {
                problems.push(format!(
                    "{sku}@{loc}: on_hand {have}, but received+adjusted {inflow:?} − shipped \
                     {shipped} = {want}"
                ));
            }
            on_hand += have;
            expected += want;
        }
        if on_hand != expected {
            problems.push(format!(
                "world on_hand {on_hand} ≠ received+adjusted−shipped {expected}"
            ));
        }
        problems
    }

    /// One order, and — when nothing is on its way to it — its agreement with the stock.
    fn order_problems(&self, id: &OrderId, order: &Order) -> Vec<String> {
        let mut problems = Vec::new();
        if order.allocation != Allocation::Done {
            problems.push(format!("allocation still {:?}", order.allocation));
        }
        let ids: BTreeSet<&FulfillmentId> = order.fulfillments.iter().map(|f| &f.id).collect();
        if ids.len() != order.fulfillments.len() {
            problems.push("two fulfillments share an id".into());
        }
        for f in &order.fulfillments {
            if f.lines.is_empty() || f.lines.iter().any(|l| l.quantity == 0) {
                problems.push(format!("{} has empty lines: {:?}", f.id, f.lines));
            }
        }
        for ((sku, loc), stock) in &self.stock {
            if order.cancelled && stock.state.backorders.iter().any(|b| &b.order == id) {
                problems.push(format!("cancelled but still waits at {sku}@{loc}"));
            }
        }
        if let Some(hold) = &order.request.hold {
            let taken = self.holds.get(hold).and_then(|h| h.order.as_ref());
            if taken != Some(id) {
                problems.push(format!("placed on hold {hold}, which went to {taken:?}"));
            }
        }
        let status = order.status();
        let nothing_shipped = !order.fulfillments.iter().any(|f| f.status.has_shipped());
        if order.cancelled && nothing_shipped && status != OrderStatus::Cancelled {
            problems.push(format!("cancelled with nothing shipped, yet {status:?}"));
        }
        if self.pending(&Target::Order(id.clone())) {
            return problems;
        }
        // Nothing on its way to this order: the SKU-locations and the order must agree.
        for ((sku, loc), stock) in &self.stock {
            let held = stock.state.reserved_for(id);
            let owed = order.reserved_at(sku, loc);
            if held != owed {
                problems.push(format!(
                    "{sku}@{loc} holds {held} for it, its unshipped fulfillments there say {owed}"
                ));
            }
            let queued: u64 = stock
                .state
                .backorders
                .iter()
                .filter(|b| &b.order == id)
                .map(|b| b.quantity)
                .sum();
            let waiting: u64 = order
                .backorders
                .iter()
                .filter(|b| &b.sku == sku && &b.location == loc)
                .map(|b| b.quantity)
                .sum();
            if queued != waiting {
                problems.push(format!(
                    "{sku}@{loc} queues {queued} for it, the order waits for {waiting}"
                ));
            }
        }
        if order.cancelled {
            if !order.backorders.is_empty() {
                problems.push(format!("cancelled with backorders {:?}", order.backorders));
            }
        } else {
            for line in &order.request.lines {
                let (a, b) = (order.allocated(&line.sku), order.backordered(&line.sku));
                if a + b != line.quantity {
                    problems.push(format!(
                        "{}: allocated {a} + backordered {b} ≠ ordered {}",
                        line.sku, line.quantity
                    ));
                }
            }
            if let Some(f) = order
                .fulfillments
                .iter()
                .find(|f| f.status == FulfillmentStatus::Cancelled)
            {
                problems.push(format!("not cancelled, yet {} is", f.id));
            }
        }
        problems
    }

    /// One hold, and — when nothing it gave back is still on its way — its agreement with the
    /// SKU-locations: an active hold keeps exactly what it was granted, a placing one at most
    /// its plan, a converted one whose order is written nothing (the order took it all) and one
    /// whose order never got written everything until the sweep; an ended or swept one nothing.
    fn hold_problems(&self, id: &HoldId, hold: &Hold) -> Vec<String> {
        let mut problems = Vec::new();
        if hold.request.is_none() {
            problems.push(format!("stored without a request: {hold:?}"));
        }
        if hold.status == HoldStatus::Converted && hold.order.is_none() {
            problems.push("converted to no order".into());
        }
        if let Some(order) = hold.order.as_ref().and_then(|o| self.orders.get(o)) {
            if order.request.hold.as_ref() != Some(id) {
                problems.push(format!(
                    "converted to {}, not placed on it",
                    order.request.id
                ));
            }
        }
        if self.pending(&Target::Hold(id.clone())) {
            return problems;
        }
        let sum = |lines: &[PlannedLine], sku: &SkuId, loc: &LocationId| -> u64 {
            lines
                .iter()
                .filter(|l| &l.sku == sku && &l.location == loc)
                .map(|l| l.quantity)
                .sum()
        };
        let written = hold
            .order
            .as_ref()
            .is_some_and(|o| self.orders.contains_key(o));
        for ((sku, loc), stock) in &self.stock {
            let have = stock.state.held_for(id);
            let (least, most) = match hold.status {
                HoldStatus::Placing => (0, sum(&hold.plan, sku, loc)),
                HoldStatus::Active => {
                    let granted = sum(&hold.granted, sku, loc);
                    (granted, granted)
                }
                HoldStatus::Converted if !hold.swept && !written => {
                    let granted = sum(&hold.granted, sku, loc);
                    (granted, granted)
                }
                _ => (0, 0),
            };
            if !(least..=most).contains(&have) {
                problems.push(format!(
                    "{sku}@{loc} keeps {have} for it, {:?} (swept: {}, order written: \
                     {written}) means {least}..={most}",
                    hold.status, hold.swept
                ));
            }
        }
        problems
    }

    /// A node with no undelivered effects knows exactly the orders' fulfillments at its
    /// location: the open ones with their status, and counts by status of all of them.
    fn node_problems(&self, loc: &LocationId, node: &WarehouseNode) -> Vec<String> {
        let mut problems = Vec::new();
        let mut counts = StatusCounts::default();
        let mut open = BTreeSet::new();
        for (id, order) in &self.orders {
            for f in order.fulfillments.iter().filter(|f| &f.location == loc) {
                count_status(&mut counts, f.status);
                let closed = matches!(
                    f.status,
                    FulfillmentStatus::Delivered | FulfillmentStatus::Cancelled
                );
                match node.open.get(&f.id) {
                    None if closed => {}
                    Some(o) if !closed && o.order == *id && o.status == f.status => {
                        open.insert(&f.id);
                    }
                    seen => problems.push(format!(
                        "{} is {:?} but the node has {seen:?}",
                        f.id, f.status
                    )),
                }
                if !f.accepted && !self.pending(&Target::Order(id.clone())) {
                    problems.push(format!("{} acknowledged by the node only", f.id));
                }
                problems.extend(lines_problem(node, f));
            }
        }
        if node.counts != counts {
            problems.push(format!(
                "counts {:?}, fulfillments say {counts:?}",
                node.counts
            ));
        }
        for extra in node.open.keys().filter(|f| !open.contains(f)) {
            problems.push(format!("{extra} is open but no order has it open"));
        }
        problems
    }
}

/// A grant (reservation, backorder allocation, units kept for a hold) must fit what is
/// available to promise, and a backorder allocation must go to an order waiting for at least
/// that much.
fn grant_problem(state: &SkuLocation, event: &StockEvent) -> Option<String> {
    let (order, quantity, backorder) = match event {
        StockEvent::Reserved { order, quantity } => (order, *quantity, false),
        StockEvent::BackorderAllocated { order, quantity } => (order, *quantity, true),
        StockEvent::Held { hold, quantity } => {
            let available = state.position.available();
            return (*quantity > available).then(|| {
                format!(
                    "kept {quantity} aside for hold {hold} with {available} available to \
                     promise (position {:?})",
                    state.position
                )
            });
        }
        _ => return None,
    };
    let available = state.position.available();
    if quantity > available {
        return Some(format!(
            "granted {quantity} to {order} with {available} available to promise \
             (position {:?})",
            state.position
        ));
    }
    let waits = state
        .backorders
        .iter()
        .find(|b| &b.order == order)
        .map_or(0, |b| b.quantity);
    (backorder && quantity > waits)
        .then(|| format!("allocated {quantity} to {order}'s backorder of {waits}"))
}

/// Units of `sku` the order shipped from `location`.
fn shipped_at(order: &Order, sku: &SkuId, location: &LocationId) -> u64 {
    order
        .fulfillments
        .iter()
        .filter(|f| &f.location == location && f.status.has_shipped())
        .flat_map(|f| &f.lines)
        .filter(|l| &l.sku == sku)
        .map(|l| l.quantity)
        .sum()
}

fn count_status(counts: &mut StatusCounts, status: FulfillmentStatus) {
    let slot = match status {
        FulfillmentStatus::Released => &mut counts.released,
        FulfillmentStatus::Picked => &mut counts.picked,
        FulfillmentStatus::Packed => &mut counts.packed,
        FulfillmentStatus::Shipped => &mut counts.shipped,
        FulfillmentStatus::Delivered => &mut counts.delivered,
        FulfillmentStatus::Cancelled => &mut counts.cancelled,
    };
    *slot += 1;
}

fn lines_problem(node: &WarehouseNode, f: &Fulfillment) -> Option<String> {
    let open = node.open.get(&f.id)?;
    (open.lines != f.lines).then(|| format!("{}: node has lines {:?}", f.id, open.lines))
}

fn round_trip_problem<T: Serialize + DeserializeOwned + PartialEq + Debug>(
    what: &str,
    value: &T,
) -> Option<String> {
    let json = serde_json::to_string(value).expect("serializable");
    match serde_json::from_str::<T>(&json) {
        Ok(back) if back == *value => None,
        other => Some(format!("{what}: JSON round trip gave {other:?}")),
    }
}

fn report(problems: Vec<String>) -> Result<(), String> {
    if problems.is_empty() {
        return Ok(());
    }
    let shown: Vec<&str> = problems.iter().take(8).map(String::as_str).collect();
    let more = problems.len().saturating_sub(shown.len());
    Err(format!(
        "{} invariant violation(s){}:\n  - {}",
        problems.len(),
        if more > 0 {
            format!(" ({more} not shown)")
        } else {
            String::new()
        },
        shown.join("\n  - ")
    ))
}
