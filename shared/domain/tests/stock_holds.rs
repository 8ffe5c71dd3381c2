//! Property test of one SKU-location under any mix of receipts, adjustments, reservations,
//! releases, shipments and cart holds (kept aside, given back, converted to an order's
//! reservation): after every command
//!
//! 1. no oversell: `allocated + held ≤ on_hand`, and nothing is granted (reserved or held)
//!    beyond what was available to promise before the command;
//! 2. conservation: the ledger folds to the position (`on_hand`, `allocated` and `held`);
//! 3. reservations add up to `allocated` and holds to `held`;
//! 4. refusals change nothing.

use keel_domain::inventory::{fold, LedgerEntry, SkuLocation, StockCommand, StockEvent};
use keel_domain::{DocumentId, FulfillmentId, HoldId, OrderId};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Receive(u64),
    Adjust(i64),
    Reserve(u8, u64),
    Release(u8, u64),
    Ship(u8, u64),
    Hold(u8, u64),
    ReleaseHold(u8, u64),
    Convert(u8, u8, u64),
}

fn op() -> impl Strategy<Value = Op> {
    let who = 0u8..4;
    let q = 1u64..8;
    prop_oneof![
        q.clone().prop_map(Op::Receive),
        (-6i64..6)
            .prop_filter("non-zero", |d| *d != 0)
            .prop_map(Op::Adjust),
        (who.clone(), q.clone()).prop_map(|(w, q)| Op::Reserve(w, q)),
        (who.clone(), q.clone()).prop_map(|(w, q)| Op::Release(w, q)),
        (who.clone(), q.clone()).prop_map(|(w, q)| Op::Ship(w, q)),
        (who.clone(), q.clone()).prop_map(|(w, q)| Op::Hold(w, q)),
        (who.clone(), q.clone()).prop_map(|(w, q)| Op::ReleaseHold(w, q)),
        (who.clone(), who, q).prop_map(|(h, o, q)| Op::Convert(h, o, q)),
    ]
}

fn order(n: u8) -> OrderId {
    OrderId::parse(&format!("o{n}")).unwrap()
}

fn hold(n: u8) -> HoldId {
    HoldId::parse(&format!("h{n}")).unwrap()
}

fn command(op: &Op, n: usize) -> StockCommand {
    let doc = || DocumentId::parse(&format!("d{n}")).unwrap();
    match *op {
        Op::Receive(quantity) => StockCommand::Receive {
            receipt: doc(),
            quantity,
        },
        Op::Adjust(delta) => StockCommand::Adjust {
            adjustment: doc(),
            delta,
            reason: "count".into(),
        },
        Op::Reserve(o, quantity) => StockCommand::Reserve {
            order: order(o),
            quantity,
        },
        Op::Release(o, quantity) => StockCommand::Release {
            order: order(o),
            quantity,
            reason: "test".into(),
        },
        Op::Ship(o, quantity) => StockCommand::Ship {
            order: order(o),
            fulfillment: FulfillmentId::new(&order(o), 1),
            quantity,
        },
        Op::Hold(h, quantity) => StockCommand::Hold {
            hold: hold(h),
            quantity,
        },
        Op::ReleaseHold(h, quantity) => StockCommand::ReleaseHold {
            hold: hold(h),
            quantity,
            reason: "test".into(),
        },
        Op::Convert(h, o, quantity) => StockCommand::ConvertHold {
            hold: hold(h),
            order: order(o),
            quantity,
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn holds_never_oversell_and_the_ledger_accounts_for_every_bucket(
        ops in proptest::collection::vec(op(), 1..60),
        safety in 0u64..3,
    ) {
        let mut s = SkuLocation::default();
        s.position.safety_stock = safety;
        let mut ledger: Vec<LedgerEntry> = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            let before = s.clone();
            let available = s.position.available();
            match s.decide(&command(op, n)) {
                Err(_) => prop_assert_eq!(&s, &before, "a refusal changes nothing"),
                Ok(events) => {
                    let granted: u64 = events
                        .iter()
                        .map(|e| match e {
                            StockEvent::Reserved { quantity, .. }
                            | StockEvent::Held { quantity, .. } => *quantity,
                            _ => 0,
                        })
                        .sum();
                    prop_assert!(granted <= available, "granted {granted} of {available}");
                    for e in &events {
                        ledger.extend(s.apply(e, n as u64));
                    }
                }
            }
            let p = s.position;
            prop_assert!(p.allocated + p.held <= p.on_hand, "oversold: {p:?}");
            prop_assert!(fold(&ledger).matches(&p), "ledger {:?} vs {p:?}", fold(&ledger));
            prop_assert_eq!(s.reservations.values().sum::<u64>(), p.allocated);
            prop_assert_eq!(s.holds.values().sum::<u64>(), p.held);
            prop_assert!(s.holds.values().all(|q| *q > 0));
        }
    }
}
