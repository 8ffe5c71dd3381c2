//! Crash safety: every acknowledged write survives SIGKILL, exactly once.
//!
//! Scenario: 8 clients post receipts and place orders (unique ids) over two locations and four
//! SKUs while the test SIGKILLs the server twice mid-stream — each time after a number of
//! acknowledged requests — and restarts it on the same data dir and port (a second scenario
//! SIGKILLs the NATS server instead, and restarts it on the same JetStream store). A client retries every
//! request that got no definitive reply (transport error or 5xx) with the same id and body until
//! it gets a 2xx or 4xx. Afterwards, and again after one more restart:
//! * every request ended 2xx, and every acknowledged order exists with the lines it was sent;
//! * each SKU-location has `on_hand` == the sum of its acknowledged receipts (none lost, none
//!   applied twice: one receipt ledger entry per receipt), `allocated ≤ on_hand`, reservations
//!   adding up to `allocated`, and a ledger whose deltas add up to the position;
//! * each reservation belongs to an existing order whose fulfillments at that location hold
//!   exactly that quantity, backorder queues match the lines' backordered quantities, and each
//!   line's `allocated + backordered` is its quantity.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use fixtures::invariants::{check_orders_against_inventory, check_position};
use fixtures::{
    eventually, holders, int, list, order_body, receipt_body, sku_quantities, Api, Keel, Network,
    Resp, Rng,
};
use serde_json::{json, Value};

const CLIENTS: u64 = 8;
const WRITES_PER_CLIENT: usize = 40;
/// SIGKILL once this many requests have been acknowledged (2xx) in total, then restart.
const KILL_AFTER_ACKS: [usize; 2] = [80, 200];
/// How long one request may keep failing (server down, restarting) before the test gives up.
const RETRY_DEADLINE: Duration = Duration::from_secs(90);
const RETRY_PAUSE: Duration = Duration::from_millis(25);

/// A write a client makes.
#[derive(Clone, Debug)]
enum Write {
    Receipt {
        id: String,
        sku: String,
        location: String,
        qty: i64,
    },
    Order {
        id: String,
        lines: Vec<(String, i64)>,
        region: String,
    },
}

impl Write {
    fn random(rng: &mut Rng, client: u64, n: usize, world: &World) -> Write {
        if rng.range(1, 10) <= 4 {
            Write::Receipt {
                id: format!("ck-r-{client}-{n}"),
                sku: rng.pick(&world.skus).clone(),
                location: rng.pick(&world.locations).clone(),
                qty: rng.range(1, 5),
            }
        } else {
            Write::Order {
                id: format!("ck-o-{client}-{n}"),
                lines: rng.order_lines(&world.skus, 3, 3),
                region: rng.pick(&["east", "west"]).to_string(),
            }
        }
    }

    fn request(&self, channel: &str) -> (&'static str, Value) {
        match self {
            Write::Receipt {
                id,
                sku,
                location,
                qty,
            } => (
                "/v1/inventory/receipts",
                receipt_body(id, sku, location, *qty),
            ),
            Write::Order { id, lines, region } => {
                ("/v1/orders", order_body(id, channel, lines, region))
            }
        }
    }
}

/// A write and how it ended.
struct Outcome {
    write: Write,
    reply: Resp,
    attempts: u32,
}

struct World {
    skus: Vec<String>,
    locations: Vec<String>,
    channel: String,
    /// Receipts made during setup (before any client runs).
    seeded: Vec<Write>,
}

impl World {
    fn create(api: &Api) -> World {
        let net = Network::two_dcs(api, "ck");
        let skus: Vec<String> = (0..4).map(|i| format!("ck-sku-{i}")).collect();
        let mut seeded = Vec::new();
        for sku in &skus {
            api.create_sku(sku);
            let seed = Write::Receipt {
                id: format!("ck-seed-{sku}"),
                sku: sku.clone(),
                location: net.east.clone(),
                qty: 4,
            };
            let (path, body) = seed.request(&net.channel);
            fixtures::expect_2xx("seed receipt", api.post(path, &body));
            seeded.push(seed);
        }
        World {
            locations: net.locations(),
            channel: net.channel,
            skus,
            seeded,
        }
    }
}

/// POSTs until the reply is definitive (2xx or 4xx); transport errors and 5xx are retried with
/// the same body. Returns the reply and the number of attempts.
fn send_until_definitive(api: &Api, path: &str, body: &Value) -> (Resp, u32) {
    let deadline = Instant::now() + RETRY_DEADLINE;
    let mut attempts = 0;
    loop {
        attempts += 1;
        match api.try_post(path, body) {
            Ok(reply) if reply.0 < 500 => return (reply, attempts),
            outcome if Instant::now() >= deadline => panic!(
                "POST {path} {body}: no definitive reply within {RETRY_DEADLINE:?} \
                 ({attempts} attempts); last: {outcome:?}"
            ),
            _ => thread::sleep(RETRY_PAUSE),
        }
    }
}

fn run_client(api: &Api, client: u64, world: &World, acks: &AtomicUsize) -> Vec<Outcome> {
    let mut rng = Rng::new(1_000 + client);
    (0..WRITES_PER_CLIENT)
        .map(|n| {
            let write = Write::random(&mut rng, client, n, world);
            let (path, body) = write.request(&world.channel);
            let (reply, attempts) = send_until_definitive(api, path, &body);
            if (200..300).contains(&reply.0) {
                acks.fetch_add(1, Ordering::SeqCst);
            }
            Outcome {
                write,
                reply,
                attempts,
            }
        })
        .collect()
}

/// Waits until `acks` reaches `count` while clients are still writing.
fn wait_for_acks(
    acks: &AtomicUsize,
    count: usize,
    clients: &[thread::ScopedJoinHandle<'_, Vec<Outcome>>],
) {
    let deadline = Instant::now() + RETRY_DEADLINE;
    while acks.load(Ordering::SeqCst) < count {
        assert!(
            !clients.iter().all(|c| c.is_finished()),
            "clients finished before {count} acknowledgements; the kill would not be mid-stream"
        );
        assert!(
            Instant::now() < deadline,
            "fewer than {count} acknowledgements within {RETRY_DEADLINE:?}"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Everything the acknowledged writes imply about the server's state. Returns the positions.
fn verify(api: &Api, world: &World, outcomes: &[Outcome]) -> BTreeMap<(String, String), Value> {
    let mut receipts: BTreeMap<(String, String), (i64, usize)> = BTreeMap::new();
    let mut orders: Vec<String> = Vec::new();
    for write in world.seeded.iter().chain(outcomes.iter().map(|o| &o.write)) {
        match write {
            Write::Receipt {
                sku, location, qty, ..
            } => {
                let sum = receipts.entry((sku.clone(), location.clone())).or_default();
                *sum = (sum.0 + qty, sum.1 + 1);
            }
            Write::Order { id, lines, .. } => {
                let order = api.order(id);
                let mut sent = lines.clone();
                sent.sort();
                assert_eq!(
                    sku_quantities(&order),
                    sent,
                    "order {id} has other lines than sent"
                );
                orders.push(id.clone());
            }
        }
    }

    let mut positions = BTreeMap::new();
    for sku in &world.skus {
        for location in &world.locations {
            let (on_hand, count) = receipts
                .get(&(sku.clone(), location.clone()))
                .copied()
                .unwrap_or((0, 0));
            let pos = eventually(&format!("{sku}@{location} consistent"), || {
                check_position(api, sku, location)
            });
            assert_eq!(
                int(&pos, "on_hand"),
                on_hand,
                "on_hand is the sum of acknowledged receipts: {pos}"
            );
            let ledger = api.ledger(sku, location);
            let receipt_entries = list(&ledger, "entries")
                .iter()
                .filter(|e| e["movement"] == "receipt")
                .count();
            assert_eq!(
                receipt_entries, count,
                "one ledger entry per receipt: {ledger}"
            );
            positions.insert((sku.clone(), location.clone()), pos);
        }
    }
    eventually("orders agree with reservations and backorders", || {
        check_orders_against_inventory(api, &world.skus, &world.locations, &orders)
    });
    positions
}

/// What must not change across a restart of a quiet server.
fn holdings(positions: &BTreeMap<(String, String), Value>) -> Vec<Value> {
    positions
        .iter()
        .map(|((sku, location), pos)| {
            let mut reservations = holders(pos, "reservations");
            reservations.sort();
            json!({"at": format!("{sku}@{location}"), "on_hand": pos["on_hand"],
                   "allocated": pos["allocated"], "reservations": reservations})
        })
        .collect()
}

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
    let acks = AtomicUsize::new(0);

    let outcomes: Vec<Outcome> = thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|client| {
                let (api, world, acks) = (keel.api(), &world, &acks);
                scope.spawn(move || run_client(&api, client, world, acks))
            })
            .collect();
        for count in KILL_AFTER_ACKS {
            wait_for_acks(&acks, count, &clients);
            fault(&mut keel);
        }
        clients
            .into_iter()
            .flat_map(|c| c.join().expect("a client thread panicked"))
            .collect()
    });

    let failed: Vec<String> = outcomes
        .iter()
        .filter(|o| !(200..300).contains(&o.reply.0))
        .map(|o| {
            format!(
                "{:?} after {} attempts: {} {}",
                o.write, o.attempts, o.reply.0, o.reply.1
            )
        })
        .collect();
    assert!(
        failed.is_empty(),
        "writes refused after retrying:\n{}",
        failed.join("\n")
    );
    if interrupts == Interrupts::Requests {
        assert!(
            outcomes.iter().any(|o| o.attempts > 1),
            "no request was interrupted by the faults, so nothing was retried"
        );
    }

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
