use super::{BackorderQueue, LedgerEntry, Movement, Position};
use crate::{DocumentId, Error, FulfillmentId, HoldId, OrderId};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The state of one SKU at one location: its position, who holds its reservations, and the
/// queue of backorders waiting for stock.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkuLocation {
    pub position: Position,
    /// Units reserved per order; they sum to `position.allocated`.
    pub reservations: BTreeMap<OrderId, u64>,
    /// Units kept aside per cart hold; they sum to `position.held`.
    #[serde(default)]
    pub holds: BTreeMap<HoldId, u64>,
    /// Orders waiting for stock, in arrival order.
    pub backorders: BackorderQueue,
    /// The sequence number the next ledger entry gets.
    pub next_seq: u64,
    /// The ticket the next new backorder gets.
    pub next_ticket: u64,
}

/// A command to a SKU-location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StockCommand {
    /// Goods arrived: add to `on_hand`.
    Receive { receipt: DocumentId, quantity: u64 },
    /// A correction of `on_hand` (cycle count, damage, …).
    Adjust {
        adjustment: DocumentId,
        delta: i64,
        reason: String,
    },
    /// Reserve up to `quantity` for `order`; what is granted is whatever is available.
    Reserve { order: OrderId, quantity: u64 },
    /// Give back up to `quantity` of what `order` holds here.
    Release {
        order: OrderId,
        quantity: u64,
        reason: String,
    },
    /// Units of `order` left the building: out of `on_hand` and `allocated` together.
    Ship {
        order: OrderId,
        fulfillment: FulfillmentId,
        quantity: u64,
    },
    /// Wait here for `quantity` more units (filled at once as far as stock allows).
    Backorder { order: OrderId, quantity: u64 },
    /// Stop waiting: drop `order`'s backorder here.
    WithdrawBackorder { order: OrderId },
    /// Keep up to `quantity` aside for `hold`; what is granted is whatever is available.
    Hold { hold: HoldId, quantity: u64 },
    /// Give back up to `quantity` of what `hold` keeps here.
    ReleaseHold {
        hold: HoldId,
        quantity: u64,
        reason: String,
    },
    /// Turn up to `quantity` of what `hold` keeps here into `order`'s reservation.
    ConvertHold {
        hold: HoldId,
        order: OrderId,
        quantity: u64,
    },
}

/// What happened at a SKU-location. Applying the events of a decision yields the new state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum StockEvent {
    /// Goods arrived: `on_hand` grew.
    Received { receipt: DocumentId, quantity: u64 },
    /// `on_hand` was corrected by `delta`.
    Adjusted {
        adjustment: DocumentId,
        delta: i64,
        reason: String,
    },
    /// Units were reserved for an order (part of `allocated`).
    Reserved { order: OrderId, quantity: u64 },
    /// An order's reserved units were given back.
    Released {
        order: OrderId,
        quantity: u64,
        reason: String,
    },
    /// Reserved units left the building: out of `on_hand` and `allocated` together.
    Shipped {
        order: OrderId,
        fulfillment: FulfillmentId,
        quantity: u64,
    },
    /// An order joined (or grew its place in) the backorder queue.
    BackorderQueued { order: OrderId, quantity: u64 },
    /// Arriving stock was reserved for a waiting order (its backorder shrank).
    BackorderAllocated { order: OrderId, quantity: u64 },
    /// An order left the backorder queue (cancelled).
    BackorderWithdrawn { order: OrderId, quantity: u64 },
    /// Units were kept aside for a hold (part of `held`).
    Held { hold: HoldId, quantity: u64 },
    /// A hold's units were given back.
    HoldReleased {
        hold: HoldId,
        quantity: u64,
        reason: String,
    },
    /// A hold's units became an order's reservation.
    HoldConverted {
        hold: HoldId,
        order: OrderId,
        quantity: u64,
    },
}

impl SkuLocation {
    /// Units reserved here for `order`.
    pub fn reserved_for(&self, order: &OrderId) -> u64 {
        self.reservations.get(order).copied().unwrap_or(0)
    }

    /// Units kept here for `hold`.
    pub fn held_for(&self, hold: &HoldId) -> u64 {
        self.holds.get(hold).copied().unwrap_or(0)
    }

    /// Decides a command against the current state. Refusals change nothing.
    pub fn decide(&self, command: &StockCommand) -> Result<Vec<StockEvent>, Error> {
        let mut events = Vec::new();
        match command {
            StockCommand::Receive { receipt, quantity } => {
                events.push(StockEvent::Received {
                    receipt: receipt.clone(),
                    quantity: *quantity,
                });
                self.fill_backorders(self.available_after(*quantity, 0), None, &mut events);
            }
            StockCommand::Adjust {
                adjustment,
                delta,
                reason,
            } => {
                let on_hand = i128::from(self.position.on_hand) + i128::from(*delta);
                let (allocated, held) = (self.position.allocated, self.position.held);
                if on_hand < i128::from(allocated) + i128::from(held) {
                    return Err(Error::InsufficientStock(format!(
                        "adjusting by {delta} would leave {on_hand} on hand with {allocated} \
                         allocated and {held} held"
                    )));
                }
                events.push(StockEvent::Adjusted {
                    adjustment: adjustment.clone(),
                    delta: *delta,
                    reason: reason.clone(),
                });
                if *delta > 0 {
                    let available = self.available_after(delta.unsigned_abs(), 0);
                    self.fill_backorders(available, None, &mut events);
                }
            }
            StockCommand::Reserve { order, quantity } => {
                let granted = (*quantity).min(self.position.available());
                if granted > 0 {
                    events.push(StockEvent::Reserved {
                        order: order.clone(),
                        quantity: granted,
                    });
                }
            }
            StockCommand::Release {
                order,
                quantity,
                reason,
            } => {
                let released = (*quantity).min(self.reserved_for(order));
                if released > 0 {
                    events.push(StockEvent::Released {
                        order: order.clone(),
                        quantity: released,
                        reason: reason.clone(),
                    });
                    let available = self.available_after(0, released);
                    self.fill_backorders(available, None, &mut events);
                }
            }
            StockCommand::Ship {
                order,
                fulfillment,
                quantity,
            } => {
                let held = self.reserved_for(order);
                if *quantity > held {
                    return Err(Error::InvalidTransition(format!(
                        "cannot ship {quantity} for order {order}: {held} reserved here"
                    )));
                }
                events.push(StockEvent::Shipped {
                    order: order.clone(),
                    fulfillment: fulfillment.clone(),
                    quantity: *quantity,
                });
            }
            StockCommand::Backorder { order, quantity } => {
                events.push(StockEvent::BackorderQueued {
                    order: order.clone(),
                    quantity: *quantity,
                });
                let joining = Some((order, *quantity));
                self.fill_backorders(self.position.available(), joining, &mut events);
            }
            StockCommand::WithdrawBackorder { order } => {
                if let Some(b) = self.backorders.get(order) {
                    events.push(StockEvent::BackorderWithdrawn {
                        order: order.clone(),
                        quantity: b.quantity,
                    });
                }
            }
            StockCommand::Hold { hold, quantity } => {
                let granted = (*quantity).min(self.position.available());
                if granted > 0 {
                    events.push(StockEvent::Held {
                        hold: hold.clone(),
                        quantity: granted,
                    });
                }
            }
            StockCommand::ReleaseHold {
                hold,
                quantity,
                reason,
            } => {
                let released = (*quantity).min(self.held_for(hold));
                if released > 0 {
                    events.push(StockEvent::HoldReleased {
                        hold: hold.clone(),
                        quantity: released,
                        reason: reason.clone(),
                    });
                    let available = self.available_after(0, released);
                    self.fill_backorders(available, None, &mut events);
                }
            }
            StockCommand::ConvertHold {
                hold,
                order,
                quantity,
            } => {
                let converted = (*quantity).min(self.held_for(hold));
                if converted > 0 {
                    events.push(StockEvent::HoldConverted {
                        hold: hold.clone(),
                        order: order.clone(),
                        quantity: converted,
                    });
                }
            }
        }
        Ok(events)
    }

    /// What is available to promise once `arriving` units are added to `on_hand` and `freed`
    /// units leave `allocated` or `held`: safety stock stays back for backorders too.
    fn available_after(&self, arriving: u64, freed: u64) -> u64 {
        let p = &self.position;
        (p.on_hand + arriving)
            .saturating_sub((p.allocated + p.held).saturating_sub(freed))
            .saturating_sub(p.safety_stock)
    }

    /// Hands `available` units to the waiting backorders, oldest first; `joining` is a
    /// backorder being queued by this very decision (added to its order's entry, or last).
    fn fill_backorders(
        &self,
        mut available: u64,
        joining: Option<(&OrderId, u64)>,
        events: &mut Vec<StockEvent>,
    ) {
        // The common case in a promotion: nothing to hand out, and a long queue not to scan.
        if available == 0 {
            return;
        }
        let extra = |order: &OrderId| match joining {
            Some((o, q)) if o == order => q,
            _ => 0,
        };
        let queued = self
            .backorders
            .iter()
            .map(|b| (&b.order, b.quantity + extra(&b.order)));
        let new = joining.filter(|(o, _)| !self.backorders.contains(o));
        for (order, wanted) in queued.chain(new) {
            if available == 0 {
                break;
            }
            let quantity = wanted.min(available);
            available -= quantity;
            events.push(StockEvent::BackorderAllocated {
                order: order.clone(),
                quantity,
            });
        }
    }

    /// Applies one event and returns the ledger entry it makes, if it moves a bucket.
    ///
    /// Events come from [`SkuLocation::decide`] on this very state, so the arithmetic cannot
    /// underflow; `at` is the command's time in milliseconds since the Unix epoch.
    pub fn apply(&mut self, event: &StockEvent, at: u64) -> Option<LedgerEntry> {
        let p = &mut self.position;
        let moved = match event {
            StockEvent::Received { receipt, quantity } => {
                p.on_hand += quantity;
                Move::new(Movement::Receipt, signed(*quantity), "receipt", receipt)
                    .on_hand(signed(*quantity))
            }
            StockEvent::Adjusted {
                adjustment,
                delta,
                reason,
            } => {
                p.on_hand = p.on_hand.checked_add_signed(*delta).expect("decided");
                Move::new(Movement::Adjustment, *delta, reason, adjustment).on_hand(*delta)
            }
            StockEvent::Reserved { order, quantity } => {
                p.allocated += quantity;
                *self.reservations.entry(order.clone()).or_default() += quantity;
                let q = signed(*quantity);
                Move::new(Movement::Reservation, q, "reservation", order)
                    .allocated(q)
                    .order(order)
            }
            StockEvent::BackorderAllocated { order, quantity } => {
                p.allocated += quantity;
                *self.reservations.entry(order.clone()).or_default() += quantity;
                self.take_from_backorder(order, *quantity);
                let q = signed(*quantity);
                Move::new(Movement::BackorderAllocation, q, "backorder filled", order)
                    .allocated(q)
                    .order(order)
            }
            StockEvent::Released {
                order,
                quantity,
                reason,
            } => {
                p.allocated -= quantity;
                self.unreserve(order, *quantity);
                let q = signed(*quantity);
                Move::new(Movement::Release, q, reason, order)
                    .allocated(-q)
                    .order(order)
            }
            StockEvent::Shipped {
                order,
                fulfillment,
                quantity,
            } => {
                p.on_hand -= quantity;
                p.allocated -= quantity;
                self.unreserve(order, *quantity);
                let q = signed(*quantity);
                Move::new(Movement::Shipment, q, "shipment", fulfillment)
                    .on_hand(-q)
                    .allocated(-q)
                    .order(order)
            }
            StockEvent::Held { hold, quantity } => {
                p.held += quantity;
                *self.holds.entry(hold.clone()).or_default() += quantity;
                let q = signed(*quantity);
                Move::new(Movement::Hold, q, "hold", hold).held(q)
            }
            StockEvent::HoldReleased {
                hold,
                quantity,
                reason,
            } => {
                p.held -= quantity;
                self.unhold(hold, *quantity);
                let q = signed(*quantity);
                Move::new(Movement::HoldRelease, q, reason, hold).held(-q)
            }
            StockEvent::HoldConverted {
                hold,
                order,
                quantity,
            } => {
                p.held -= quantity;
                p.allocated += quantity;
                self.unhold(hold, *quantity);
                *self.reservations.entry(order.clone()).or_default() += quantity;
                let q = signed(*quantity);
                Move::new(Movement::HoldConversion, q, "hold converted", hold)
                    .held(-q)
                    .allocated(q)
                    .order(order)
            }
            StockEvent::BackorderQueued { order, quantity } => {
                if self.backorders.add(order, *quantity, self.next_ticket) {
                    self.next_ticket += 1;
                }
                return None;
            }
            StockEvent::BackorderWithdrawn { order, .. } => {
                self.backorders.remove(order);
                return None;
            }
        };
        let entry = moved.entry(self.next_seq, at);
        self.next_seq += 1;
        Some(entry)
    }

    fn unhold(&mut self, hold: &HoldId, quantity: u64) {
        if let Some(held) = self.holds.get_mut(hold) {
            *held -= quantity;
            if *held == 0 {
                self.holds.remove(hold);
            }
        }
    }

    fn unreserve(&mut self, order: &OrderId, quantity: u64) {
        if let Some(held) = self.reservations.get_mut(order) {
            *held -= quantity;
            if *held == 0 {
                self.reservations.remove(order);
            }
        }
    }

    fn take_from_backorder(&mut self, order: &OrderId, quantity: u64) {
        self.backorders.take(order, quantity);
    }
}

/// One bucket movement, built up before it becomes a ledger entry.
struct Move {
    movement: Movement,
    quantity: i64,
    on_hand: i64,
    allocated: i64,
    held: i64,
    reason: String,
    document: String,
    order: Option<OrderId>,
}

impl Move {
    fn new(movement: Movement, quantity: i64, reason: &str, document: &impl ToString) -> Self {
        Move {
            movement,
            quantity,
            on_hand: 0,
            allocated: 0,
            held: 0,
            reason: reason.to_owned(),
            document: document.to_string(),
            order: None,
        }
    }

    fn on_hand(self, delta: i64) -> Self {
        Move {
            on_hand: delta,
            ..self
        }
    }

    fn allocated(self, delta: i64) -> Self {
        Move {
            allocated: delta,
            ..self
        }
    }

    fn held(self, delta: i64) -> Self {
        Move {
            held: delta,
            ..self
        }
    }

    fn order(self, order: &OrderId) -> Self {
        Move {
            order: Some(order.clone()),
            ..self
        }
    }

    fn entry(self, seq: u64, at: u64) -> LedgerEntry {
        LedgerEntry {
            seq,
            movement: self.movement,
            quantity: self.quantity,
            on_hand_delta: self.on_hand,
            allocated_delta: self.allocated,
            held_delta: self.held,
            reason: self.reason,
            document: self.document,
            order: self.order,
            at,
        }
    }
}

/// Quantities are bounded far below `i64::MAX` by the command rules.
fn signed(quantity: u64) -> i64 {
    i64::try_from(quantity).expect("quantities are bounded by MAX_QUANTITY")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inventory::{fold, Backorder};

    fn order(id: &str) -> OrderId {
        OrderId::parse(id).unwrap()
    }

    fn run(state: &mut SkuLocation, command: StockCommand) -> Result<Vec<LedgerEntry>, Error> {
        let events = state.decide(&command)?;
        Ok(events.iter().filter_map(|e| state.apply(e, 7)).collect())
    }

    fn receive(state: &mut SkuLocation, receipt: &str, quantity: u64) {
        let receipt = DocumentId::parse(receipt).unwrap();
        run(state, StockCommand::Receive { receipt, quantity }).unwrap();
    }

    #[test]
    fn reservations_never_exceed_what_is_available() {
        let mut s = SkuLocation::default();
        receive(&mut s, "r1", 5);
        s.position.safety_stock = 1;
        let reserve = |o: &str, q| StockCommand::Reserve {
            order: order(o),
            quantity: q,
        };
        run(&mut s, reserve("a", 3)).unwrap();
        run(&mut s, reserve("b", 3)).unwrap();
        assert_eq!(s.reserved_for(&order("a")), 3);
        assert_eq!(s.reserved_for(&order("b")), 1, "safety stock is kept back");
        assert!(run(&mut s, reserve("c", 1)).unwrap().is_empty());
        assert_eq!(s.position.allocated, 4);
    }

    #[test]
    fn stock_arriving_fills_backorders_first_come_first_served() {
        let mut s = SkuLocation::default();
        for (o, q) in [("a", 2), ("b", 3)] {
            let cmd = StockCommand::Backorder {
                order: order(o),
                quantity: q,
            };
            run(&mut s, cmd).unwrap();
        }
        receive(&mut s, "r1", 4);
        assert_eq!(s.reserved_for(&order("a")), 2);
        assert_eq!(s.reserved_for(&order("b")), 2);
        assert_eq!(
            s.backorders,
            BackorderQueue::from_iter([Backorder {
                order: order("b"),
                quantity: 1,
                ticket: 1,
            }])
        );
        assert_eq!(s.position.available(), 0);
    }

    #[test]
    fn adjustments_cannot_cut_into_allocated_stock() {
        let mut s = SkuLocation::default();
        receive(&mut s, "r1", 5);
        let reserve = StockCommand::Reserve {
            order: order("a"),
            quantity: 4,
        };
        run(&mut s, reserve).unwrap();
        let adjust = |delta| StockCommand::Adjust {
            adjustment: DocumentId::parse("adj").unwrap(),
            delta,
            reason: "count".into(),
        };
        let before = s.clone();
        let err = run(&mut s, adjust(-2)).unwrap_err();
        assert!(matches!(err, Error::InsufficientStock(_)), "{err}");
        assert_eq!(s, before, "a refusal changes nothing");
        run(&mut s, adjust(-1)).unwrap();
        assert_eq!(s.position.on_hand, 4);
    }

    #[test]
    fn shipping_takes_units_out_of_on_hand_and_allocated_together() {
        let mut s = SkuLocation::default();
        let (a, f) = (order("a"), FulfillmentId::new(&order("a"), 1));
        let receipt = DocumentId::parse("r1").unwrap();
        let mut entries = run(
            &mut s,
            StockCommand::Receive {
                receipt,
                quantity: 5,
            },
        )
        .unwrap();
        let reserve = StockCommand::Reserve {
            order: a.clone(),
            quantity: 3,
        };
        entries.extend(run(&mut s, reserve).unwrap());
        let ship = |quantity| StockCommand::Ship {
            order: a.clone(),
            fulfillment: f.clone(),
            quantity,
        };
        assert!(
            run(&mut s, ship(4)).is_err(),
            "cannot ship more than reserved"
        );
        entries.extend(run(&mut s, ship(3)).unwrap());
        assert_eq!((s.position.on_hand, s.position.allocated), (2, 0));
        assert!(s.reservations.is_empty());
        assert!(fold(&entries).matches(&s.position));
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [0, 1, 2], "the ledger has no gaps");
    }
}
