//! Benchmarks of the pure domain's hot paths, without I/O.
//!
//! They measure what an actor spends deciding and applying one command, so a slowdown in the
//! domain can be told apart from one in the runtime (sled, messaging):
//!
//! - `sku_location/reserve`: `decide` + `apply` of `Reserve` on one hot SKU-location with a
//!   large `on_hand` (throughput in reservations);
//! - `sku_location/reserve_release`: a `Reserve` and its `Release` (throughput in pairs);
//! - `sourcing/plan`: a 3-line order over 3 and over 8 candidate locations;
//! - `order/lifecycle`: an order allocated, acknowledged and confirmed through delivery;
//! - `order/json_round_trip`: `serde_json` serialization and parsing of a delivered order (the
//!   runtime stores actor state as JSON).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use keel_domain::catalog::Location;
use keel_domain::inventory::{SkuLocation, StockCommand};
use keel_domain::order::{
    FulfillmentStatus, Order, OrderCommand, OrderRequest, PlannedLine, RequestedLine,
};
use keel_domain::sourcing;
use keel_domain::{DocumentId, LocationId, OrderId, SkuId};

/// Decides a stock command and applies its events; returns the ledger entries written.
fn stock(state: &mut SkuLocation, command: &StockCommand, at: u64) -> usize {
    let events = state.decide(command).expect("accepted");
    events.iter().filter_map(|e| state.apply(e, at)).count()
}

/// Decides an order command and applies its events; returns how many there were.
fn order(state: &mut Order, command: &OrderCommand) -> usize {
    let events = state.decide(command).expect("accepted");
    events.iter().for_each(|e| state.apply(e));
    events.len()
}

/// A SKU-location with `on_hand` units received.
fn stocked(on_hand: u64) -> SkuLocation {
    let mut s = SkuLocation::default();
    let receive = StockCommand::Receive {
        receipt: DocumentId::parse("r-1").unwrap(),
        quantity: on_hand,
    };
    stock(&mut s, &receive, 0);
    s
}

/// Reservations for a rotating set of orders, so the reservation map has a realistic size.
fn reserve_commands(orders: usize) -> Vec<StockCommand> {
    (0..orders)
        .map(|n| StockCommand::Reserve {
            order: OrderId::parse(&format!("o-{n}")).unwrap(),
            quantity: 1,
        })
        .collect()
}

fn sku_location(c: &mut Criterion) {
    let mut group = c.benchmark_group("sku_location");
    group.throughput(Throughput::Elements(1));
    let reserves = reserve_commands(1024);

    // Enough stock that no reservation in the measurement comes back empty.
    let mut hot = stocked(1_000_000_000);
    let mut next = 0usize;
    group.bench_function("reserve", |b| {
        b.iter(|| {
            next = (next + 1) % reserves.len();
            black_box(stock(&mut hot, &reserves[next], 1))
        });
    });

    let releases: Vec<StockCommand> = reserves
        .iter()
        .map(|r| match r {
            StockCommand::Reserve { order, quantity } => StockCommand::Release {
                order: order.clone(),
                quantity: *quantity,
                reason: "compensation".into(),
            },
            _ => unreachable!(),
        })
        .collect();
    let mut pairs = stocked(1_000_000);
    group.bench_function("reserve_release", |b| {
        b.iter(|| {
            next = (next + 1) % reserves.len();
            let written = stock(&mut pairs, &reserves[next], 1);
            black_box(written + stock(&mut pairs, &releases[next], 2))
        });
    });
    group.finish();
}

/// `n` locations in three regions with distinct priorities.
fn locations(n: usize) -> Vec<Location> {
    (0..n)
        .map(|i| {
            let region = ["east", "west", "central"][i % 3];
            let id = format!("dc-{i}");
            Location::new(&id, &id, region, i64::try_from(i).unwrap()).unwrap()
        })
        .collect()
}

fn sourcing_plan(c: &mut Criterion) {
    let mut group = c.benchmark_group("sourcing/plan");
    let lines: Vec<RequestedLine> = (1..=3)
        .map(|n| RequestedLine {
            sku: SkuId::parse(&format!("SKU-{n}")).unwrap(),
            quantity: 4,
        })
        .collect();
    for n in [3, 8] {
        let candidates = locations(n);
        // Each location stocks a different subset of the SKUs and no single one covers the
        // order, so the search has to look at pairs before it finds a split.
        let atp = |sku: &SkuId, loc: &LocationId| -> u64 {
            let s = usize::from(sku.as_str().as_bytes()[4] - b'0');
            let l: usize = loc.as_str()[3..].parse().unwrap();
            if (s + l).is_multiple_of(3) {
                0
            } else {
                3
            }
        };
        group.bench_with_input(BenchmarkId::new("3_lines", n), &candidates, |b, c| {
            b.iter(|| black_box(sourcing::plan(&lines, c, "west", atp)));
        });
    }
    group.finish();
}

/// A placed 3-line order and the commands that take it through delivery from two locations.
fn lifecycle() -> (Order, Vec<OrderCommand>) {
    let request = OrderRequest::new(
        "o-bench",
        "web",
        &[("SKU-1", 2), ("SKU-2", 1), ("SKU-3", 5)],
        "east",
    )
    .unwrap();
    let planned = |loc: &str, sku: &str, quantity| PlannedLine {
        location: LocationId::parse(loc).unwrap(),
        sku: SkuId::parse(sku).unwrap(),
        quantity,
    };
    let plan = vec![
        planned("dc-east", "SKU-1", 2),
        planned("dc-east", "SKU-2", 1),
        planned("dc-west", "SKU-3", 5),
    ];
    let mut commands = vec![
        OrderCommand::StartAllocation { plan: plan.clone() },
        OrderCommand::CompleteAllocation {
            granted: plan,
            backorders: Vec::new(),
        },
    ];
    for n in 1..=2 {
        let fulfillment = keel_domain::FulfillmentId::new(&request.id, n);
        commands.push(OrderCommand::AcceptFulfillment {
            fulfillment: fulfillment.clone(),
        });
        for step in [
            FulfillmentStatus::Picked,
            FulfillmentStatus::Packed,
            FulfillmentStatus::Shipped,
            FulfillmentStatus::Delivered,
        ] {
            commands.push(OrderCommand::Confirm {
                fulfillment: fulfillment.clone(),
                step,
            });
        }
    }
    (Order::place(request, 1), commands)
}

fn order_lifecycle(c: &mut Criterion) {
    let mut group = c.benchmark_group("order");
    let (placed, commands) = lifecycle();
    group.throughput(Throughput::Elements(commands.len() as u64));
    group.bench_function("lifecycle", |b| {
        b.iter(|| {
            let mut o = placed.clone();
            let events: usize = commands.iter().map(|c| order(&mut o, c)).sum();
            black_box((o, events))
        });
    });

    let mut delivered = placed;
    commands.iter().for_each(|c| {
        order(&mut delivered, c);
    });
    let json = serde_json::to_vec(&delivered).unwrap();
    group.throughput(Throughput::Bytes(json.len() as u64));
    group.bench_function("json_round_trip", |b| {
        b.iter(|| {
            let bytes = serde_json::to_vec(black_box(&delivered)).unwrap();
            black_box(serde_json::from_slice::<Order>(&bytes).unwrap())
        });
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
}

criterion_group! {
    name = benches;
    config = config();
    targets = sku_location, sourcing_plan, order_lifecycle
}
criterion_main!(benches);
