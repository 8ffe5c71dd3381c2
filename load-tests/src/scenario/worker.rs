//! One worker thread: draws operations from its [`Workload`], performs them through its own
//! client, measures them, and records what was acknowledged in its [`RunLog`].
//!
//! Ambiguous writes (transport errors, `5xx`) are retried with the same id at once, as the run's
//! [`RetryPolicy`] says (a few quick attempts; under `chaos`, through a restart); those still
//! unknown are parked and retried after the measured window ("settling"). What then
//! remains unknown is recorded as such, and verification accepts either outcome for it.

use std::collections::VecDeque;
use std::thread;
use std::time::{Duration, Instant};

use super::Plan;
use crate::api::{LineRequest, PlaceOrder, Receipt, ShipTo, Step};
use crate::catalog::{Catalog, REGIONS};
use crate::client::{with_retry, CallError, KeelClient, Outcome, RetryPolicy};
use crate::runlog::{CancelState, OrderRecord, RunLog, WalkRecord};
use crate::stats::{bump, record, Board, OpCounts, WorkerStats};
use crate::workload::{Op, Workload};

/// Most recent orders a worker keeps as cancel candidates.
const CANCEL_POOL: usize = 256;
/// Settling rounds after the measured window (pauses 0.2 s, 0.4 s … 3.2 s).
const SETTLE_ROUNDS: u32 = 5;

/// What all workers share.
pub struct Shared<'a> {
    /// The scenario.
    pub plan: &'a Plan,
    /// Where measurements go.
    pub board: &'a Board,
    /// Run seed.
    pub seed: u64,
    /// Start of the measured window.
    pub start: Instant,
    /// End of the measured window.
    pub deadline: Instant,
    /// Open loop: time between a worker's orders.
    pub pace: Option<Duration>,
    /// Number of workers.
    pub workers: usize,
    /// How an ambiguous write is repeated during the load.
    pub retry: RetryPolicy,
}

/// Runs worker `index` until the deadline, settles its ambiguous writes, and answers its log
/// and the moment its load ended.
pub fn run(shared: &Shared<'_>, index: usize, client: Box<dyn KeelClient>) -> (RunLog, Instant) {
    let plan = shared.plan;
    let first_slot = shared.pace.map_or(shared.start, |p| {
        shared.start + p.mul_f64(index as f64 / shared.workers as f64)
    });
    let mut w = Worker {
        s: shared,
        cat: &plan.catalog,
        index,
        client,
        workload: Workload::new(shared.seed, index, plan.mix, plan.lines.clone()),
        log: RunLog::new(plan.catalog.slots()),
        walks: VecDeque::new(),
        cancellable: Vec::new(),
        pending: Vec::new(),
        seq: 0,
        requests: Vec::new(),
        next_slot: first_slot,
    };
    w.load();
    let end = Instant::now();
    w.settle();
    (w.log, end)
}

/// A fulfillment being walked.
#[derive(Debug)]
struct Walk {
    /// Index into the log's orders.
    order: usize,
    /// Index into that order's walk records.
    record: usize,
    fulfillment: String,
    location: usize,
    lines: Vec<(usize, u32)>,
    next: Step,
    placed: Instant,
}

/// An order to place.
#[derive(Debug)]
struct NewOrder {
    id: String,
    channel: usize,
    region: usize,
    lines: Vec<(usize, u32)>,
    /// When it was sent (in open loop: scheduled).
    started: Instant,
    /// Whether to walk its fulfillments.
    walk: bool,
}

/// A receipt to post.
#[derive(Debug)]
struct NewReceipt {
    id: String,
    slot: usize,
    qty: u32,
}

/// A write, as performed (and re-performed while its outcome is unknown).
#[derive(Debug)]
enum Write {
    Place(NewOrder),
    Receipt(NewReceipt),
    Confirm(Walk),
    /// Cancel the order at this index of the log.
    Cancel(usize),
}

struct Worker<'a> {
    s: &'a Shared<'a>,
    cat: &'a Catalog,
    index: usize,
    client: Box<dyn KeelClient>,
    workload: Workload,
    log: RunLog,
    walks: VecDeque<Walk>,
    cancellable: Vec<usize>,
    pending: Vec<Write>,
    seq: u64,
    requests: Vec<LineRequest<'a>>,
    next_slot: Instant,
}

impl<'a> Worker<'a> {
    /// The measured loop.
    fn load(&mut self) {
        while Instant::now() < self.s.deadline {
            // Walks go first: a walked order's fulfillments are confirmed step by step right
            // after it is placed.
            let write = match self.walks.pop_front() {
                Some(walk) => self.advance(walk),
                None => match self.workload.next_op() {
                    Op::Receipt => self.receipt(),
                    Op::Cancel if !self.cancellable.is_empty() => self.cancel(),
                    // Placing, or the drawn operation had no candidate.
                    _ => match self.place() {
                        Some(w) => w,
                        None => break,
                    },
                },
            };
            if let Some(unknown) = self.perform(write, self.s.retry, true) {
                self.pending.push(unknown);
            }
        }
    }

    fn next_id(&mut self, kind: &str) -> String {
        self.seq += 1;
        format!("{}-{kind}{}-{}", self.cat.prefix, self.index, self.seq)
    }

    /// A new order; in open loop, waits for its scheduled time (`None` when that is past the
    /// deadline).
    fn place(&mut self) -> Option<Write> {
        let started = match self.s.pace {
            None => Instant::now(),
            Some(pace) => {
                let slot = self.next_slot;
                if slot >= self.s.deadline {
                    return None;
                }
                self.next_slot += pace;
                let now = Instant::now();
                if slot > now {
                    thread::sleep(slot - now);
                }
                slot
            }
        };
        let mut lines = Vec::new();
        self.workload.order_lines(&mut lines);
        let channel = self.workload.pick(self.cat.channels.len());
        let region = self.workload.pick(REGIONS.len());
        let walk = self.workload.chance(self.s.plan.walk_share);
        Some(Write::Place(NewOrder {
            id: self.next_id("o"),
            channel,
            region,
            lines,
            started,
            walk,
        }))
    }

    fn receipt(&mut self) -> Write {
        let (lo, hi) = self.s.plan.receipt_qty;
        let (sku, qty) = self.workload.receipt(lo, hi);
        let location = self.workload.pick(self.cat.locations.len());
        Write::Receipt(NewReceipt {
            id: self.next_id("r"),
            slot: self.cat.slot(sku, location),
            qty,
        })
    }

    fn cancel(&mut self) -> Write {
        let order = self
            .cancellable
            .swap_remove(self.workload.pick(self.cancellable.len()));
        self.log.orders[order].cancel = CancelState::Unknown;
        Write::Cancel(order)
    }

    fn advance(&mut self, walk: Walk) -> Write {
        self.log.orders[walk.order].walks[walk.record].attempted = Some(walk.next);
        Write::Confirm(walk)
    }

    /// Performs `write` and records its outcome; answers it back when the outcome is unknown.
    /// `live` is false while settling: nothing is measured then, and nothing new is started.
    fn perform(&mut self, write: Write, policy: RetryPolicy, live: bool) -> Option<Write> {
        match write {
            Write::Place(order) => self.place_order(order, policy, live).map(Write::Place),
            Write::Receipt(r) => self.post_receipt(r, policy, live).map(Write::Receipt),
            Write::Confirm(walk) => self.confirm(walk, policy, live).map(Write::Confirm),
            Write::Cancel(order) => self.cancel_order(order, policy, live).map(Write::Cancel),
        }
    }

    /// One call with retries; failed attempts go to the error counters.
    fn call<T>(
        &mut self,
        policy: RetryPolicy,
        f: impl FnMut(&mut (dyn KeelClient + 'static)) -> Result<T, CallError>,
    ) -> Outcome<T> {
        let stats = self.s.board.worker(self.index);
        with_retry(
            self.client.as_mut(),
            policy,
            |e| bump(&mut stats.lock().errors, e.code()),
            f,
        )
    }

    fn place_order(&mut self, o: NewOrder, policy: RetryPolicy, live: bool) -> Option<NewOrder> {
        let cat = self.cat;
        let mut requests = std::mem::take(&mut self.requests);
        requests.clear();
        requests.extend(o.lines.iter().map(|&(sku, q)| LineRequest {
            sku: &cat.skus[sku],
            quantity: q as u64,
        }));
        let req = PlaceOrder {
            id: &o.id,
            channel: &cat.channels[o.channel].id,
            ship_to: ShipTo {
                region: REGIONS[o.region],
            },
            lines: &requests,
        };
        if live {
            self.stats().ops.orders_sent += 1;
        }
        let outcome = self.call(policy, |c| c.place_order(&req));
        self.requests = requests;
        let reply = match outcome {
            Outcome::Done(reply) => reply,
            Outcome::Rejected(_) => {
                self.log.rejected_orders += 1;
                return None;
            }
            Outcome::Unknown(_) => return Some(o),
        };
        {
            let mut st = self.stats();
            if live {
                st.accepted += 1;
                record(&mut st.accept, o.started.elapsed());
                bump(&mut st.accept_statuses, &reply.status);
            } else {
                st.ops.settled_late += 1;
            }
        }
        let at = self.log.orders.len();
        let mut rec = OrderRecord {
            id: o.id,
            channel: o.channel,
            lines: o.lines,
            cancel: CancelState::NotRequested,
            walks: Vec::new(),
        };
        if live && o.walk {
            for f in reply.fulfillments.iter().filter(|f| f.status == "released") {
                let (Some(location), Some(lines)) = (
                    cat.location(&f.location),
                    f.lines
                        .iter()
                        .map(|l| Some((cat.sku(&l.sku)?, l.quantity as u32)))
                        .collect::<Option<Vec<_>>>(),
                ) else {
                    continue; // not from this run's catalog: verification reports it
                };
                rec.walks.push(WalkRecord {
                    fulfillment: f.id.clone(),
                    acked: None,
                    attempted: None,
                });
                self.walks.push_back(Walk {
                    order: at,
                    record: rec.walks.len() - 1,
                    fulfillment: f.id.clone(),
                    location,
                    lines,
                    next: Step::Picked,
                    placed: o.started,
                });
            }
        } else if live {
            self.offer_cancel(at);
        }
        self.log.orders.push(rec);
        None
    }

    fn post_receipt(
        &mut self,
        r: NewReceipt,
        policy: RetryPolicy,
        live: bool,
    ) -> Option<NewReceipt> {
        let cat = self.cat;
        let (sku, loc) = cat.unslot(r.slot);
        let req = Receipt {
            receipt_id: &r.id,
            sku: &cat.skus[sku],
            location: &cat.locations[loc].id,
            quantity: r.qty as u64,
        };
        match self.call(policy, |c| c.receipt(&req)) {
            Outcome::Done(()) => {
                self.log.received[r.slot].acked += r.qty as u64;
                self.count_done(live, |o| o.receipts += 1);
                None
            }
            Outcome::Rejected(_) => None,
            Outcome::Unknown(_) => Some(r),
        }
    }

    fn confirm(&mut self, walk: Walk, policy: RetryPolicy, live: bool) -> Option<Walk> {
        match self.call(policy, |c| c.confirm(&walk.fulfillment, walk.next)) {
            Outcome::Done(()) => {}
            Outcome::Rejected(_) => return None,
            Outcome::Unknown(_) => return Some(walk),
        }
        self.log.orders[walk.order].walks[walk.record].acked = Some(walk.next);
        if walk.next == Step::Shipped {
            for &(sku, q) in &walk.lines {
                self.log.shipped[self.cat.slot(sku, walk.location)].acked += q as u64;
            }
        }
        self.count_done(live, |o| o.confirmations += 1);
        match walk.next.next() {
            None => {
                let mut st = self.stats();
                st.ops.delivered += 1;
                if live {
                    record(&mut st.e2e, walk.placed.elapsed());
                }
            }
            Some(next) if live => self.walks.push_back(Walk { next, ..walk }),
            Some(_) => {}
        }
        None
    }

    fn cancel_order(&mut self, order: usize, policy: RetryPolicy, live: bool) -> Option<usize> {
        let id = self.log.orders[order].id.clone();
        let state = match self.call(policy, |c| c.cancel(&id)) {
            Outcome::Done(()) => {
                self.count_done(live, |o| o.cancels += 1);
                CancelState::Acknowledged
            }
            Outcome::Rejected(_) => CancelState::NotRequested,
            Outcome::Unknown(_) => return Some(order),
        };
        self.log.orders[order].cancel = state;
        None
    }

    /// This worker's measurements.
    fn stats(&self) -> parking_lot::MutexGuard<'a, WorkerStats> {
        self.s.board.worker(self.index).lock()
    }

    /// Counts an acknowledged write: in its counter while live, as settled late otherwise.
    fn count_done(&self, live: bool, count: impl FnOnce(&mut OpCounts)) {
        let mut st = self.stats();
        if live {
            count(&mut st.ops);
        } else {
            st.ops.settled_late += 1;
        }
    }

    /// Keeps `order` as a cancel candidate (a bounded pool of recent orders).
    fn offer_cancel(&mut self, order: usize) {
        if self.cancellable.len() < CANCEL_POOL {
            self.cancellable.push(order);
        } else {
            let i = self.workload.pick(CANCEL_POOL);
            self.cancellable[i] = order;
        }
    }

    /// Retries parked writes with growing pauses; records what stays unknown.
    fn settle(&mut self) {
        let mut pause = Duration::from_millis(200);
        for _ in 0..SETTLE_ROUNDS {
            if self.pending.is_empty() {
                return;
            }
            thread::sleep(pause);
            pause *= 2;
            for write in std::mem::take(&mut self.pending) {
                if let Some(unknown) = self.perform(write, RetryPolicy::ONCE, false) {
                    self.pending.push(unknown);
                }
            }
        }
        let unresolved = self.pending.len() as u64;
        for write in std::mem::take(&mut self.pending) {
            match write {
                Write::Place(o) => self.log.unresolved_orders.push(o.id),
                Write::Receipt(r) => self.log.received[r.slot].unknown += r.qty as u64,
                Write::Confirm(walk) if walk.next == Step::Shipped => {
                    for &(sku, q) in &walk.lines {
                        self.log.shipped[self.cat.slot(sku, walk.location)].unknown += q as u64;
                    }
                }
                // Other steps move no stock; the cancel state is already `Unknown`.
                Write::Confirm(_) | Write::Cancel(_) => {}
            }
        }
        self.stats().ops.unresolved += unresolved;
    }
}
