//! Cart holds: stock a storefront keeps aside at checkout, given back when the cart is
//! abandoned (the hold expires or is released) or taken by the order placed on it.
//!
//! A hold is placed in two steps, like an order's reservation saga: `Place` writes the request
//! and its sourcing plan ahead (the hold is `placing`), the SKU-locations keep aside what they
//! can, and `Activate` records what they granted. Every way out of `placing` or `active`
//! (release, expiry) gives the granted units back through the outbox, exactly once, because it
//! is one state transition.
//!
//! Conversion is decided at the hold before its order is written (so a refusal changes
//! nothing); the order then turns the held units into its reservations. A converted hold keeps
//! its expiry timer: when it fires, whatever the order did not take (it never got written, say)
//! is given back, so no unit stays held for good.

use crate::catalog::validate_name;
use crate::order::{parse_lines, PlannedLine, RequestedLine, ShipTo};
use crate::{ChannelId, Error, HoldId, OrderId};
use serde::{Deserialize, Serialize};

/// The longest a hold may last: one day.
pub const MAX_HOLD_TTL_SECS: u64 = 86_400;

/// The name of a hold's expiry timer.
pub const EXPIRY_TIMER: &str = "expire";

/// How long after its expiry a hold that ended while still being placed gives its plan back
/// once more: a unit kept aside for it after it ended (its placement's request overtook by
/// the give-back, and the placement never finished) is returned then.
pub const LATE_SWEEP_MS: u64 = 60_000;

/// A validated hold request. Placing the same id again must carry an equal request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HoldRequest {
    pub id: HoldId,
    pub channel: ChannelId,
    pub lines: Vec<RequestedLine>,
    pub ship_to: ShipTo,
    pub ttl_secs: u64,
}

impl HoldRequest {
    /// Validates the raw fields of a hold request.
    pub fn new(
        id: &str,
        channel: &str,
        lines: &[(&str, i64)],
        region: &str,
        ttl_secs: i64,
    ) -> Result<Self, Error> {
        let id = HoldId::parse(id)?;
        let channel = ChannelId::parse(channel)?;
        validate_name("ship_to.region", region)?;
        let ttl_secs = u64::try_from(ttl_secs)
            .ok()
            .filter(|t| (1..=MAX_HOLD_TTL_SECS).contains(t))
            .ok_or_else(|| {
                Error::Malformed(format!(
                    "ttl_secs is {ttl_secs}: a hold lasts 1-{MAX_HOLD_TTL_SECS} seconds"
                ))
            })?;
        Ok(HoldRequest {
            id,
            channel,
            lines: parse_lines(lines)?,
            ship_to: ShipTo {
                region: region.to_owned(),
            },
            ttl_secs,
        })
    }
}

/// Where a hold stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HoldStatus {
    /// Not placed (never stored).
    #[default]
    New,
    /// Written ahead; the SKU-locations are keeping units aside.
    Placing,
    /// Units are kept aside until `expires_at`.
    Active,
    /// Given back on request.
    Released,
    /// Given back because its time ran out.
    Expired,
    /// Its units became an order's reservation.
    Converted,
}

impl HoldStatus {
    /// Whether the hold still keeps (or is about to keep) units aside.
    pub fn is_open(self) -> bool {
        matches!(self, HoldStatus::Placing | HoldStatus::Active)
    }
}

/// A cart hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    pub status: HoldStatus,
    /// `None` only while [`HoldStatus::New`].
    pub request: Option<HoldRequest>,
    /// Milliseconds since the Unix epoch.
    pub created_at: u64,
    pub expires_at: u64,
    /// What placement asked each location to keep aside.
    pub plan: Vec<PlannedLine>,
    /// What the locations kept aside (known once active).
    pub granted: Vec<PlannedLine>,
    /// The order that took the hold's units.
    pub order: Option<OrderId>,
    /// A converted hold's leftovers (or, for a hold that ended while placed, its whole plan)
    /// were given back at its sweep.
    #[serde(default)]
    pub swept: bool,
    /// It was released or expired while still being placed.
    #[serde(default)]
    pub ended_while_placing: bool,
}

/// A command to a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HoldCommand {
    /// Write the hold and its sourcing plan ahead (same request again: nothing happens).
    Place {
        request: HoldRequest,
        plan: Vec<PlannedLine>,
        /// The clock's time now; the hold expires `ttl_secs` later.
        at: u64,
    },
    /// Record what the SKU-locations kept aside.
    Activate { granted: Vec<PlannedLine> },
    /// Give the units back now.
    Release,
    /// The expiry timer fired at `at`.
    Expire { at: u64 },
    /// `order` takes the hold's units; its channel and lines must be the hold's.
    Convert {
        order: OrderId,
        channel: ChannelId,
        lines: Vec<RequestedLine>,
    },
}

/// What happened to a hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum HoldEvent {
    Placed {
        request: HoldRequest,
        plan: Vec<PlannedLine>,
        created_at: u64,
        expires_at: u64,
    },
    Activated {
        granted: Vec<PlannedLine>,
    },
    /// Released (on request) or expired: `returned` goes back to the SKU-locations.
    Ended {
        status: HoldStatus,
        returned: Vec<PlannedLine>,
    },
    /// Grants that arrived after the hold had ended: they go straight back.
    GrantsReturned {
        granted: Vec<PlannedLine>,
    },
    Converted {
        order: OrderId,
    },
    /// A converted hold expired: what its order did not take goes back (at most `returned`).
    Swept {
        returned: Vec<PlannedLine>,
    },
}

impl Hold {
    fn id(&self) -> String {
        self.request
            .as_ref()
            .map_or_else(String::new, |r| r.id.to_string())
    }

    /// What an open hold has out at the SKU-locations: the grants once known, else the plan
    /// (a grant never exceeds its planned line).
    fn outstanding(&self) -> Vec<PlannedLine> {
        match self.status {
            HoldStatus::Active => self.granted.clone(),
            _ => self.plan.clone(),
        }
    }

    /// Units of `sku` the hold keeps aside now.
    pub fn held(&self, sku: &crate::SkuId) -> u64 {
        if !matches!(self.status, HoldStatus::Active | HoldStatus::Converted) {
            return 0;
        }
        self.granted
            .iter()
            .filter(|g| &g.sku == sku)
            .map(|g| g.quantity)
            .sum()
    }

    /// The timers this state wants: the expiry of an open hold, or of a converted one whose
    /// leftovers are still to be swept; the late sweep of one that ended while placed (due
    /// time, name).
    pub fn timers(&self) -> Vec<(u64, &'static str)> {
        if self.status.is_open() || (self.status == HoldStatus::Converted && !self.swept) {
            vec![(self.expires_at, EXPIRY_TIMER)]
        } else if self.ended_while_placing && !self.swept {
            vec![(self.late_sweep_at(), EXPIRY_TIMER)]
        } else {
            Vec::new()
        }
    }

    fn late_sweep_at(&self) -> u64 {
        self.expires_at.saturating_add(LATE_SWEEP_MS)
    }

    /// Decides a command against the current state. Refusals change nothing.
    pub fn decide(&self, command: &HoldCommand) -> Result<Vec<HoldEvent>, Error> {
        if self.status == HoldStatus::New && !matches!(command, HoldCommand::Place { .. }) {
            return Err(Error::UnknownHold(match command {
                HoldCommand::Convert { .. } => "named by the order".to_owned(),
                _ => "never placed".to_owned(),
            }));
        }
        let end = |status| HoldEvent::Ended {
            status,
            returned: self.outstanding(),
        };
        Ok(match command {
            HoldCommand::Place { request, plan, at } => match &self.request {
                Some(existing) if existing == request => Vec::new(),
                Some(_) => {
                    return Err(Error::Conflict(format!(
                        "hold {} exists with a different request",
                        request.id
                    )))
                }
                None => vec![HoldEvent::Placed {
                    request: request.clone(),
                    plan: plan.clone(),
                    created_at: *at,
                    expires_at: at.saturating_add(request.ttl_secs * 1000),
                }],
            },
            HoldCommand::Activate { granted } => match self.status {
                HoldStatus::Placing => vec![HoldEvent::Activated {
                    granted: granted.clone(),
                }],
                HoldStatus::Released | HoldStatus::Expired => vec![HoldEvent::GrantsReturned {
                    granted: granted.clone(),
                }],
                _ => Vec::new(),
            },
            HoldCommand::Release => match self.status {
                HoldStatus::Placing | HoldStatus::Active => vec![end(HoldStatus::Released)],
                HoldStatus::Converted => {
                    return Err(Error::InvalidTransition(format!(
                        "hold {} went to order {}",
                        self.id(),
                        self.order.as_ref().map_or("?", |o| o.as_str())
                    )))
                }
                _ => Vec::new(),
            },
            HoldCommand::Expire { at } if *at < self.expires_at => Vec::new(),
            HoldCommand::Expire { .. } if self.status.is_open() => vec![end(HoldStatus::Expired)],
            HoldCommand::Expire { .. } if self.status == HoldStatus::Converted && !self.swept => {
                vec![HoldEvent::Swept {
                    returned: self.granted.clone(),
                }]
            }
            HoldCommand::Expire { at }
                if self.ended_while_placing && !self.swept && *at >= self.late_sweep_at() =>
            {
                vec![HoldEvent::Swept {
                    returned: self.plan.clone(),
                }]
            }
            HoldCommand::Expire { .. } => Vec::new(),
            HoldCommand::Convert {
                order,
                channel,
                lines,
            } => self.convert(order, channel, lines)?,
        })
    }

    fn convert(
        &self,
        order: &OrderId,
        channel: &ChannelId,
        lines: &[RequestedLine],
    ) -> Result<Vec<HoldEvent>, Error> {
        let Some(request) = &self.request else {
            return Err(Error::UnknownHold(self.id()));
        };
        if &request.channel != channel {
            return Err(Error::HoldMismatch(format!(
                "hold {} belongs to channel {}, the order to {channel}",
                request.id, request.channel
            )));
        }
        let mut theirs = lines.to_vec();
        let mut ours = request.lines.clone();
        theirs.sort_by(|a, b| a.sku.cmp(&b.sku));
        ours.sort_by(|a, b| a.sku.cmp(&b.sku));
        if theirs != ours {
            return Err(Error::HoldMismatch(format!(
                "the order's lines are not hold {}'s",
                request.id
            )));
        }
        match (self.status, &self.order) {
            (HoldStatus::Active, _) => Ok(vec![HoldEvent::Converted {
                order: order.clone(),
            }]),
            (HoldStatus::Converted, Some(taken)) if taken == order => Ok(Vec::new()),
            (HoldStatus::Placing, _) => Err(Error::InvalidTransition(format!(
                "hold {} is still being placed; retry",
                request.id
            ))),
            (status, _) => Err(Error::HoldExpired(format!(
                "hold {} is {}",
                request.id,
                match status {
                    HoldStatus::Converted => "taken by another order",
                    HoldStatus::Released => "released",
                    _ => "expired",
                }
            ))),
        }
    }

    /// Applies one event.
    pub fn apply(&mut self, event: &HoldEvent) {
        match event {
            HoldEvent::Placed {
                request,
                plan,
                created_at,
                expires_at,
            } => {
                self.status = HoldStatus::Placing;
                self.request = Some(request.clone());
                self.plan = plan.clone();
                self.created_at = *created_at;
                self.expires_at = *expires_at;
            }
            HoldEvent::Activated { granted } => {
                self.status = HoldStatus::Active;
                self.granted = granted.iter().filter(|g| g.quantity > 0).cloned().collect();
            }
            HoldEvent::Ended { status, .. } => {
                self.ended_while_placing = self.status == HoldStatus::Placing;
                self.status = *status;
            }
            HoldEvent::GrantsReturned { .. } => {}
            HoldEvent::Converted { order } => {
                self.status = HoldStatus::Converted;
                self.order = Some(order.clone());
            }
            HoldEvent::Swept { .. } => self.swept = true,
        }
    }
}

#[cfg(test)]
mod tests;
