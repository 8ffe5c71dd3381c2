//! Crash safety: every acknowledged write survives SIGKILL, exactly once.
//!
//! Scenario: 8 clients post receipts and place orders (unique ids) over two locations and four
//! SKUs (the workload of `fixtures/writes.rs`) while the test SIGKILLs the server twice
//! mid-stream — each time after a number of acknowledged requests — and restarts it on the
//! same data dir and port (a second scenario SIGKILLs the NATS server instead, and restarts it
//! on the same JetStream store). A client retries every request that got no definitive reply
//! (transport error or 5xx) with the same id and body until it gets a 2xx or 4xx. Afterwards,
//! and again after one more restart:
//! * every request ended 2xx, and every acknowledged order exists with the lines it was sent;
//! * each SKU-location has `on_hand` == the sum of its acknowledged receipts (none lost, none
//!   applied twice: one receipt ledger entry per receipt), `allocated ≤ on_hand`, reservations
//!   adding up to `allocated`, and a ledger whose deltas add up to the position;
//! * each reservation belongs to an existing order whose fulfillments at that location hold
//!   exactly that quantity, backorder queues match the lines' backordered quantities, and each
//!   line's `allocated + backordered` is its quantity.

#[path = "fixtures/mod.rs"]
mod fixtures;

use fixtures::writes::{holdings, run_clients, verify, World};
use fixtures::{eventually, Keel};

const CLIENTS: u64 = 8;
const WRITES_PER_CLIENT: usize = 40;
/// SIGKILL once this many requests have been acknowledged (2xx) in total, then restart.
const KILL_AFTER_ACKS: [usize; 2] = [80, 200];

#[test]
fn acknowledged_writes_survive_two_sigkills_exactly_once() {
    let keel = Keel::start();
    writes_survive(keel, Interrupts::Requests, |keel| keel.restart());
}

/// The same clients while the NATS server (not Keel) is SIGKILLed twice and restarted on the
/// same JetStream store: the node reconnects by itself, nothing acknowledged is lost, nothing
/// is applied twice, and the node was never restarted.
#[test]
fn acknowledged_writes_survive_two_nats_server_sigkills_without_a_node_restart() {
    let keel = Keel::start_on_nats();
    // The node's NATS client holds requests while it reconnects: they wait out the outage
    // rather than fail, so clients need not retry.
    let keel = writes_survive(keel, Interrupts::Nothing, |keel| {
        keel.nats().kill();
        // Without NATS the node cannot be reached: it says so, and comes back by itself.
        eventually("/readyz is 503 while NATS is down", || {
            match keel.try_get("/readyz") {
                Ok((503, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
        keel.nats().restart();
        eventually("/readyz is 200 once NATS is back", || {
            match keel.try_get("/readyz") {
                Ok((200, _)) => Ok(()),
                other => Err(format!("{other:?}")),
            }
        });
    });
    assert_eq!(
        keel.starts(),
        2,
        "the node was restarted only by the final check"
    );
}

/// Whether a fault makes in-flight requests fail (so that clients retry them).
#[derive(PartialEq)]
enum Interrupts {
    Requests,
    Nothing,
}

/// Runs the clients, calls `fault` twice mid-stream, and checks every acknowledged write
/// afterwards and again after one more restart of the node.
fn writes_survive(
    mut keel: Keel,
    interrupts: Interrupts,
    mut fault: impl FnMut(&mut Keel),
) -> Keel {
    let world = World::create(&keel);
    let apis = [keel.api()];
    let outcomes = run_clients(
        &apis,
        &world,
        (0..CLIENTS, WRITES_PER_CLIENT),
        &KILL_AFTER_ACKS,
        interrupts == Interrupts::Requests,
        |_| fault(&mut keel),
    );
    let before = verify(&keel, &world, &outcomes);
    keel.restart();
    let after = verify(&keel, &world, &outcomes);
    assert_eq!(
        holdings(&after),
        holdings(&before),
        "a restart of a quiet server changed stock"
    );
    keel
}
