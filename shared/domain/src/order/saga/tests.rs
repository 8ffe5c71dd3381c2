use super::*;
use crate::order::{OrderCommand, OrderRequest, RequestedLine};
use crate::SkuId;

fn loc(id: &str) -> LocationId {
    LocationId::parse(id).unwrap()
}

fn line(location: &str, sku: &str, quantity: u64) -> PlannedLine {
    PlannedLine {
        location: loc(location),
        sku: SkuId::parse(sku).unwrap(),
        quantity,
    }
}

fn waiting(sku: &str, location: &str, quantity: u64) -> WaitingLine {
    WaitingLine {
        sku: SkuId::parse(sku).unwrap(),
        location: loc(location),
        quantity,
    }
}

fn order(lines: &[(&str, i64)], hold: Option<&str>) -> Order {
    let request = OrderRequest::new("o1", "web", lines, "east").unwrap();
    let request = match hold {
        Some(h) => request.on_hold(h).unwrap(),
        None => request,
    };
    Order::place(request, 1)
}

fn run(order: &mut Order, command: OrderCommand) {
    for event in order.decide(&command).unwrap() {
        order.apply(&event);
    }
}

/// Commits the next plan, as a driver does for `SagaAction::Plan`.
fn start(order: &mut Order, plan: Vec<PlannedLine>) {
    run(order, OrderCommand::StartAllocation { plan });
}

/// Commits a completion, as a driver does for `SagaAction::Complete`.
fn complete(order: &mut Order, action: SagaAction) {
    let SagaAction::Complete {
        granted,
        backorders,
    } = action
    else {
        panic!("expected a completion, got {action:?}");
    };
    run(
        order,
        OrderCommand::CompleteAllocation {
            granted,
            backorders,
        },
    );
}

#[test]
fn a_short_grant_is_compensated_then_the_next_plan_completes() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 3)], None);
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Interrupted),
        SagaAction::Plan,
        "nothing is planned yet"
    );
    let first = vec![line("east", "A", 3)];
    start(&mut o, first.clone());
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Planned),
        SagaAction::Reserve {
            attempt: 1,
            plan: first,
            hold: None
        }
    );
    let short = vec![line("east", "A", 2)];
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Reserved(short.clone())),
        SagaAction::Release {
            attempt: 1,
            lines: short,
            why: ReleaseReason::Compensation
        }
    );
    assert_eq!(step(&o, &wait_at, SagaOutcome::Released), SagaAction::Plan);
    let second = vec![line("west", "A", 3)];
    start(&mut o, second.clone());
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Planned),
        SagaAction::Reserve {
            attempt: 2,
            plan: second.clone(),
            hold: None
        }
    );
    let done = step(&o, &wait_at, SagaOutcome::Reserved(second.clone()));
    assert_eq!(
        done,
        SagaAction::Complete {
            granted: second,
            backorders: vec![]
        }
    );
    complete(&mut o, done);
    assert_eq!(step(&o, &wait_at, SagaOutcome::Completed), SagaAction::Done);
    assert_eq!(o.allocated(&SkuId::parse("A").unwrap()), 3);
}

#[test]
fn the_last_attempt_keeps_what_it_got_and_backorders_the_rest() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 3)], None);
    for _ in 0..MAX_ALLOCATION_ATTEMPTS {
        start(&mut o, vec![line("west", "A", 3)]);
    }
    let short = vec![line("west", "A", 1), line("east", "A", 0)];
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Reserved(short)),
        SagaAction::Complete {
            granted: vec![line("west", "A", 1)],
            backorders: vec![waiting("A", "east", 2)]
        }
    );
}

#[test]
fn a_hold_order_converts_once_and_backorders_what_the_hold_lacked() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 3), ("B", 1)], Some("h1"));
    // Placed with its first plan: what the hold got (nothing of B).
    let held = vec![line("west", "A", 2)];
    start(&mut o, held.clone());
    let hold = Some(crate::HoldId::parse("h1").unwrap());
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Planned),
        SagaAction::Reserve {
            attempt: 1,
            plan: held.clone(),
            hold: hold.clone()
        }
    );
    // The hold lost a unit (swept, say): still no second attempt.
    let converted = vec![line("west", "A", 1)];
    let done = step(&o, &wait_at, SagaOutcome::Reserved(converted.clone()));
    assert_eq!(
        done,
        SagaAction::Complete {
            granted: converted,
            backorders: vec![waiting("A", "east", 2), waiting("B", "east", 1)]
        }
    );
    complete(&mut o, done);
    assert_eq!(step(&o, &wait_at, SagaOutcome::Completed), SagaAction::Done);
}

#[test]
fn an_interrupted_attempt_releases_its_plan_then_plans_again() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 2), ("B", 1)], None);
    let plan = vec![line("east", "A", 2), line("west", "B", 1)];
    start(&mut o, plan.clone());
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Interrupted),
        SagaAction::Release {
            attempt: 1,
            lines: plan,
            why: ReleaseReason::Recovery
        }
    );
    assert_eq!(step(&o, &wait_at, SagaOutcome::Released), SagaAction::Plan);
    start(&mut o, vec![line("east", "A", 2)]);
    assert!(matches!(
        step(&o, &wait_at, SagaOutcome::Planned),
        SagaAction::Reserve {
            attempt: 2,
            hold: None,
            ..
        }
    ));
}

#[test]
fn an_interrupted_hold_attempt_repeats_its_conversions() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 2)], Some("h1"));
    let held = vec![line("west", "A", 2)];
    start(&mut o, held.clone());
    let again = SagaAction::Reserve {
        attempt: 1,
        plan: held,
        hold: Some(crate::HoldId::parse("h1").unwrap()),
    };
    assert_eq!(step(&o, &wait_at, SagaOutcome::Interrupted), again);
    assert_eq!(step(&o, &wait_at, SagaOutcome::Planned), again);
}

#[test]
fn a_completion_that_did_not_take_reserves_again() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 1)], None);
    let plan = vec![line("east", "A", 1)];
    start(&mut o, plan.clone());
    assert_eq!(
        step(&o, &wait_at, SagaOutcome::Completed),
        SagaAction::Reserve {
            attempt: 1,
            plan,
            hold: None
        }
    );
}

#[test]
fn done_is_done_whatever_the_outcome() {
    let wait_at = loc("east");
    let mut o = order(&[("A", 1)], Some("h1"));
    start(&mut o, vec![line("east", "A", 1)]);
    run(
        &mut o,
        OrderCommand::CompleteAllocation {
            granted: vec![line("east", "A", 1)],
            backorders: vec![],
        },
    );
    for outcome in [
        SagaOutcome::Planned,
        SagaOutcome::Interrupted,
        SagaOutcome::Reserved(vec![line("east", "A", 1)]),
        SagaOutcome::Released,
        SagaOutcome::Completed,
    ] {
        assert_eq!(step(&o, &wait_at, outcome), SagaAction::Done);
    }
}

#[test]
fn a_short_grant_is_compensated_until_the_last_attempt() {
    let planned = vec![PlannedLine {
        location: LocationId::parse("l1").unwrap(),
        sku: SkuId::parse("A").unwrap(),
        quantity: 3,
    }];
    let short = vec![PlannedLine {
        quantity: 2,
        ..planned[0].clone()
    }];
    let lines = [RequestedLine {
        sku: SkuId::parse("A").unwrap(),
        quantity: 3,
    }];
    let wait_at = LocationId::parse("l1").unwrap();
    let first = settle(&lines, &planned, short.clone(), 1, &wait_at);
    assert_eq!(
        first,
        Settlement::Retry {
            compensate: short.clone()
        }
    );
    let last = settle(
        &lines,
        &planned,
        short.clone(),
        MAX_ALLOCATION_ATTEMPTS,
        &wait_at,
    );
    let Settlement::Complete {
        granted,
        backorders,
    } = last
    else {
        panic!("the last attempt completes");
    };
    assert_eq!(granted, short);
    assert_eq!(backorders[0].quantity, 1);
    let full = settle(&lines, &planned, planned.clone(), 1, &wait_at);
    assert!(matches!(full, Settlement::Complete { backorders, .. } if backorders.is_empty()));
}
