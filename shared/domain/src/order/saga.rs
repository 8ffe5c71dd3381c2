//! The order's reservation saga as a pure step function.
//!
//! The saga (plan → write the plan ahead → reserve → settle → compensate and re-plan, or
//! complete) waits on other actors at every step, so its driver — the runtime's order actor, or
//! the property tests' simulation — does the I/O. What to do next, given where the order stands
//! and what the last action came to, is decided here, once, so that both drivers run the same
//! saga and a restart resumes it the same way.
//!
//! An order placed on a cart hold has exactly one attempt: its plan is what the hold got, each
//! SKU-location converts the held units into the order's reservation, and whatever the hold
//! lacked is backordered rather than sourced anew. A restart repeats those conversions (under
//! the same command ids, so each is done once) instead of releasing them.

use super::{Allocation, Order, PlannedLine, RequestedLine, WaitingLine, MAX_ALLOCATION_ATTEMPTS};
use crate::{HoldId, LocationId};

/// What the driver of an order's reservation saga reports back after doing the last action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaOutcome {
    /// The order's current attempt is written: placed with its first plan, or `StartAllocation`
    /// committed.
    Planned,
    /// A restart (or a retried placement) found the order mid-allocation.
    Interrupted,
    /// What each line of the current attempt's plan was granted, in plan order.
    Reserved(Vec<PlannedLine>),
    /// The lines of the last `Release` action are given back.
    Released,
    /// `CompleteAllocation` is committed.
    Completed,
}

/// What the driver does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SagaAction {
    /// Source a new plan from what the locations can promise now and commit `StartAllocation`
    /// with it.
    Plan,
    /// Reserve each line of `plan` at its SKU-location; with `hold`, convert what that cart
    /// hold keeps there instead (`StockCommand::ConvertHold`).
    Reserve {
        attempt: u32,
        plan: Vec<PlannedLine>,
        hold: Option<HoldId>,
    },
    /// Give `lines` back (`StockCommand::Release`): the partial grants of `attempt`
    /// ([`ReleaseReason::Compensation`]), or after an interruption whatever the attempt's plan
    /// may hold ([`ReleaseReason::Recovery`]).
    Release {
        attempt: u32,
        lines: Vec<PlannedLine>,
        why: ReleaseReason,
    },
    /// Commit `OrderCommand::CompleteAllocation { granted, backorders }`.
    Complete {
        granted: Vec<PlannedLine>,
        backorders: Vec<WaitingLine>,
    },
    /// Nothing left to do.
    Done,
}

/// Why the saga gives units back; drivers derive distinct command ids from it, so that a
/// recovery never collides with the compensation it may be repeating.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReleaseReason {
    /// Someone took stock between planning and reserving: the partial grants go back before
    /// the next plan.
    Compensation,
    /// A restart cannot know which reservations of the interrupted attempt landed: its whole
    /// plan is released (a release never gives back more than the order holds).
    Recovery,
}

/// The next action for `order` given the outcome of the last one; `wait_at` is where unfilled
/// units are backordered.
///
/// An order whose allocation is done is done, whatever the outcome. An order with no plan
/// written yet (attempt 0) plans first, so an order on a cart hold must be written with its
/// first plan (what the hold got) before it is stepped: its attempt 1 is the conversion.
pub fn step(order: &Order, wait_at: &LocationId, outcome: SagaOutcome) -> SagaAction {
    let Allocation::InProgress { attempt, plan } = &order.allocation else {
        return SagaAction::Done;
    };
    let attempt = *attempt;
    let hold = converting(order, attempt);
    match outcome {
        // A completion that did not take (the order is still allocating) has nothing to
        // settle from: the attempt's reservations are redone, as if it had just been written.
        SagaOutcome::Planned | SagaOutcome::Completed => reserve(attempt, plan, hold),
        // The conversions of a hold attempt are repeated (each is done once); any other
        // attempt's reservations are unknown, so its plan is given back and sourced anew.
        SagaOutcome::Interrupted if hold.is_some() => reserve(attempt, plan, hold),
        SagaOutcome::Interrupted if attempt == 0 => SagaAction::Plan,
        SagaOutcome::Interrupted => SagaAction::Release {
            attempt,
            lines: plan.clone(),
            why: ReleaseReason::Recovery,
        },
        SagaOutcome::Reserved(_) if attempt == 0 => SagaAction::Plan,
        SagaOutcome::Reserved(granted) => {
            // What a hold lacked is backordered, never sourced anew: the hold was the order's
            // one attempt.
            let last = if hold.is_some() {
                MAX_ALLOCATION_ATTEMPTS
            } else {
                attempt
            };
            match settle(&order.request.lines, plan, granted, last, wait_at) {
                Settlement::Retry { compensate } => SagaAction::Release {
                    attempt,
                    lines: compensate,
                    why: ReleaseReason::Compensation,
                },
                Settlement::Complete {
                    granted,
                    backorders,
                } => SagaAction::Complete {
                    granted,
                    backorders,
                },
            }
        }
        SagaOutcome::Released => SagaAction::Plan,
    }
}

/// The hold whose units `attempt` converts: an order placed on a hold tries once, with them.
fn converting(order: &Order, attempt: u32) -> Option<&HoldId> {
    order.request.hold.as_ref().filter(|_| attempt == 1)
}

/// Reserves the written attempt's plan; attempt 0 has none yet, so it plans first.
fn reserve(attempt: u32, plan: &[PlannedLine], hold: Option<&HoldId>) -> SagaAction {
    if attempt == 0 {
        return SagaAction::Plan;
    }
    SagaAction::Reserve {
        attempt,
        plan: plan.to_vec(),
        hold: hold.cloned(),
    }
}

/// What the reservation saga does once a plan's reservations have answered.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Settlement {
    /// Someone took stock between planning and reserving: give back `compensate` and re-plan.
    Retry { compensate: Vec<PlannedLine> },
    /// Final: keep `granted`, wait for the rest at the backorder location.
    Complete {
        granted: Vec<PlannedLine>,
        backorders: Vec<WaitingLine>,
    },
}

/// Settles attempt `attempt` (from 1): all planned units granted, or out of attempts, completes;
/// otherwise the partial grants are compensated and the saga tries the next plan.
fn settle(
    lines: &[RequestedLine],
    planned: &[PlannedLine],
    granted: Vec<PlannedLine>,
    attempt: u32,
    wait_at: &LocationId,
) -> Settlement {
    let granted: Vec<PlannedLine> = granted.into_iter().filter(|g| g.quantity > 0).collect();
    let complete = planned.iter().all(|p| {
        granted
            .iter()
            .any(|g| g.location == p.location && g.sku == p.sku && g.quantity == p.quantity)
    });
    if !complete && attempt < MAX_ALLOCATION_ATTEMPTS {
        return Settlement::Retry {
            compensate: granted,
        };
    }
    let backorders = lines
        .iter()
        .filter_map(|line| {
            let got: u64 = granted
                .iter()
                .filter(|g| g.sku == line.sku)
                .map(|g| g.quantity)
                .sum();
            (got < line.quantity).then(|| WaitingLine {
                sku: line.sku.clone(),
                location: wait_at.clone(),
                quantity: line.quantity - got,
            })
        })
        .collect();
    Settlement::Complete {
        granted,
        backorders,
    }
}

#[cfg(test)]
mod tests;
