//! The demo catalog seeded on first start, created through the node's public API (as any
//! client would), so it exercises the same path and stays idempotent.

use anyhow::{bail, Context};
use keel_bus::SharedBus;
use keel_protocol::{subjects as s, ReplyStatus};
use serde_json::{json, Value};
use std::time::Duration;

/// How many demo SKUs are seeded.
pub const DEMO_SKUS: usize = 200;

const LOCATIONS: [(&str, &str, &str, u32); 3] = [
    ("dc-east", "East DC (Newark)", "east", 1),
    ("dc-west", "West DC (Reno)", "west", 2),
    ("dc-central", "Central DC (Dallas)", "central", 3),
];

const CHANNELS: [(&str, &str, &[&str]); 3] = [
    ("web", "Web shop", &["dc-east", "dc-west", "dc-central"]),
    ("marketplace", "Marketplace", &["dc-east", "dc-west"]),
    ("retail", "Retail stores", &["dc-central", "dc-east"]),
];

async fn call(bus: &SharedBus, subject: &str, body: Value) -> anyhow::Result<()> {
    let reply = bus
        .request(
            subject,
            keel_bus::Headers::new(),
            body.to_string().into(),
            Duration::from_secs(30),
        )
        .await
        .with_context(|| format!("seeding via {subject}"))?;
    if let ReplyStatus::Error(code) = ReplyStatus::from_headers(&reply.headers) {
        bail!(
            "seeding via {subject} failed: {code}: {}",
            String::from_utf8_lossy(&reply.payload)
        );
    }
    Ok(())
}

/// Seeds the demo catalog and stock (every create is idempotent, so a re-run is harmless).
pub async fn demo(bus: &SharedBus) -> anyhow::Result<()> {
    for (id, name, region, priority) in LOCATIONS {
        let body = json!({ "id": id, "name": name, "region": region, "priority": priority });
        call(bus, s::LOCATIONS_CREATE, body).await?;
    }
    for (id, name, locations) in CHANNELS {
        call(
            bus,
            s::CHANNELS_CREATE,
            json!({ "id": id, "name": name, "locations": locations }),
        )
        .await?;
    }
    for i in 1..=DEMO_SKUS {
        let sku = format!("SKU-{i:04}");
        call(
            bus,
            s::SKUS_CREATE,
            json!({ "id": sku, "name": format!("Demo item {i}") }),
        )
        .await?;
        for (n, (location, ..)) in LOCATIONS.iter().enumerate() {
            // Uneven stock so sourcing has choices: some SKUs are scarce at some nodes.
            let quantity = (i * 7 + n * 13) % 40 + usize::from(n != 2) * 10;
            if quantity == 0 {
                continue;
            }
            let body = json!({
                "receipt_id": format!("seed-{sku}-{location}"),
                "sku": sku,
                "location": location,
                "quantity": quantity,
            });
            call(bus, s::INVENTORY_RECEIPT, body).await?;
        }
    }
    Ok(())
}
