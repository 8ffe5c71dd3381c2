//! Creates the run's catalog and initial stock. Any failure here is a setup error (exit 2).

use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use super::Plan;
use crate::api::{NewChannel, NewLocation, NewSku, Receipt};
use crate::client::{map_parallel, with_retry, CallError, Connector, KeelClient, RetryPolicy};
use crate::runlog::{Bounds, RunLog};

/// How long to wait for `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for the server, creates locations, channels, SKUs and the initial receipts. Answers
/// the run's log holding those receipts.
pub fn create(connector: &dyn Connector, plan: &Plan, threads: usize) -> anyhow::Result<RunLog> {
    let cat = &plan.catalog;
    let mut client = connector.connect();
    wait_ready(client.as_mut())?;

    for loc in &cat.locations {
        let req = NewLocation {
            id: &loc.id,
            name: &loc.id,
            region: loc.region,
            priority: loc.priority,
        };
        let created = patient(client.as_mut(), |c| c.create_location(&req))
            .with_context(|| format!("creating location {}", loc.id))?;
        if !created {
            bail!(
                "location {} already exists: prefix {:?} was used by an earlier run (its stock \
                 would break the conservation checks); choose another --prefix",
                loc.id,
                cat.prefix
            );
        }
    }
    for ch in &cat.channels {
        let locations: Vec<&str> = ch.location_ids.iter().map(String::as_str).collect();
        let req = NewChannel {
            id: &ch.id,
            name: &ch.id,
            locations: &locations,
        };
        patient(client.as_mut(), |c| c.create_channel(&req))
            .with_context(|| format!("creating channel {}", ch.id))?;
    }
    let failures = map_parallel(connector, threads, &cat.skus, |c, id| {
        patient(c, |c| c.create_sku(&NewSku { id, name: id }))
            .err()
            .map(|e| format!("creating SKU {id}: {e}"))
    });
    if let Some(e) = failures.into_iter().flatten().next() {
        bail!(e);
    }

    let mut log = RunLog::new(cat.slots());
    let results = map_parallel(connector, threads, &plan.stock, |c, &(slot, qty)| {
        let (sku, loc) = cat.unslot(slot);
        let id = format!("{}-init-{slot}", cat.prefix);
        let req = Receipt {
            receipt_id: &id,
            sku: &cat.skus[sku],
            location: &cat.locations[loc].id,
            quantity: qty,
        };
        patient(c, |c| c.receipt(&req)).map_err(|e| format!("receipt {id}: {e}"))
    });
    for (&(slot, qty), result) in plan.stock.iter().zip(results) {
        if let Err(e) = result {
            bail!(e);
        }
        log.received[slot] = Bounds::exact(log.received[slot].acked + qty);
    }
    Ok(log)
}

/// A setup call with patient retries.
fn patient<C: KeelClient + ?Sized, T>(
    client: &mut C,
    call: impl FnMut(&mut C) -> Result<T, CallError>,
) -> Result<T, CallError> {
    with_retry(client, RetryPolicy::PATIENT, |_| {}, call).into_result()
}

/// Polls `GET /readyz` until it answers `2xx` or [`READY_TIMEOUT`] passes.
fn wait_ready(client: &mut dyn KeelClient) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        match client.ready() {
            Ok(()) => return Ok(()),
            Err(e) if start.elapsed() >= READY_TIMEOUT => {
                bail!("server not ready after {READY_TIMEOUT:?}: {e}")
            }
            Err(_) => thread::sleep(Duration::from_millis(250)),
        }
    }
}
