//! Inventory: the position of one SKU at one location, its ledger, and the state machine that is
//! the only place a reservation is decided.

mod backorders;
mod ledger;
mod position;
mod sku_location;

pub use backorders::{Backorder, BackorderQueue};
pub use ledger::{fold, LedgerEntry, LedgerTotals, Movement};
pub use position::Position;
pub use sku_location::{SkuLocation, StockCommand, StockEvent};
