//! Orders: the request a channel captured, its fulfillments (one per sourcing location and
//! backorder fill), its backorders, and the status every channel and node shares.

mod aggregate;
mod request;
mod status;

pub use aggregate::{
    Allocation, Fulfillment, FulfillmentLine, Order, OrderCommand, OrderEvent, PlannedLine,
    WaitingLine, MAX_ALLOCATION_ATTEMPTS,
};
pub(crate) use request::parse_lines;
pub use request::{OrderRequest, RequestedLine, ShipTo, MAX_ORDER_LINES};
pub use status::{FulfillmentStatus, OrderStatus};
