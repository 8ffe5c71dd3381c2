//! The catalog a run creates for itself: every id carries the run's prefix, so runs never share
//! SKU-locations and the tool knows every movement on the ones it verifies.
//!
//! Layout: three locations (`east`, `west`, `central` regions, priorities 1–3), three channels
//! served by two or three of them, `normal` SKUs `{prefix}-S00000…` and optionally `hot` SKUs
//! `{prefix}-P000…` (the promotion's scarce items), indexed after the normal ones.

use std::collections::HashMap;
use std::ops::Range;

/// Regions of the three locations (also the ship-to regions orders use).
pub const REGIONS: [&str; 3] = ["east", "west", "central"];

/// Channel names and the indexes (into [`REGIONS`]/locations) of the locations serving them.
const CHANNELS: [(&str, &[usize]); 3] =
    [("web", &[0, 1, 2]), ("store", &[0, 2]), ("market", &[1, 2])];

/// A location of the run's catalog.
#[derive(Debug, Clone)]
pub struct Location {
    /// `{prefix}-{region}`.
    pub id: String,
    /// Region.
    pub region: &'static str,
    /// Sourcing priority (lower is preferred).
    pub priority: u32,
}

/// A channel of the run's catalog.
#[derive(Debug, Clone)]
pub struct Channel {
    /// `{prefix}-{name}`.
    pub id: String,
    /// Ids of the locations serving it.
    pub location_ids: Vec<String>,
}

/// Everything a run creates, with index lookups for replies.
#[derive(Debug, Clone)]
pub struct Catalog {
    /// Prefix of every id.
    pub prefix: String,
    /// The three locations.
    pub locations: Vec<Location>,
    /// The three channels.
    pub channels: Vec<Channel>,
    /// SKU ids: the normal ones, then the hot ones.
    pub skus: Vec<String>,
    /// How many of [`Catalog::skus`] are normal.
    pub normal_skus: usize,
    sku_index: HashMap<String, usize>,
    location_index: HashMap<String, usize>,
}

impl Catalog {
    /// Builds the catalog for `prefix` with `normal` + `hot` SKUs.
    pub fn new(prefix: &str, normal: usize, hot: usize) -> Self {
        let locations: Vec<Location> = REGIONS
            .iter()
            .zip(1..)
            .map(|(region, priority)| Location {
                id: format!("{prefix}-{region}"),
                region,
                priority,
            })
            .collect();
        let channels = CHANNELS
            .iter()
            .map(|(name, locs)| Channel {
                id: format!("{prefix}-{name}"),
                location_ids: locs.iter().map(|&l| locations[l].id.clone()).collect(),
            })
            .collect();
        let skus: Vec<String> = (0..normal)
            .map(|i| format!("{prefix}-S{i:05}"))
            .chain((0..hot).map(|i| format!("{prefix}-P{i:03}")))
            .collect();
        let sku_index = skus
            .iter()
            .enumerate()
            .map(|(i, s)| (s.clone(), i))
            .collect();
        let location_index = locations
            .iter()
            .enumerate()
            .map(|(i, l)| (l.id.clone(), i))
            .collect();
        Catalog {
            prefix: prefix.to_owned(),
            locations,
            channels,
            skus,
            normal_skus: normal,
            sku_index,
            location_index,
        }
    }

    /// Indexes of the hot SKUs.
    pub fn hot(&self) -> Range<usize> {
        self.normal_skus..self.skus.len()
    }

    /// Number of SKU-locations (every SKU at every location).
    pub fn slots(&self) -> usize {
        self.skus.len() * self.locations.len()
    }

    /// Dense index of a SKU-location, for per-slot counters.
    pub fn slot(&self, sku: usize, location: usize) -> usize {
        sku * self.locations.len() + location
    }

    /// `(sku, location)` of a slot.
    pub fn unslot(&self, slot: usize) -> (usize, usize) {
        (slot / self.locations.len(), slot % self.locations.len())
    }

    /// Index of a SKU id of this catalog.
    pub fn sku(&self, id: &str) -> Option<usize> {
        self.sku_index.get(id).copied()
    }

    /// Index of a location id of this catalog.
    pub fn location(&self, id: &str) -> Option<usize> {
        self.location_index.get(id).copied()
    }
}

/// Whether `s` is a valid Keel identifier: 1–64 characters of `[A-Za-z0-9_-]`.
pub fn is_valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_prefixed_valid_and_indexed() {
        let c = Catalog::new("kl-t", 3, 2);
        assert_eq!(
            c.skus,
            [
                "kl-t-S00000",
                "kl-t-S00001",
                "kl-t-S00002",
                "kl-t-P000",
                "kl-t-P001"
            ]
        );
        assert_eq!(c.hot(), 3..5);
        assert!(c.skus.iter().all(|s| is_valid_id(s)));
        assert_eq!(c.sku("kl-t-P001"), Some(4));
        assert_eq!(c.location("kl-t-west"), Some(1));
        assert_eq!(c.slots(), 15);
        assert_eq!(c.unslot(c.slot(4, 2)), (4, 2));
        for ch in &c.channels {
            assert!((2..=3).contains(&ch.location_ids.len()));
        }
    }

    #[test]
    fn id_rule() {
        assert!(is_valid_id("a-B_9"));
        assert!(!is_valid_id(""));
        assert!(!is_valid_id("a.b"));
        assert!(!is_valid_id(&"x".repeat(65)));
    }
}
