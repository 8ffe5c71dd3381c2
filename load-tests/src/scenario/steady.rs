//! `steady`: a mixed day. Orders on a Zipf-like (or uniform) catalog, about 5% of operations
//! cancel a recent order, about 5% post receipts (restocking the same popular SKUs), and a share
//! of orders (default 15%) have their fulfillments walked picked → packed → shipped → delivered,
//! so the day closes fulfillments and shipments take stock out. A worker walks a fulfillment
//! right after placing its order (the other workers keep the server's load mixed), so the
//! end-to-end latency measures the server's path from placement to delivery, not the tool's
//! pacing. `chaos` and `soak` run this plan too.

use super::Plan;
use crate::catalog::Catalog;
use crate::cli::{DayArgs, RunArgs};
use crate::workload::{LineSpec, Mix, SkuPicker};

/// Initial units per SKU-location.
const INITIAL_UNITS: u64 = 100;
/// Units per receipt. An order averages 2 lines × 2 units and there are ~10 orders per receipt,
/// so a mean of 40 units keeps supply about level with demand: SKU-locations drift in and out of
/// backorder, which exercises backorder allocation, without the queues growing without bound.
const RECEIPT_MIN: u32 = 20;
/// See [`RECEIPT_MIN`].
const RECEIPT_MAX: u32 = 60;

/// The plan of a `steady` day run with `run` and `day`, ids prefixed by `prefix`.
pub fn plan(run: &RunArgs, day: &DayArgs, prefix: &str) -> Plan {
    let skus = run.catalog_skus as usize;
    let catalog = Catalog::new(prefix, skus, 0);
    let stock = (0..catalog.slots())
        .map(|slot| (slot, INITIAL_UNITS))
        .collect();
    Plan {
        name: "steady",
        catalog,
        stock,
        // Walked orders add about 0.6 confirmations per order (15% × 4 steps), so these weights
        // make receipts and cancels each about 5% of all operations. Without a candidate, a
        // cancel falls back to placing.
        mix: Mix {
            place: 84,
            receipt: 8,
            cancel: 8,
        },
        lines: LineSpec {
            lines_max: run.lines_max as usize,
            qty_max: 3,
            normal: SkuPicker::new(0, skus, run.sku_dist),
            hot: None,
        },
        walk_share: day.walk_share,
        receipt_qty: (RECEIPT_MIN, RECEIPT_MAX),
        demand_target: None,
        notes: vec![format!(
            "{INITIAL_UNITS} initial units per SKU-location; receipts of {RECEIPT_MIN}-{RECEIPT_MAX} \
             units follow the order SKU distribution"
        )],
    }
}
