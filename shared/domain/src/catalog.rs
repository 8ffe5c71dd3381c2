//! Reference data: SKUs, locations (warehouse nodes) and channels.

use crate::{ChannelId, Error, LocationId, SkuId};
use serde::{Deserialize, Serialize};

/// The longest name or region a catalog entry may carry.
pub const MAX_NAME_LEN: usize = 200;

/// Priority range of a location (lower is preferred).
pub const MAX_PRIORITY: u32 = 1000;

/// A stock-keeping unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sku {
    pub id: SkuId,
    pub name: String,
}

/// A warehouse node that holds stock and ships fulfillments.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    pub id: LocationId,
    pub name: String,
    pub region: String,
    /// Sourcing preference among equally able locations: lower wins.
    pub priority: u32,
}

/// A sales channel and the locations that may serve it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub locations: Vec<LocationId>,
}

/// Checks a human-readable name: 1–200 characters, not blank.
pub fn validate_name(what: &str, name: &str) -> Result<(), Error> {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_LEN {
        return Err(Error::Malformed(format!(
            "{what} must be 1-{MAX_NAME_LEN} characters"
        )));
    }
    Ok(())
}

impl Location {
    /// Validates every field of a location.
    pub fn new(id: &str, name: &str, region: &str, priority: i64) -> Result<Self, Error> {
        let id = LocationId::parse(id)?;
        validate_name("name", name)?;
        validate_name("region", region)?;
        let priority = u32::try_from(priority)
            .ok()
            .filter(|p| *p <= MAX_PRIORITY)
            .ok_or_else(|| {
                Error::Malformed(format!("priority must be between 0 and {MAX_PRIORITY}"))
            })?;
        Ok(Location {
            id,
            name: name.to_owned(),
            region: region.to_owned(),
            priority,
        })
    }
}

impl Channel {
    /// Validates a channel; whether its locations exist is the catalog's check.
    pub fn new(id: &str, name: &str, locations: &[String]) -> Result<Self, Error> {
        let id = ChannelId::parse(id)?;
        validate_name("name", name)?;
        if locations.is_empty() {
            return Err(Error::Malformed(
                "a channel needs at least one location".into(),
            ));
        }
        let mut ids = Vec::with_capacity(locations.len());
        for raw in locations {
            let loc = LocationId::parse(raw)?;
            if ids.contains(&loc) {
                return Err(Error::Malformed(format!("location {loc} listed twice")));
            }
            ids.push(loc);
        }
        Ok(Channel {
            id,
            name: name.to_owned(),
            locations: ids,
        })
    }
}

impl Sku {
    /// Validates a SKU.
    pub fn new(id: &str, name: &str) -> Result<Self, Error> {
        let id = SkuId::parse(id)?;
        validate_name("name", name)?;
        Ok(Sku {
            id,
            name: name.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_entries_validate_their_fields() {
        assert!(Location::new("dc-east", "East", "east", 1).is_ok());
        assert!(Location::new("dc east", "East", "east", 1).is_err());
        assert!(Location::new("dc-east", "", "east", 1).is_err());
        assert!(Location::new("dc-east", "East", "east", -1).is_err());
        assert!(Channel::new("web", "Web", &[]).is_err());
        assert!(Channel::new("web", "Web", &["a".into(), "a".into()]).is_err());
        assert!(Sku::new("SKU-1", &"x".repeat(201)).is_err());
    }
}
