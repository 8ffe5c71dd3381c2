//! Identifiers. They become NATS subject tokens, so they are restricted to a safe alphabet.

use crate::Error;
use serde::{Deserialize, Serialize};

/// The longest identifier a client may choose.
pub const MAX_ID_LEN: usize = 64;

/// Checks the identifier rule: 1–64 characters of `[A-Za-z0-9_-]`.
pub fn validate_id(kind: &'static str, id: &str) -> Result<(), Error> {
    let ok = !id.is_empty()
        && id.len() <= MAX_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidId {
            kind,
            id: id.chars().take(80).collect(),
        })
    }
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `raw` against the identifier rule.
            pub fn parse(raw: &str) -> Result<Self, Error> {
                validate_id($kind, raw)?;
                Ok(Self(raw.to_owned()))
            }

            /// The identifier as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A stock-keeping unit.
    SkuId,
    "sku"
);
id_type!(
    /// A warehouse node (a stocking location).
    LocationId,
    "location"
);
id_type!(
    /// A sales channel (storefront, marketplace, …).
    ChannelId,
    "channel"
);
id_type!(
    /// An order, chosen by the channel that captured it.
    OrderId,
    "order"
);
id_type!(
    /// A source document chosen by the client: a receipt or an adjustment.
    DocumentId,
    "document"
);
id_type!(
    /// A cart hold: stock a storefront keeps aside at checkout for a while.
    HoldId,
    "hold"
);

/// A fulfillment: the part of an order shipped from one location, `{order}-F{n}`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct FulfillmentId(String);

impl FulfillmentId {
    /// The `n`-th fulfillment of `order` (numbered from 1).
    pub fn new(order: &OrderId, n: u32) -> Self {
        Self(format!("{order}-F{n}"))
    }

    /// Parses `{order}-F{n}` and returns the order it belongs to.
    pub fn parse(raw: &str) -> Result<(Self, OrderId), Error> {
        let invalid = || Error::UnknownFulfillment(raw.chars().take(80).collect());
        let (order, n) = raw.rsplit_once("-F").ok_or_else(invalid)?;
        // One spelling per fulfillment: no sign, no leading zero, numbered from 1.
        if n.starts_with('0') || !n.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        n.parse::<u32>().map_err(|_| invalid())?;
        let order = OrderId::parse(order).map_err(|_| invalid())?;
        Ok((Self(raw.to_owned()), order))
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for FulfillmentId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_follow_the_subject_token_rule() {
        assert!(SkuId::parse("SKU-0001_a").is_ok());
        assert!(SkuId::parse(&"a".repeat(64)).is_ok());
        for bad in ["", "has space", "a.b", "a*", "é", &"a".repeat(65)] {
            let err = SkuId::parse(bad).unwrap_err();
            assert!(matches!(err, Error::InvalidId { .. }), "{bad:?}: {err}");
        }
    }

    #[test]
    fn fulfillment_ids_name_their_order() {
        let order = OrderId::parse("o-F2-x").unwrap();
        let id = FulfillmentId::new(&order, 12);
        assert_eq!(id.as_str(), "o-F2-x-F12");
        let (parsed, of) = FulfillmentId::parse("o-F2-x-F12").unwrap();
        assert_eq!((parsed, of), (id, order));
        for bad in ["o-1", "o-F", "o-Fx", "o-F0", "o-F01", "-F1", "a b-F1"] {
            assert!(FulfillmentId::parse(bad).is_err(), "{bad}");
        }
    }
}
