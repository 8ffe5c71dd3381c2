//! Orders: the request a channel captured, its fulfillments (one per sourcing location and
//! backorder fill), its backorders, the status every channel and node shares, and the
//! reservation saga's next step ([`saga::step`]).

mod aggregate;
mod request;
pub mod saga;
mod status;

pub use aggregate::{
    Allocation, Fulfillment, FulfillmentLine, Order, OrderCommand, OrderEvent, PlannedLine,
    WaitingLine, MAX_ALLOCATION_ATTEMPTS,
};
pub(crate) use request::parse_lines;
pub use request::{OrderRequest, RequestedLine, ShipTo, MAX_ORDER_LINES};
pub use saga::{ReleaseReason, SagaAction, SagaOutcome};
pub use status::{FulfillmentStatus, OrderStatus};
