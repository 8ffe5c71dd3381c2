//! `promo`: a promotion spike. A share (default 80%) of order lines goes to a few scarce SKUs
//! (default 20), the rest to the normal catalog; nothing is shipped, cancelled or restocked, so
//! verification checks conservation on `allocated`: no SKU-location may allocate more than it
//! received.
//!
//! Stock sizing (the documented choice): the scarce stock is sized from the expected demand,
//! `duration × expected rate × lines per order × scarce share × units per line`, divided by
//! twice the target multiple (default 3), and orders keep coming for the whole duration. The
//! expected rate is `--rate` in open loop; in closed loop it is a deliberately low guess of
//! 50 orders/s per worker, so a faster server only raises the multiple. The report shows the
//! achieved multiple next to the target.

use super::Plan;
use crate::catalog::Catalog;
use crate::cli::PromoArgs;
use crate::workload::{LineSpec, Mix, SkuDist, SkuPicker};

/// Closed-loop rate assumed per worker when sizing the scarce stock.
const ASSUMED_ORDERS_PER_WORKER: f64 = 50.0;
/// Safety factor on the demand multiple (covers a slower server than assumed).
const SAFETY: f64 = 2.0;
/// Units per line are 1..=3.
const QTY_MAX: u32 = 3;
/// Normal SKUs are stocked so they never run out.
const NORMAL_UNITS: u64 = 1_000_000;

/// The plan of a `promo` run with ids prefixed by `prefix`.
pub fn plan(args: &PromoArgs, prefix: &str) -> Plan {
    let run = &args.run;
    let normal = run.catalog_skus as usize;
    let scarce = args.scarce_skus as usize;
    let catalog = Catalog::new(prefix, normal, scarce);
    let locations = catalog.locations.len();

    let rate = run
        .rate
        .unwrap_or(run.concurrency as f64 * ASSUMED_ORDERS_PER_WORKER);
    let orders = rate * run.duration.as_secs_f64();
    let lines_per_order = (1.0 + run.lines_max.min(normal as u32 + args.scarce_skus) as f64) / 2.0;
    let units_per_line = (1.0 + QTY_MAX as f64) / 2.0;
    let demand = orders * lines_per_order * args.scarce_share * units_per_line;
    let per_slot = (demand / (args.demand_multiple * SAFETY) / (scarce * locations) as f64)
        .floor()
        .max(1.0) as u64;

    let hot = catalog.hot();
    let stock = (0..catalog.slots())
        .map(|slot| {
            let sku = catalog.unslot(slot).0;
            (
                slot,
                if hot.contains(&sku) {
                    per_slot
                } else {
                    NORMAL_UNITS
                },
            )
        })
        .collect();
    Plan {
        name: "promo",
        stock,
        mix: Mix {
            place: 1,
            receipt: 0,
            cancel: 0,
        },
        lines: LineSpec {
            lines_max: run.lines_max as usize,
            qty_max: QTY_MAX,
            normal: SkuPicker::new(0, normal, run.sku_dist),
            hot: Some((
                SkuPicker::new(hot.start, scarce, SkuDist::Uniform),
                args.scarce_share,
            )),
        },
        walk_share: 0.0,
        receipt_qty: (1, 1),
        demand_target: Some(args.demand_multiple),
        notes: vec![format!(
            "scarce stock {per_slot} units per SKU-location ({} total), sized for {:.0} orders \
             ({rate:.0}/s expected{}) at {}x demand with safety factor {SAFETY}",
            per_slot * (scarce * locations) as u64,
            orders,
            if run.rate.is_some() {
                ""
            } else {
                ", closed-loop guess"
            },
            args.demand_multiple,
        )],
        catalog,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Scenario};
    use clap::Parser;

    fn promo(extra: &[&str]) -> PromoArgs {
        let mut argv = vec!["keel-load", "promo", "--http", "http://x"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().scenario {
            Scenario::Promo(p) => p,
            _ => unreachable!("parsed promo"),
        }
    }

    #[test]
    fn scarce_stock_is_sized_for_the_target_multiple() {
        // 100 orders/s × 10 s × 2 lines × 0.8 × 2 units = 3,200 scarce units expected;
        // / (3 × 2) / (20 SKUs × 3 locations) = 8 units per SKU-location.
        let p = plan(&promo(&["--rate", "100", "--duration", "10s"]), "t");
        let hot = p.catalog.hot();
        let scarce: Vec<u64> = p
            .stock
            .iter()
            .filter(|(s, _)| hot.contains(&p.catalog.unslot(*s).0))
            .map(|&(_, q)| q)
            .collect();
        assert_eq!(scarce.len(), 60);
        assert!(scarce.iter().all(|&q| q == 8), "{scarce:?}");
        assert_eq!(p.demand_target, Some(3.0));
        assert_eq!(p.mix.place, 1);
        assert_eq!(p.mix.receipt + p.mix.cancel, 0);
    }
}
