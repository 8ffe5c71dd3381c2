//! The catalog of message schemas, as committed under `docs/schemas/<name>.json`.

use super::{events, replies, requests, wms};
use schemars::generate::SchemaSettings;
use schemars::{JsonSchema, Schema};

/// Every message's JSON Schema (draft 2020-12) by name, e.g. `api.orders.place.request` for
/// the body of `keel.v1.api.orders.place`, `evt.order` for `keel.v1.evt.order.*`. Messages
/// Keel receives are described as it reads them, messages it sends as it writes them.
pub fn schemas() -> Vec<(&'static str, Schema)> {
    use requests as rq;
    vec![
        (
            "api.locations.create.request",
            received::<rq::CreateLocation>(),
        ),
        ("api.locations.get.request", received::<rq::ById>()),
        (
            "api.channels.create.request",
            received::<rq::CreateChannel>(),
        ),
        ("api.channels.get.request", received::<rq::ById>()),
        ("api.skus.create.request", received::<rq::CreateSku>()),
        ("api.skus.get.request", received::<rq::ById>()),
        ("api.inventory.receipt.request", received::<rq::Receipt>()),
        ("api.inventory.adjust.request", received::<rq::Adjustment>()),
        ("api.inventory.get.request", received::<rq::BySku>()),
        (
            "api.inventory.position.request",
            received::<rq::BySkuLocation>(),
        ),
        ("api.inventory.ledger.request", received::<rq::Page>()),
        ("api.inventory.reservations.request", received::<rq::Page>()),
        ("api.inventory.backorders.request", received::<rq::Page>()),
        ("api.orders.place.request", received::<rq::PlaceOrder>()),
        ("api.orders.get.request", received::<rq::ById>()),
        ("api.orders.cancel.request", received::<rq::ById>()),
        (
            "api.fulfillments.confirm.request",
            received::<rq::Confirmation>(),
        ),
        ("api.fulfillments.get.request", received::<rq::ById>()),
        ("api.holds.place.request", received::<rq::PlaceHold>()),
        ("api.holds.get.request", received::<rq::ById>()),
        ("api.holds.release.request", received::<rq::ById>()),
        ("reply.hold", sent::<replies::Hold>()),
        ("reply.order", sent::<replies::Order>()),
        ("reply.fulfillment", sent::<replies::Fulfillment>()),
        ("reply.position", sent::<replies::Position>()),
        ("error", sent::<replies::ErrorBody>()),
        ("evt.order", sent::<events::OrderEvent>()),
        ("evt.fulfillment", sent::<events::FulfillmentEvent>()),
        ("evt.inventory", sent::<events::InventoryEvent>()),
        ("wms.confirm", received::<wms::WmsConfirmation>()),
    ]
}

/// The schema of a message Keel deserializes.
fn received<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

/// The schema of a message Keel serializes.
fn sent<T: JsonSchema>() -> Schema {
    SchemaSettings::draft2020_12()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_file_names() {
        let names: Vec<&str> = schemas().into_iter().map(|(name, _)| name).collect();
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(
            unique.len(),
            names.len(),
            "a name is listed twice: {names:?}"
        );
        for name in names {
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'.' || b == b'_'),
                "{name}"
            );
        }
    }

    /// Every API subject that reads its body has its request schema, and only those; the
    /// lists read none.
    #[test]
    fn every_api_subject_with_a_body_has_a_request_schema() {
        let mut named: Vec<String> = schemas()
            .into_iter()
            .filter_map(|(name, _)| Some(format!("keel.v1.{}", name.strip_suffix(".request")?)))
            .collect();
        let mut subjects: Vec<String> = crate::subjects::ALL
            .into_iter()
            .filter(|s| !s.ends_with(".list"))
            .map(str::to_owned)
            .collect();
        named.sort_unstable();
        subjects.sort_unstable();
        assert_eq!(named, subjects);
    }
}
