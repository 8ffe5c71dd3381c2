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

use fixtures::writes::{holdings, run_clients, verify, Outcome, World};
use fixtures::{eventually, temp_dir, Keel, Transport};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::Duration;

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

/// The node dies (aborts: no clean stop, like a SIGKILL) inside checkpoints of its partition
/// log while 8 clients write: half-way through writing a checkpoint's keys, or half-way through
/// dropping the log rounds a checkpoint covered. A supervisor restarts it each time, as
/// Kubernetes would; after three crashes it comes back without the crash point. Every
/// acknowledged write is there exactly once, and nothing is oversold. Embedded only: on NATS
/// the local store is a cache that an unclean stop throws away (the changelog restores it).
#[test]
fn acknowledged_writes_survive_crashes_inside_checkpoints() {
    for point in ["checkpoint-writes", "log-truncation"] {
        crashes_inside_checkpoints(point);
    }
}

fn crashes_inside_checkpoints(point: &str) {
    const CRASHES: usize = 3;
    let checkpoints = ["--checkpoint-interval-ms", "100"];
    let mut keel = Keel::start_on(Transport::Embedded, temp_dir(), &checkpoints);
    let world = World::create(&keel);
    keel.set_extra_args(&[&checkpoints[..], &["--crash-at", point]].concat());
    keel.restart();
    let apis = [keel.api()];
    let (keel, done) = (Mutex::new(keel), AtomicBool::new(false));
    let (outcomes, crashes) = thread::scope(|scope| {
        let supervisor = scope.spawn(|| {
            let mut crashes = 0;
            while !done.load(Ordering::SeqCst) {
                let mut keel = keel.lock().unwrap();
                if keel.has_exited() {
                    crashes += 1;
                    let log = keel.log_tail(40);
                    assert!(
                        log.contains("crash point reached"),
                        "{point}: died otherwise:\n{log}"
                    );
                    if crashes == CRASHES {
                        keel.set_extra_args(&checkpoints);
                    }
                    keel.restart();
                }
                drop(keel);
                thread::sleep(Duration::from_millis(20));
            }
            crashes
        });
        let stop = StopOnDrop(&done);
        let outcomes = run_clients(
            &apis,
            &world,
            (0..CLIENTS, WRITES_PER_CLIENT),
            &[],
            true,
            |_| {},
        );
        drop(stop);
        (outcomes, supervisor.join().unwrap())
    });
    eprintln!("{point}: {crashes} crashes while the clients wrote");
    assert!(
        crashes >= 1,
        "{point}: the node never reached its crash point"
    );
    let mut keel = keel.into_inner().unwrap();
    keel.set_extra_args(&checkpoints);
    keel.restart();
    verify_across_a_restart(keel, &world, &outcomes);
}

/// Tells the supervisor to stop when the clients are done, also when they panic.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

/// Checks every acknowledged write, then again after one more restart (which must not change
/// stock).
fn verify_across_a_restart(mut keel: Keel, world: &World, outcomes: &[Outcome]) -> Keel {
    let before = verify(&keel, world, outcomes);
    keel.restart();
    let after = verify(&keel, world, outcomes);
    assert_eq!(
        holdings(&after),
        holdings(&before),
        "a restart of a quiet server changed stock"
    );
    keel
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
    verify_across_a_restart(keel, &world, &outcomes)
}
