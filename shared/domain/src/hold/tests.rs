use super::*;
use crate::effects::{of_hold_event, Effect};
use crate::inventory::StockCommand;
use crate::{LocationId, SkuId};

fn request(ttl: i64) -> HoldRequest {
    HoldRequest::new("h1", "web", &[("A", 2), ("B", 1)], "east", ttl).unwrap()
}

fn line(sku: &str, quantity: u64) -> PlannedLine {
    PlannedLine {
        location: LocationId::parse("L1").unwrap(),
        sku: SkuId::parse(sku).unwrap(),
        quantity,
    }
}

fn run(hold: &mut Hold, command: HoldCommand) -> Result<Vec<HoldEvent>, Error> {
    let events = hold.decide(&command)?;
    for e in &events {
        hold.apply(e);
    }
    Ok(events)
}

/// A hold placed at 1000 ms for 60 s, granted 2 A and 0 B.
fn active() -> Hold {
    let mut hold = Hold::default();
    let plan = vec![line("A", 2), line("B", 1)];
    let place = HoldCommand::Place {
        request: request(60),
        plan,
        at: 1_000,
    };
    run(&mut hold, place).unwrap();
    let activate = HoldCommand::Activate {
        granted: vec![line("A", 2), line("B", 0)],
    };
    run(&mut hold, activate).unwrap();
    hold
}

/// A hold placed at 0 ms for 60 s with a plan of 2 A, not yet activated.
fn placing() -> Hold {
    let mut hold = Hold::default();
    let place = HoldCommand::Place {
        request: request(60),
        plan: vec![line("A", 2)],
        at: 0,
    };
    run(&mut hold, place).unwrap();
    hold
}

fn convert(order: &str, channel: &str, lines: &[(&str, u64)]) -> HoldCommand {
    HoldCommand::Convert {
        order: OrderId::parse(order).unwrap(),
        channel: ChannelId::parse(channel).unwrap(),
        lines: lines
            .iter()
            .map(|(sku, quantity)| RequestedLine {
                sku: SkuId::parse(sku).unwrap(),
                quantity: *quantity,
            })
            .collect(),
    }
}

#[test]
fn ttl_must_be_within_a_day() {
    for bad in [0, -1, 86_401] {
        let err = HoldRequest::new("h", "web", &[("A", 1)], "e", bad).unwrap_err();
        assert!(matches!(err, Error::Malformed(_)), "{bad}: {err}");
    }
    assert!(HoldRequest::new("h", "web", &[("A", 1)], "e", 86_400).is_ok());
    let err = HoldRequest::new("h 1", "web", &[("A", 1)], "e", 5).unwrap_err();
    assert!(matches!(err, Error::InvalidId { .. }), "{err}");
}

#[test]
fn an_active_hold_expires_once_its_time_is_up_and_gives_back_what_it_got() {
    let mut hold = active();
    assert_eq!(hold.expires_at, 61_000);
    assert_eq!(hold.timers(), vec![(61_000, EXPIRY_TIMER)]);
    assert!(run(&mut hold, HoldCommand::Expire { at: 60_999 })
        .unwrap()
        .is_empty());
    let events = run(&mut hold, HoldCommand::Expire { at: 61_000 }).unwrap();
    assert_eq!(hold.status, HoldStatus::Expired);
    assert!(hold.timers().is_empty(), "the timer is cancelled");
    let effects: Vec<Effect> = events
        .iter()
        .flat_map(|e| of_hold_event(&HoldId::parse("h1").unwrap(), e))
        .collect();
    assert_eq!(effects.len(), 1, "only the granted line goes back");
    assert!(matches!(
        &effects[0],
        Effect::Stock {
            command: StockCommand::ReleaseHold { quantity: 2, .. },
            ..
        }
    ));
    // Exactly once: a second firing and a release change nothing.
    assert!(run(&mut hold, HoldCommand::Expire { at: 99_000 })
        .unwrap()
        .is_empty());
    assert!(run(&mut hold, HoldCommand::Release).unwrap().is_empty());
}

#[test]
fn placing_again_with_the_same_request_is_a_no_op_and_another_is_a_conflict() {
    let mut hold = active();
    let same = HoldCommand::Place {
        request: request(60),
        plan: Vec::new(),
        at: 5_000,
    };
    assert!(run(&mut hold, same).unwrap().is_empty());
    assert_eq!(hold.expires_at, 61_000, "a retry does not extend the hold");
    let other = HoldCommand::Place {
        request: request(30),
        plan: Vec::new(),
        at: 5_000,
    };
    let err = run(&mut hold, other).unwrap_err();
    assert!(matches!(err, Error::Conflict(_)), "{err}");
}

#[test]
fn conversion_checks_channel_and_lines_and_is_idempotent_for_its_order() {
    let mut hold = active();
    let before = hold.clone();
    assert!(matches!(
        run(&mut hold, convert("o1", "shop", &[("A", 2), ("B", 1)])),
        Err(Error::HoldMismatch(_))
    ));
    assert!(matches!(
        run(&mut hold, convert("o1", "web", &[("A", 2)])),
        Err(Error::HoldMismatch(_))
    ));
    assert_eq!(hold, before, "refusals change nothing");
    run(&mut hold, convert("o1", "web", &[("B", 1), ("A", 2)])).unwrap();
    assert_eq!(hold.status, HoldStatus::Converted);
    assert_eq!(
        hold.timers(),
        vec![(61_000, EXPIRY_TIMER)],
        "kept, to sweep what the order does not take"
    );
    let again = run(&mut hold, convert("o1", "web", &[("A", 2), ("B", 1)])).unwrap();
    assert!(
        again.is_empty(),
        "the same order again is answered as before"
    );
    assert!(matches!(
        run(&mut hold, convert("o2", "web", &[("A", 2), ("B", 1)])),
        Err(Error::HoldExpired(_))
    ));
    assert!(matches!(
        run(&mut hold, HoldCommand::Release),
        Err(Error::InvalidTransition(_))
    ));
}

#[test]
fn an_ended_hold_cannot_be_converted_and_late_grants_go_straight_back() {
    let mut hold = placing();
    let ended = run(&mut hold, HoldCommand::Release).unwrap();
    assert_eq!(
        ended,
        vec![HoldEvent::Ended {
            status: HoldStatus::Released,
            returned: vec![line("A", 2)],
        }],
        "a hold released while placed gives back its whole plan"
    );
    let late = HoldCommand::Activate {
        granted: vec![line("A", 1)],
    };
    let events = run(&mut hold, late).unwrap();
    assert_eq!(
        events,
        vec![HoldEvent::GrantsReturned {
            granted: vec![line("A", 1)]
        }]
    );
    assert_eq!(hold.status, HoldStatus::Released);
    let err = run(&mut hold, convert("o1", "web", &[("A", 2), ("B", 1)])).unwrap_err();
    assert!(matches!(err, Error::HoldExpired(_)), "{err}");
}

#[test]
fn commands_to_a_hold_never_placed_are_unknown_hold() {
    let mut hold = Hold::default();
    for command in [
        HoldCommand::Release,
        HoldCommand::Expire { at: 1 },
        convert("o1", "web", &[("A", 2)]),
    ] {
        let err = run(&mut hold, command).unwrap_err();
        assert!(matches!(err, Error::UnknownHold(_)), "{err}");
    }
}

#[test]
fn a_converted_hold_gives_back_at_expiry_whatever_its_order_did_not_take() {
    let mut hold = active();
    run(&mut hold, convert("o1", "web", &[("A", 2), ("B", 1)])).unwrap();
    let events = run(&mut hold, HoldCommand::Expire { at: 61_000 }).unwrap();
    assert_eq!(
        events,
        vec![HoldEvent::Swept {
            returned: vec![line("A", 2)]
        }]
    );
    assert_eq!(hold.status, HoldStatus::Converted, "still the order's");
    assert!(hold.timers().is_empty());
    assert!(run(&mut hold, HoldCommand::Expire { at: 70_000 })
        .unwrap()
        .is_empty());
}

#[test]
fn a_hold_that_ended_while_placed_gives_its_plan_back_once_more_after_its_expiry() {
    let mut hold = placing();
    run(&mut hold, HoldCommand::Release).unwrap();
    // The placement never finishes: a unit kept after the give-back would stay held, so a
    // late sweep gives the plan back again (a give-back never exceeds what the hold keeps).
    let due = 60_000 + LATE_SWEEP_MS;
    assert_eq!(hold.timers(), vec![(due, EXPIRY_TIMER)]);
    assert!(run(&mut hold, HoldCommand::Expire { at: 60_000 })
        .unwrap()
        .is_empty());
    let swept = run(&mut hold, HoldCommand::Expire { at: due }).unwrap();
    assert_eq!(
        swept,
        vec![HoldEvent::Swept {
            returned: vec![line("A", 2)]
        }]
    );
    assert_eq!(hold.status, HoldStatus::Released);
    assert!(hold.timers().is_empty());
    // A hold that ended after it was active has nothing to sweep.
    let mut active = active();
    run(&mut active, HoldCommand::Release).unwrap();
    assert!(active.timers().is_empty());
}
