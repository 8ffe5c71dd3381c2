use serde::{Deserialize, Serialize};

/// The status of an order, shared by every channel and node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    Received,
    Allocated,
    PartiallyAllocated,
    Backordered,
    OnHold,
    Released,
    Picking,
    Packed,
    Shipped,
    Delivered,
    Cancelled,
    Exception,
}

impl OrderStatus {
    /// The wire spelling, e.g. `partially_allocated`.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Received => "received",
            OrderStatus::Allocated => "allocated",
            OrderStatus::PartiallyAllocated => "partially_allocated",
            OrderStatus::Backordered => "backordered",
            OrderStatus::OnHold => "on_hold",
            OrderStatus::Released => "released",
            OrderStatus::Picking => "picking",
            OrderStatus::Packed => "packed",
            OrderStatus::Shipped => "shipped",
            OrderStatus::Delivered => "delivered",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Exception => "exception",
        }
    }
}

/// The status of one fulfillment, moved by warehouse confirmations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FulfillmentStatus {
    Released,
    Picked,
    Packed,
    Shipped,
    Delivered,
    Cancelled,
}

impl FulfillmentStatus {
    /// The wire spelling, e.g. `picked`.
    pub fn as_str(self) -> &'static str {
        match self {
            FulfillmentStatus::Released => "released",
            FulfillmentStatus::Picked => "picked",
            FulfillmentStatus::Packed => "packed",
            FulfillmentStatus::Shipped => "shipped",
            FulfillmentStatus::Delivered => "delivered",
            FulfillmentStatus::Cancelled => "cancelled",
        }
    }

    /// A warehouse confirmation step (`picked|packed|shipped|delivered`).
    pub fn parse_step(step: &str) -> Option<FulfillmentStatus> {
        match step {
            "picked" => Some(FulfillmentStatus::Picked),
            "packed" => Some(FulfillmentStatus::Packed),
            "shipped" => Some(FulfillmentStatus::Shipped),
            "delivered" => Some(FulfillmentStatus::Delivered),
            _ => None,
        }
    }

    /// The step a warehouse may confirm next, if any.
    pub fn next(self) -> Option<FulfillmentStatus> {
        match self {
            FulfillmentStatus::Released => Some(FulfillmentStatus::Picked),
            FulfillmentStatus::Picked => Some(FulfillmentStatus::Packed),
            FulfillmentStatus::Packed => Some(FulfillmentStatus::Shipped),
            FulfillmentStatus::Shipped => Some(FulfillmentStatus::Delivered),
            FulfillmentStatus::Delivered | FulfillmentStatus::Cancelled => None,
        }
    }

    /// Whether the units have left the warehouse.
    pub fn has_shipped(self) -> bool {
        matches!(
            self,
            FulfillmentStatus::Shipped | FulfillmentStatus::Delivered
        )
    }

    /// The order status an order shows when this is its least advanced fulfillment.
    pub(crate) fn order_status(self) -> OrderStatus {
        match self {
            FulfillmentStatus::Released => OrderStatus::Released,
            FulfillmentStatus::Picked => OrderStatus::Picking,
            FulfillmentStatus::Packed => OrderStatus::Packed,
            FulfillmentStatus::Shipped => OrderStatus::Shipped,
            FulfillmentStatus::Delivered => OrderStatus::Delivered,
            FulfillmentStatus::Cancelled => OrderStatus::Cancelled,
        }
    }
}

impl std::fmt::Display for FulfillmentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
