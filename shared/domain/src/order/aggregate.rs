use super::{FulfillmentStatus, OrderRequest, OrderStatus};
use crate::{Error, FulfillmentId, LocationId, SkuId};
use serde::{Deserialize, Serialize};

/// How many sourcing plans an order tries before it accepts what it got and backorders the rest.
pub const MAX_ALLOCATION_ATTEMPTS: u32 = 3;

/// A quantity of one SKU planned (or granted) at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedLine {
    pub location: LocationId,
    pub sku: SkuId,
    pub quantity: u64,
}

/// A quantity of one SKU waiting for stock at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WaitingLine {
    pub sku: SkuId,
    pub location: LocationId,
    pub quantity: u64,
}

/// One line of a fulfillment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FulfillmentLine {
    pub sku: SkuId,
    pub quantity: u64,
}

/// The part of an order one location ships.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fulfillment {
    pub id: FulfillmentId,
    pub location: LocationId,
    pub status: FulfillmentStatus,
    pub lines: Vec<FulfillmentLine>,
    /// Whether the warehouse node has acknowledged it (until then the order shows `allocated`).
    pub accepted: bool,
}

/// Where the order's reservation saga stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Allocation {
    /// Reserving: `plan` is written ahead of the reservations so that a restart can compensate.
    InProgress {
        attempt: u32,
        plan: Vec<PlannedLine>,
    },
    /// The sourcing decision is final.
    Done,
}

/// An order: the single writer of its fulfillments' statuses.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    pub request: OrderRequest,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub fulfillments: Vec<Fulfillment>,
    pub backorders: Vec<WaitingLine>,
    pub cancelled: bool,
    pub allocation: Allocation,
    /// Events applied so far; makes the ids of the messages an event causes deterministic.
    pub version: u64,
    /// When the order was first seen delivered or cancelled (milliseconds since the Unix
    /// epoch): its archiving counts from then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
}

/// A command to an order (placing is [`Order::place`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderCommand {
    /// Write the next sourcing plan ahead of reserving it.
    StartAllocation { plan: Vec<PlannedLine> },
    /// Record what the SKU-locations granted and what waits for stock where.
    CompleteAllocation {
        granted: Vec<PlannedLine>,
        backorders: Vec<WaitingLine>,
    },
    /// The warehouse node acknowledged a fulfillment.
    AcceptFulfillment { fulfillment: FulfillmentId },
    /// A warehouse confirmation step.
    Confirm {
        fulfillment: FulfillmentId,
        step: FulfillmentStatus,
    },
    /// Cancel everything not yet shipped.
    Cancel,
    /// A SKU-location allocated stock to this order's backorder.
    FillBackorder {
        sku: SkuId,
        location: LocationId,
        quantity: u64,
    },
}

/// What happened to an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OrderEvent {
    /// The next sourcing plan was written ahead of its reservations.
    AllocationStarted {
        attempt: u32,
        plan: Vec<PlannedLine>,
    },
    /// Sourcing is final: one fulfillment per location, the rest waits for stock.
    Allocated {
        fulfillments: Vec<Fulfillment>,
        backorders: Vec<WaitingLine>,
    },
    /// A warehouse node acknowledged a fulfillment.
    FulfillmentAccepted { fulfillment: FulfillmentId },
    /// A warehouse confirmation moved a fulfillment one step on.
    FulfillmentProgressed {
        fulfillment: FulfillmentId,
        location: LocationId,
        status: FulfillmentStatus,
        lines: Vec<FulfillmentLine>,
    },
    /// The order was cancelled: these open fulfillments and backorders were dropped.
    Cancelled {
        fulfillments: Vec<Fulfillment>,
        withdrawn: Vec<WaitingLine>,
    },
    /// Stock for a backorder arrived: a new fulfillment was released.
    BackorderFilled { fulfillment: Fulfillment },
    /// Stock allocated to a backorder that no longer waits (cancelled order): give it back.
    BackorderReturned {
        sku: SkuId,
        location: LocationId,
        quantity: u64,
    },
}

impl Order {
    /// A newly placed order, about to source its first plan.
    pub fn place(request: OrderRequest, created_at: u64) -> Order {
        Order {
            request,
            created_at,
            fulfillments: Vec::new(),
            backorders: Vec::new(),
            cancelled: false,
            allocation: Allocation::InProgress {
                attempt: 0,
                plan: Vec::new(),
            },
            version: 0,
            closed_at: None,
        }
    }

    /// Whether nothing is left to happen to the order: delivered, or cancelled.
    pub fn is_closed(&self) -> bool {
        matches!(
            self.status(),
            OrderStatus::Delivered | OrderStatus::Cancelled
        )
    }

    /// Records `at` as the time the order closed, the first time it is seen closed.
    pub fn note_closed(&mut self, at: u64) {
        if self.closed_at.is_none() && self.is_closed() {
            self.closed_at = Some(at);
        }
    }

    /// The fulfillment with this id.
    pub fn fulfillment(&self, id: &FulfillmentId) -> Option<&Fulfillment> {
        self.fulfillments.iter().find(|f| &f.id == id)
    }

    fn fulfillment_mut(&mut self, id: &FulfillmentId) -> Option<&mut Fulfillment> {
        self.fulfillments.iter_mut().find(|f| &f.id == id)
    }

    fn active(&self) -> impl Iterator<Item = &Fulfillment> {
        self.fulfillments
            .iter()
            .filter(|f| f.status != FulfillmentStatus::Cancelled)
    }

    fn units<'a>(fs: impl Iterator<Item = &'a Fulfillment>, sku: &SkuId) -> u64 {
        fs.flat_map(|f| &f.lines)
            .filter(|l| &l.sku == sku)
            .map(|l| l.quantity)
            .sum()
    }

    /// Units of `sku` in active (not cancelled) fulfillments, shipped ones included.
    pub fn allocated(&self, sku: &SkuId) -> u64 {
        Self::units(self.active(), sku)
    }

    /// Units of `sku` that have left a warehouse.
    pub fn shipped(&self, sku: &SkuId) -> u64 {
        Self::units(self.active().filter(|f| f.status.has_shipped()), sku)
    }

    /// Units of `sku` still waiting for stock.
    pub fn backordered(&self, sku: &SkuId) -> u64 {
        self.backorders
            .iter()
            .filter(|b| &b.sku == sku)
            .map(|b| b.quantity)
            .sum()
    }

    /// Units of `sku` reserved at `location` and not yet shipped: what that SKU-location must
    /// hold for this order.
    pub fn reserved_at(&self, sku: &SkuId, location: &LocationId) -> u64 {
        let holding = self
            .active()
            .filter(|f| &f.location == location && !f.status.has_shipped());
        Self::units(holding, sku)
    }

    /// The order's status, derived from its fulfillments and backordered quantity.
    pub fn status(&self) -> OrderStatus {
        if matches!(self.allocation, Allocation::InProgress { .. }) {
            return OrderStatus::Received;
        }
        let least_advanced = self.active().map(|f| f.status).min();
        let waiting = self.backorders.iter().any(|b| b.quantity > 0);
        match least_advanced {
            None if self.cancelled => OrderStatus::Cancelled,
            None => OrderStatus::Backordered,
            Some(_) if waiting => OrderStatus::PartiallyAllocated,
            Some(FulfillmentStatus::Released) if self.active().any(|f| !f.accepted) => {
                OrderStatus::Allocated
            }
            Some(status) => status.order_status(),
        }
    }

    /// Decides a command. Refusals change nothing; an empty list means "already done".
    pub fn decide(&self, command: &OrderCommand) -> Result<Vec<OrderEvent>, Error> {
        let event = match command {
            OrderCommand::StartAllocation { plan } => match &self.allocation {
                Allocation::InProgress { attempt, .. } => OrderEvent::AllocationStarted {
                    attempt: attempt + 1,
                    plan: plan.clone(),
                },
                Allocation::Done => return Ok(Vec::new()),
            },
            OrderCommand::CompleteAllocation {
                granted,
                backorders,
            } => {
                if self.allocation == Allocation::Done {
                    return Ok(Vec::new());
                }
                OrderEvent::Allocated {
                    fulfillments: self.new_fulfillments(granted),
                    backorders: backorders.clone(),
                }
            }
            OrderCommand::AcceptFulfillment { fulfillment } => {
                let f = self
                    .fulfillment(fulfillment)
                    .ok_or_else(|| Error::UnknownFulfillment(fulfillment.to_string()))?;
                if f.accepted {
                    return Ok(Vec::new());
                }
                OrderEvent::FulfillmentAccepted {
                    fulfillment: fulfillment.clone(),
                }
            }
            OrderCommand::Confirm { fulfillment, step } => {
                let f = self
                    .fulfillment(fulfillment)
                    .ok_or_else(|| Error::UnknownFulfillment(fulfillment.to_string()))?;
                if f.status == *step {
                    return Ok(Vec::new());
                }
                if f.status.next() != Some(*step) {
                    return Err(Error::InvalidTransition(format!(
                        "fulfillment {fulfillment} is {}, it cannot become {step}",
                        f.status
                    )));
                }
                OrderEvent::FulfillmentProgressed {
                    fulfillment: fulfillment.clone(),
                    location: f.location.clone(),
                    status: *step,
                    lines: f.lines.clone(),
                }
            }
            OrderCommand::Cancel => return self.decide_cancel(),
            OrderCommand::FillBackorder {
                sku,
                location,
                quantity,
            } => return Ok(self.decide_fill(sku, location, *quantity)),
        };
        Ok(vec![event])
    }

    fn decide_cancel(&self) -> Result<Vec<OrderEvent>, Error> {
        if self.cancelled {
            return Ok(Vec::new());
        }
        if let Allocation::InProgress { .. } = self.allocation {
            return Err(Error::InvalidTransition(format!(
                "order {} is still being allocated",
                self.request.id
            )));
        }
        let open: Vec<Fulfillment> = self
            .active()
            .filter(|f| !f.status.has_shipped())
            .cloned()
            .collect();
        if open.is_empty() && self.backorders.is_empty() {
            return Err(Error::InvalidTransition(format!(
                "order {} has shipped completely",
                self.request.id
            )));
        }
        Ok(vec![OrderEvent::Cancelled {
            fulfillments: open,
            withdrawn: self.backorders.clone(),
        }])
    }

    fn decide_fill(&self, sku: &SkuId, location: &LocationId, quantity: u64) -> Vec<OrderEvent> {
        let waiting = self
            .backorders
            .iter()
            .find(|b| &b.sku == sku && &b.location == location)
            .map_or(0, |b| b.quantity);
        let taken = if self.cancelled {
            0
        } else {
            quantity.min(waiting)
        };
        let mut events = Vec::new();
        if taken > 0 {
            let granted = [PlannedLine {
                location: location.clone(),
                sku: sku.clone(),
                quantity: taken,
            }];
            let fulfillment = self.new_fulfillments(&granted).remove(0);
            events.push(OrderEvent::BackorderFilled { fulfillment });
        }
        if quantity > taken {
            events.push(OrderEvent::BackorderReturned {
                sku: sku.clone(),
                location: location.clone(),
                quantity: quantity - taken,
            });
        }
        events
    }

    /// One released fulfillment per location of `granted`, in order of first appearance.
    fn new_fulfillments(&self, granted: &[PlannedLine]) -> Vec<Fulfillment> {
        let mut out: Vec<Fulfillment> = Vec::new();
        for line in granted.iter().filter(|l| l.quantity > 0) {
            let item = FulfillmentLine {
                sku: line.sku.clone(),
                quantity: line.quantity,
            };
            match out.iter_mut().find(|f| f.location == line.location) {
                Some(f) => f.lines.push(item),
                None => {
                    let n = u32::try_from(self.fulfillments.len() + out.len() + 1)
                        .expect("fulfillments per order are bounded by lines and fills");
                    out.push(Fulfillment {
                        id: FulfillmentId::new(&self.request.id, n),
                        location: line.location.clone(),
                        status: FulfillmentStatus::Released,
                        lines: vec![item],
                        accepted: false,
                    });
                }
            }
        }
        out
    }

    /// Applies an event produced by [`Order::decide`] on this state.
    pub fn apply(&mut self, event: &OrderEvent) {
        self.version += 1;
        match event {
            OrderEvent::AllocationStarted { attempt, plan } => {
                self.allocation = Allocation::InProgress {
                    attempt: *attempt,
                    plan: plan.clone(),
                };
            }
            OrderEvent::Allocated {
                fulfillments,
                backorders,
            } => {
                self.fulfillments.extend(fulfillments.iter().cloned());
                self.backorders = backorders.clone();
                self.allocation = Allocation::Done;
            }
            OrderEvent::FulfillmentAccepted { fulfillment } => {
                if let Some(f) = self.fulfillment_mut(fulfillment) {
                    f.accepted = true;
                }
            }
            OrderEvent::FulfillmentProgressed {
                fulfillment,
                status,
                ..
            } => {
                if let Some(f) = self.fulfillment_mut(fulfillment) {
                    f.status = *status;
                    // A confirmation proves the node has the work, even if its ack is late.
                    f.accepted = true;
                }
            }
            OrderEvent::Cancelled { fulfillments, .. } => {
                for cancelled in fulfillments {
                    if let Some(f) = self.fulfillment_mut(&cancelled.id) {
                        f.status = FulfillmentStatus::Cancelled;
                    }
                }
                self.backorders.clear();
                self.cancelled = true;
            }
            OrderEvent::BackorderFilled { fulfillment } => {
                for line in &fulfillment.lines {
                    if let Some(b) = self
                        .backorders
                        .iter_mut()
                        .find(|b| b.sku == line.sku && b.location == fulfillment.location)
                    {
                        b.quantity -= line.quantity;
                    }
                }
                self.backorders.retain(|b| b.quantity > 0);
                self.fulfillments.push(fulfillment.clone());
            }
            OrderEvent::BackorderReturned { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OrderId;

    fn placed(lines: &[(&str, i64)]) -> Order {
        Order::place(OrderRequest::new("o1", "web", lines, "east").unwrap(), 1)
    }

    fn planned(loc: &str, sku: &str, quantity: u64) -> PlannedLine {
        PlannedLine {
            location: LocationId::parse(loc).unwrap(),
            sku: SkuId::parse(sku).unwrap(),
            quantity,
        }
    }

    fn run(order: &mut Order, command: OrderCommand) -> Result<Vec<OrderEvent>, Error> {
        let events = order.decide(&command)?;
        events.iter().for_each(|e| order.apply(e));
        Ok(events)
    }

    fn fid(n: u32) -> FulfillmentId {
        FulfillmentId::new(&OrderId::parse("o1").unwrap(), n)
    }

    fn allocate(order: &mut Order, granted: Vec<PlannedLine>, backorders: Vec<WaitingLine>) {
        let command = OrderCommand::CompleteAllocation {
            granted,
            backorders,
        };
        run(order, command).unwrap();
    }

    #[test]
    fn a_split_order_gets_one_fulfillment_per_location() {
        let mut o = placed(&[("A", 2), ("B", 2)]);
        assert_eq!(o.status(), OrderStatus::Received);
        let granted = vec![planned("east", "A", 2), planned("west", "B", 2)];
        allocate(&mut o, granted, vec![]);
        assert_eq!(o.fulfillments.len(), 2);
        assert_eq!(o.status(), OrderStatus::Allocated);
        for n in [1, 2] {
            let accept = OrderCommand::AcceptFulfillment {
                fulfillment: fid(n),
            };
            run(&mut o, accept).unwrap();
        }
        assert_eq!(o.status(), OrderStatus::Released);
    }

    #[test]
    fn confirmations_follow_the_warehouse_steps_in_order() {
        let mut o = placed(&[("A", 1)]);
        allocate(&mut o, vec![planned("east", "A", 1)], vec![]);
        let confirm = |step| OrderCommand::Confirm {
            fulfillment: fid(1),
            step,
        };
        let err = o.decide(&confirm(FulfillmentStatus::Shipped)).unwrap_err();
        assert!(matches!(err, Error::InvalidTransition(_)), "{err}");
        for step in [
            FulfillmentStatus::Picked,
            FulfillmentStatus::Packed,
            FulfillmentStatus::Shipped,
        ] {
            assert_eq!(run(&mut o, confirm(step)).unwrap().len(), 1);
            assert!(run(&mut o, confirm(step)).unwrap().is_empty(), "idempotent");
        }
        assert_eq!(o.status(), OrderStatus::Shipped);
        assert_eq!(o.shipped(&SkuId::parse("A").unwrap()), 1);
        let cancel = o.decide(&OrderCommand::Cancel).unwrap_err();
        assert!(matches!(cancel, Error::InvalidTransition(_)), "{cancel}");
    }

    #[test]
    fn backorders_fill_into_new_fulfillments_and_cancel_withdraws_them() {
        let mut o = placed(&[("A", 5)]);
        let waiting = WaitingLine {
            sku: SkuId::parse("A").unwrap(),
            location: LocationId::parse("east").unwrap(),
            quantity: 2,
        };
        allocate(&mut o, vec![planned("east", "A", 3)], vec![waiting.clone()]);
        assert_eq!(o.status(), OrderStatus::PartiallyAllocated);
        let fill = |quantity| OrderCommand::FillBackorder {
            sku: waiting.sku.clone(),
            location: waiting.location.clone(),
            quantity,
        };
        run(&mut o, fill(1)).unwrap();
        assert_eq!(o.allocated(&waiting.sku), 4);
        assert_eq!(o.backordered(&waiting.sku), 1);
        let events = run(&mut o, OrderCommand::Cancel).unwrap();
        assert!(
            matches!(&events[0], OrderEvent::Cancelled { fulfillments, withdrawn }
            if fulfillments.len() == 2 && withdrawn.len() == 1)
        );
        assert_eq!(o.status(), OrderStatus::Cancelled);
        assert!(run(&mut o, OrderCommand::Cancel).unwrap().is_empty());
        let late = run(&mut o, fill(1)).unwrap();
        assert!(matches!(
            late[..],
            [OrderEvent::BackorderReturned { quantity: 1, .. }]
        ));
    }
}
