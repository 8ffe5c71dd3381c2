//! Reservations per second through ONE hot SKU-location actor: the single writer every order
//! for a promoted item goes through. Each reservation is a full actor round trip: decide, one
//! sled transaction (state + dedupe record + ledger entry + outbox publication), reply.
//! Flushing is group-committed elsewhere and measured separately (`reserve_then_flush`).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use futures::future::join_all;
use keel_bus::{InProcessBus, InProcessOptions, SharedBus};
use keel_domain::inventory::StockCommand;
use keel_domain::{DocumentId, LocationId, OrderId, SkuId};
use keel_runtime::{Node, NodeOptions};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Commands kept in flight for the pipelined variant (callers from many orders at once).
const IN_FLIGHT: usize = 64;

struct Hot {
    node: Node,
    sku: SkuId,
    location: LocationId,
    next: AtomicU64,
    _dir: tempfile::TempDir,
}

impl Hot {
    async fn start() -> Hot {
        let dir = tempfile::tempdir().expect("temp dir");
        let bus: SharedBus = InProcessBus::new(InProcessOptions::default()).into_shared();
        let node = Node::start(&NodeOptions::new(dir.path()), bus).expect("node starts");
        let (sku, location) = (
            SkuId::parse("HOT").unwrap(),
            LocationId::parse("dc").unwrap(),
        );
        let receipt = StockCommand::Receive {
            receipt: DocumentId::parse("stock").unwrap(),
            quantity: 1_000_000_000,
        };
        node.stock_command(&sku, &location, None, receipt)
            .await
            .expect("stocked");
        Hot {
            node,
            sku,
            location,
            next: AtomicU64::new(0),
            _dir: dir,
        }
    }

    async fn reserve(&self) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let command = StockCommand::Reserve {
            order: OrderId::parse(&format!("o{n}")).unwrap(),
            quantity: 1,
        };
        let id = Some(format!("bench:{n}"));
        let reply = self
            .node
            .stock_command(&self.sku, &self.location, id, command)
            .await;
        assert_eq!(reply.expect("reserved").granted, 1);
    }
}

/// Runs `iters` operations with [`IN_FLIGHT`] of them in flight at a time; answers the time.
async fn pipelined<F: std::future::Future<Output = ()>>(
    iters: u64,
    op: impl Fn() -> F,
) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let batch = left.min(IN_FLIGHT as u64);
        join_all((0..batch).map(|_| op())).await;
        left -= batch;
    }
    start.elapsed()
}

fn bench(c: &mut Criterion) {
    let system = actix_rt::System::new();
    let hot = system.block_on(Hot::start());
    let mut group = c.benchmark_group("hot_sku_location");
    group.throughput(Throughput::Elements(1));
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("reserve_sequential", |b| {
        b.iter_custom(|iters| {
            system.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    hot.reserve().await;
                }
                start.elapsed()
            })
        })
    });
    group.bench_function("reserve_pipelined", |b| {
        b.iter_custom(|iters| system.block_on(pipelined(iters, || hot.reserve())))
    });
    group.bench_function("reserve_then_flush", |b| {
        b.iter_custom(|iters| {
            system.block_on(pipelined(iters, || async {
                hot.reserve().await;
                hot.node.flush().await.expect("flushed");
            }))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
