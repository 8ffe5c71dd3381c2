//! Reference data (SKUs, locations, channels): stored in sled, cached in memory.
//!
//! Creates are first-writer-wins compare-and-swaps in the store, so the catalog needs no actor:
//! the same id with the same body answers the stored entry, a different body is a conflict.

use crate::Error;
use keel_domain::catalog::{Channel, Location, Sku};
use keel_domain::order::{OrderRequest, RequestedLine};
use keel_domain::{ChannelId, LocationId, SkuId};
use keel_store::Store;
use parking_lot::RwLock;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::collections::BTreeMap;

#[derive(Default)]
struct Entries {
    skus: BTreeMap<SkuId, Sku>,
    locations: BTreeMap<LocationId, Location>,
    channels: BTreeMap<ChannelId, Channel>,
}

/// The node's catalog.
pub struct Catalog {
    store: Store,
    entries: RwLock<Entries>,
}

fn load_all<T: DeserializeOwned>(store: &Store, prefix: &str) -> Result<Vec<T>, Error> {
    store
        .catalog_scan(prefix)
        .map(|raw| Ok(serde_json::from_slice(&raw?)?))
        .collect()
}

fn read_entries(store: &Store) -> Result<Entries, Error> {
    Ok(Entries {
        skus: load_all::<Sku>(store, "sku/")?
            .into_iter()
            .map(|s| (s.id.clone(), s))
            .collect(),
        locations: load_all::<Location>(store, "location/")?
            .into_iter()
            .map(|l| (l.id.clone(), l))
            .collect(),
        channels: load_all::<Channel>(store, "channel/")?
            .into_iter()
            .map(|c| (c.id.clone(), c))
            .collect(),
    })
}

impl Catalog {
    /// Loads the catalog from the store.
    pub(crate) fn load(store: Store) -> Result<Catalog, Error> {
        let entries = read_entries(&store)?;
        Ok(Catalog {
            store,
            entries: RwLock::new(entries),
        })
    }

    /// Reads the catalog from the store again (after the store was restored from a replica).
    pub(crate) fn reload(&self) -> Result<(), Error> {
        *self.entries.write() = read_entries(&self.store)?;
        Ok(())
    }

    /// Stores `value` under `key` unless present; answers the entry and whether it was created.
    fn insert<T: Serialize + DeserializeOwned + PartialEq>(
        &self,
        key: &str,
        value: T,
    ) -> Result<(T, bool), Error> {
        let bytes = serde_json::to_vec(&value)?;
        match self.store.catalog_insert(key, &bytes)? {
            None => Ok((value, true)),
            Some(existing) => {
                let existing: T = serde_json::from_slice(&existing)?;
                if existing == value {
                    Ok((existing, false))
                } else {
                    Err(
                        keel_domain::Error::Conflict(format!("{key} exists with a different body"))
                            .into(),
                    )
                }
            }
        }
    }

    /// Adds a SKU.
    pub fn add_sku(&self, sku: Sku) -> Result<(Sku, bool), Error> {
        let (sku, created) = self.insert(&format!("sku/{}", sku.id), sku)?;
        self.entries
            .write()
            .skus
            .insert(sku.id.clone(), sku.clone());
        Ok((sku, created))
    }

    /// Adds a location (warehouse node).
    pub fn add_location(&self, location: Location) -> Result<(Location, bool), Error> {
        let (location, created) = self.insert(&format!("location/{}", location.id), location)?;
        self.entries
            .write()
            .locations
            .insert(location.id.clone(), location.clone());
        Ok((location, created))
    }

    /// Adds a channel; every location it lists must exist.
    pub fn add_channel(&self, channel: Channel) -> Result<(Channel, bool), Error> {
        if let Some(missing) = channel
            .locations
            .iter()
            .find(|l| self.location(l).is_none())
        {
            return Err(keel_domain::Error::UnknownLocation(missing.to_string()).into());
        }
        let (channel, created) = self.insert(&format!("channel/{}", channel.id), channel)?;
        self.entries
            .write()
            .channels
            .insert(channel.id.clone(), channel.clone());
        Ok((channel, created))
    }

    /// A SKU by id.
    pub fn sku(&self, id: &SkuId) -> Option<Sku> {
        self.entries.read().skus.get(id).cloned()
    }

    /// A location by id.
    pub fn location(&self, id: &LocationId) -> Option<Location> {
        self.entries.read().locations.get(id).cloned()
    }

    /// A channel by id.
    pub fn channel(&self, id: &ChannelId) -> Option<Channel> {
        self.entries.read().channels.get(id).cloned()
    }

    /// Every SKU, by id.
    pub fn skus(&self) -> Vec<Sku> {
        self.entries.read().skus.values().cloned().collect()
    }

    /// Every location, by id.
    pub fn locations(&self) -> Vec<Location> {
        self.entries.read().locations.values().cloned().collect()
    }

    /// Every channel, by id.
    pub fn channels(&self) -> Vec<Channel> {
        self.entries.read().channels.values().cloned().collect()
    }

    /// Checks that a SKU and a location exist.
    pub fn check_sku_location(&self, sku: &SkuId, location: &LocationId) -> Result<(), Error> {
        let entries = self.entries.read();
        if !entries.skus.contains_key(sku) {
            return Err(keel_domain::Error::UnknownSku(sku.to_string()).into());
        }
        if !entries.locations.contains_key(location) {
            return Err(keel_domain::Error::UnknownLocation(location.to_string()).into());
        }
        Ok(())
    }

    /// Checks an order's channel and SKUs; answers the locations that may source it.
    pub fn order_locations(&self, request: &OrderRequest) -> Result<Vec<Location>, Error> {
        self.channel_locations(&request.channel, &request.lines)
    }

    /// The locations of `channel`, once it and every SKU of `lines` are known.
    pub fn channel_locations(
        &self,
        channel: &ChannelId,
        lines: &[RequestedLine],
    ) -> Result<Vec<Location>, Error> {
        let entries = self.entries.read();
        let channel = entries
            .channels
            .get(channel)
            .ok_or_else(|| keel_domain::Error::UnknownChannel(channel.to_string()))?;
        if let Some(line) = lines.iter().find(|l| !entries.skus.contains_key(&l.sku)) {
            return Err(keel_domain::Error::UnknownSku(line.sku.to_string()).into());
        }
        Ok(channel
            .locations
            .iter()
            .filter_map(|l| entries.locations.get(l).cloned())
            .collect())
    }
}
