//! `steady`: a mixed day. Orders on a Zipf-like (or uniform) catalog, about 5% of operations
//! cancel a recent order, about 5% post receipts (restocking the same popular SKUs), and a share
//! of orders have their fulfillments walked picked → packed → shipped → delivered, so the day
//! closes fulfillments and shipments take stock out.

use super::Plan;
use crate::catalog::Catalog;
use crate::cli::SteadyArgs;
use crate::workload::{LineSpec, Mix, SkuPicker};

/// Initial units per SKU-location.
const INITIAL_UNITS: u64 = 300;
/// Units per receipt. An order averages 2 lines × 2 units and there are 10 orders per receipt,
/// so a mean of 40 units keeps supply level with demand: SKU-locations drift in and out of
/// backorder, which exercises backorder allocation, without the queues growing without bound.
const RECEIPT_MIN: u32 = 20;
/// See [`RECEIPT_MIN`].
const RECEIPT_MAX: u32 = 60;

/// The plan of a `steady` run with ids prefixed by `prefix`.
pub fn plan(args: &SteadyArgs, prefix: &str) -> Plan {
    let run = &args.run;
    let skus = run.catalog_skus as usize;
    let catalog = Catalog::new(prefix, skus, 0);
    let stock = (0..catalog.slots())
        .map(|slot| (slot, INITIAL_UNITS))
        .collect();
    Plan {
        name: "steady",
        catalog,
        stock,
        // A walked fulfillment takes four advances; with the default 15% of orders walked the
        // advance weight exceeds that demand, so walks finish soon after placement and the
        // end-to-end latency reflects the server more than the queue. Without candidates,
        // advance and cancel fall back to placing.
        mix: Mix {
            place: 50,
            advance: 40,
            receipt: 5,
            cancel: 5,
        },
        lines: LineSpec {
            lines_max: run.lines_max as usize,
            qty_max: 3,
            normal: SkuPicker::new(0, skus, run.sku_dist),
            hot: None,
        },
        walk_share: args.walk_share,
        receipt_qty: (RECEIPT_MIN, RECEIPT_MAX),
        demand_target: None,
        notes: vec![format!(
            "{INITIAL_UNITS} initial units per SKU-location; receipts of {RECEIPT_MIN}-{RECEIPT_MAX} \
             units follow the order SKU distribution"
        )],
    }
}
