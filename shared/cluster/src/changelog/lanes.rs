//! The changelog writer's bookkeeping, kept free of I/O so it can be tested alone: records
//! queued per lane in append order, at most one batch in flight per lane (each batch names the
//! subject sequence it follows, which is what fences a stale writer), and the watermark below
//! which every record is durable.

use keel_store::Lane;
use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long records nobody waits for may wait for a batch to ride along with.
pub(crate) const UNWAITED_DELAY: Duration = Duration::from_millis(500);

/// A batch is cut at this many bytes of records (well under NATS' 1 MiB message limit).
pub(crate) const MAX_BATCH_BYTES: usize = 512 * 1024;

/// One batch to publish on a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Batch {
    pub lane: Lane,
    /// The owner's epoch, stamped on the message.
    pub epoch: u64,
    /// The subject sequence this batch must follow.
    pub after: u64,
    /// The number of its last waited-for record (`None`: it carries only unwaited ones).
    pub last: Option<u64>,
    /// `Nats-Msg-Id`: the same on a retry, so a batch that landed is recognised.
    pub id: String,
    /// The records, concatenated (journal records concatenate into one).
    pub payload: Vec<u8>,
}

#[derive(Debug, Default)]
struct LaneState {
    /// `Some((epoch, last subject sequence))` once this node owns the lane.
    open: Option<(u64, u64)>,
    queue: VecDeque<(u64, Vec<u8>)>,
    /// Records nobody waits for (deliveries of outbox entries), and since when the oldest
    /// waits: they ride with the next batch, or go alone after [`UNWAITED_DELAY`].
    unwaited: Vec<u8>,
    unwaited_since: Option<Instant>,
    in_flight: Option<Batch>,
    /// Who waits for the lane's records below a number to land.
    waiters: Vec<(u64, oneshot::Sender<()>)>,
    /// Batches taken so far (names each batch's message id).
    batches: u64,
    /// Bytes of the lane's messages after its snapshot, as far as this writer knows, and the
    /// size of that snapshot: what decides when the next one is due.
    tail: u64,
    snapshot: u64,
}

/// Every lane's queue.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    next: u64,
    lanes: BTreeMap<Lane, LaneState>,
}

impl Lanes {
    /// Queues a record on an open lane; answers its number.
    ///
    /// # Errors
    /// The reason, when this node does not own `lane` (never opened, or closed).
    pub(crate) fn append(&mut self, lane: Lane, record: Vec<u8>) -> Result<u64, String> {
        let state = self.lanes.entry(lane).or_default();
        if state.open.is_none() {
            return Err(format!("{} is not owned by this node", lane_token(lane)));
        }
        let number = self.next;
        self.next += 1;
        state.queue.push_back((number, record));
        Ok(number)
    }

    /// Queues a record nobody waits for, on an open lane (dropped otherwise: its lane has a
    /// new owner, who delivers the entry once more). It must not depend on a record still
    /// queued (it may be sent first): a delivery follows the durable entry it deletes.
    pub(crate) fn append_unwaited(&mut self, lane: Lane, record: Vec<u8>, now: Instant) {
        let state = self.lanes.entry(lane).or_default();
        if state.open.is_some() {
            state.unwaited.extend_from_slice(&record);
            state.unwaited_since.get_or_insert(now);
        }
    }

    /// The number the next record will get: every record below it was appended before.
    pub(crate) fn appended(&self) -> u64 {
        self.next
    }

    /// Lets this node publish on `lane` at `epoch`, following subject sequence `last`.
    pub(crate) fn open(&mut self, lane: Lane, epoch: u64, last: u64) {
        let state = self.lanes.entry(lane).or_default();
        state.open = Some((epoch, last));
        state.in_flight = None;
    }

    /// Stops writing `lane` (its partition is handed off): later appends are refused. Its
    /// last subject sequence, if it was open with nothing left to send.
    pub(crate) fn close(&mut self, lane: Lane) -> Option<u64> {
        let state = self.lanes.remove(&lane)?;
        let (_, last) = state.open?;
        (state.queue.is_empty() && state.in_flight.is_none()).then_some(last)
    }

    /// The lanes holding records that wait to be sent.
    pub(crate) fn with_records(&self) -> impl Iterator<Item = Lane> + '_ {
        self.lanes
            .iter()
            .filter(|(_, s)| !s.queue.is_empty())
            .map(|(lane, _)| *lane)
    }

    /// Stamps `lane`'s batches from now on with `epoch`.
    pub(crate) fn set_epoch(&mut self, lane: Lane, epoch: u64) {
        if let Some(state) = self.lanes.get_mut(&lane) {
            if let Some((_, last)) = state.open {
                state.open = Some((epoch, last));
            }
        }
    }

    /// The lanes this node may write, with their epochs and last subject sequences.
    pub(crate) fn heads(&self) -> BTreeMap<Lane, (u64, u64)> {
        self.lanes
            .iter()
            .filter_map(|(lane, s)| s.open.map(|open| (*lane, open)))
            .collect()
    }

    /// The lanes holding records this node may not publish (it does not own them).
    pub(crate) fn unowned_with_records(&self) -> impl Iterator<Item = Lane> + '_ {
        self.lanes
            .iter()
            .filter(|(_, s)| s.open.is_none() && !s.queue.is_empty())
            .map(|(lane, _)| *lane)
    }

    /// The batches to send now: one per open lane that `may_send` allows, with nothing in
    /// flight and records to send (waited-for ones, or unwaited ones older than
    /// [`UNWAITED_DELAY`]).
    pub(crate) fn take_batches(
        &mut self,
        writer: &str,
        now: Instant,
        may_send: impl Fn(Lane) -> bool,
    ) -> Vec<Batch> {
        let mut batches = Vec::new();
        for (lane, state) in &mut self.lanes {
            let (Some((epoch, after)), None) = (state.open, &state.in_flight) else {
                continue;
            };
            if !may_send(*lane) {
                continue;
            }
            let due = state
                .unwaited_since
                .is_some_and(|since| now.duration_since(since) >= UNWAITED_DELAY);
            if state.queue.is_empty() && !due {
                continue;
            }
            let mut payload = std::mem::take(&mut state.unwaited);
            state.unwaited_since = None;
            let mut last = None;
            for (number, record) in &state.queue {
                if last.is_some() && payload.len() + record.len() > MAX_BATCH_BYTES {
                    break;
                }
                payload.extend_from_slice(record);
                last = Some(*number);
            }
            state.batches += 1;
            let batch = Batch {
                lane: *lane,
                epoch,
                after,
                last,
                id: format!("{writer}.{epoch}.{}.{}", lane_token(*lane), state.batches),
                payload,
            };
            state.in_flight = Some(batch.clone());
            batches.push(batch);
        }
        batches
    }

    /// The batch in flight on `lane` landed at subject sequence `sequence`.
    pub(crate) fn landed(&mut self, lane: Lane, sequence: u64) {
        let Some(state) = self.lanes.get_mut(&lane) else {
            return;
        };
        let Some(batch) = state.in_flight.take() else {
            return;
        };
        while state
            .queue
            .front()
            .is_some_and(|(n, _)| batch.last.is_some_and(|last| *n <= last))
        {
            state.queue.pop_front();
        }
        if let Some((epoch, _)) = state.open {
            state.open = Some((epoch, sequence));
        }
        state.tail += batch.payload.len() as u64;
        let below = state.queue.front().map_or(self.next, |(n, _)| *n);
        let (landed, waiting) = std::mem::take(&mut state.waiters)
            .into_iter()
            .partition(|(target, _)| *target <= below);
        state.waiters = waiting;
        for (_, waiter) in landed {
            let _ = waiter.send(());
        }
    }

    /// `None` when every record of `lane` numbered below `target` is in the changelog, else
    /// what resolves once they landed (or the lane was closed).
    pub(crate) fn wait_on(&mut self, lane: Lane, target: u64) -> Option<oneshot::Receiver<()>> {
        if self.durable_below_on(lane) >= target {
            return None;
        }
        let (waiter, landed) = oneshot::channel();
        self.lanes.get_mut(&lane)?.waiters.push((target, waiter));
        Some(landed)
    }

    /// Notes what a restore found of `lane`: `tail` bytes after a snapshot of `snapshot` bytes.
    pub(crate) fn restored(&mut self, lane: Lane, tail: u64, snapshot: u64) {
        if let Some(state) = self.lanes.get_mut(&lane) {
            (state.tail, state.snapshot) = (tail, snapshot);
        }
    }

    /// The open partition lanes due for a snapshot (at least `min` bytes, and at least their
    /// last snapshot's size, written after it), each with its tail so far.
    pub(crate) fn due_snapshots(&self, min: u64) -> Vec<(Lane, u64)> {
        self.lanes
            .iter()
            .filter(|(lane, s)| {
                matches!(lane, Lane::Partition(_))
                    && s.open.is_some()
                    && s.tail >= min.max(s.snapshot)
            })
            .map(|(lane, s)| (*lane, s.tail))
            .collect()
    }

    /// A snapshot of `lane` of `snapshot` bytes folded at least the `tail` bytes it had then.
    /// (`None`: no snapshot was made, and the lane waits for as much again).
    pub(crate) fn snapshotted(&mut self, lane: Lane, tail: u64, snapshot: Option<u64>) {
        if let Some(state) = self.lanes.get_mut(&lane) {
            state.tail = state.tail.saturating_sub(tail);
            state.snapshot = snapshot.unwrap_or(state.snapshot);
        }
    }

    /// The batch in flight on `lane` did not land; it is to be sent again as it was.
    pub(crate) fn retry(&mut self, lane: Lane) -> Option<Batch> {
        self.lanes.get(&lane)?.in_flight.clone()
    }

    /// Every record of `lane` numbered below this is in the changelog.
    pub(crate) fn durable_below_on(&self, lane: Lane) -> u64 {
        self.lanes
            .get(&lane)
            .and_then(|s| s.queue.front().map(|(n, _)| *n))
            .unwrap_or(self.next)
    }

    /// Every record numbered below this is in the changelog.
    pub(crate) fn durable_below(&self) -> u64 {
        self.lanes
            .values()
            .filter_map(|s| s.queue.front().map(|(n, _)| *n))
            .min()
            .unwrap_or(self.next)
    }
}

/// A lane's last subject token: the partition number, or `catalog`.
pub(crate) fn lane_token(lane: Lane) -> String {
    match lane {
        Lane::Partition(p) => p.to_string(),
        Lane::Catalog => "catalog".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_is_due_once_its_lane_wrote_as_much_as_the_last_one_holds() {
        let mut lanes = Lanes::default();
        let p = Lane::Partition(1);
        lanes.open(p, 1, 0);
        lanes.open(Lane::Catalog, 0, 0);
        lanes.restored(p, 30, 100);
        let land = |lanes: &mut Lanes, lane, bytes: &[u8]| {
            lanes.append(lane, bytes.to_vec()).unwrap();
            lanes.take_batches("n", Instant::now(), |_| true);
            lanes.landed(lane, 1);
        };
        land(&mut lanes, Lane::Catalog, &[0; 200]);
        assert!(lanes.due_snapshots(50).is_empty(), "the catalog has none");
        land(&mut lanes, p, &[0; 60]);
        assert!(
            lanes.due_snapshots(50).is_empty(),
            "90 written after 100 held"
        );
        land(&mut lanes, p, &[0; 10]);
        assert_eq!(lanes.due_snapshots(50), vec![(p, 100)]);
        land(&mut lanes, p, &[0; 5]);
        lanes.snapshotted(p, 100, Some(20));
        assert!(lanes.due_snapshots(50).is_empty(), "5 written after it");
        land(&mut lanes, p, &[0; 45]);
        assert_eq!(
            lanes.due_snapshots(50),
            vec![(p, 50)],
            "the floor when it is small"
        );
    }

    #[test]
    fn a_wait_on_one_lane_ends_when_that_lane_landed_whatever_the_others_hold() {
        let mut lanes = Lanes::default();
        let (a, b) = (Lane::Partition(1), Lane::Partition(2));
        lanes.open(a, 1, 0);
        lanes.open(b, 1, 0);
        lanes.append(b, b"slow".to_vec()).unwrap();
        lanes.append(a, b"fast".to_vec()).unwrap();
        let target = lanes.appended();
        let mut on_a = lanes.wait_on(a, target).expect("a's record is not in yet");
        let mut on_b = lanes.wait_on(b, target).expect("b's record is not in yet");
        lanes.take_batches("n", Instant::now(), |_| true);
        lanes.landed(a, 5);
        assert_eq!(on_a.try_recv(), Ok(()));
        assert!(on_b.try_recv().is_err(), "b's batch is still in flight");
        assert!(
            lanes.wait_on(a, target).is_none(),
            "a is durable up to the target"
        );
        assert_eq!(
            lanes.durable_below(),
            0,
            "b holds the node-wide watermark back"
        );
        lanes.landed(b, 6);
        assert_eq!(on_b.try_recv(), Ok(()));
        assert_eq!(lanes.durable_below(), target);
    }

    #[test]
    fn a_lane_sends_one_batch_at_a_time_and_resumes_from_its_ack() {
        let mut lanes = Lanes::default();
        let p = Lane::Partition(3);
        let now = Instant::now();
        assert!(lanes.append(p, b"a".to_vec()).is_err(), "not open yet");
        lanes.open(p, 2, 10);
        lanes.append(p, b"a".to_vec()).unwrap();
        assert!(lanes.take_batches("n", now, |_| false).is_empty(), "fenced");
        lanes.append(p, b"b".to_vec()).unwrap();
        lanes.append_unwaited(p, b"u".to_vec(), now);
        let first = lanes.take_batches("n", now, |_| true);
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].after, first[0].last, &first[0].payload[..]),
            (10, Some(1), &b"uab"[..]),
            "an unwaited record rides along"
        );
        assert_eq!(first[0].id, "n.2.3.1");
        lanes.append(p, b"c".to_vec()).unwrap();
        assert!(
            lanes.take_batches("n", now, |_| true).is_empty(),
            "one in flight per lane"
        );
        assert_eq!(lanes.durable_below(), 0);
        assert_eq!(lanes.retry(p), Some(first[0].clone()));
        lanes.landed(p, 17);
        assert_eq!(lanes.durable_below(), 2);
        let second = lanes.take_batches("n", now, |_| true);
        assert_eq!((second[0].after, &second[0].payload[..]), (17, &b"c"[..]));
        lanes.landed(p, 18);
        assert_eq!(lanes.durable_below(), 3);
        assert_eq!(lanes.heads()[&p], (2, 18));
        lanes.set_epoch(p, 4);
        assert_eq!(
            lanes.heads()[&p],
            (4, 18),
            "the chain goes on at the new epoch"
        );
    }

    #[test]
    fn the_watermark_waits_for_the_slowest_lane() {
        let mut lanes = Lanes::default();
        let (a, b) = (Lane::Partition(0), Lane::Catalog);
        lanes.open(a, 1, 0);
        lanes.open(b, 1, 0);
        lanes.append(a, b"x".to_vec()).unwrap();
        lanes.append(b, b"y".to_vec()).unwrap();
        lanes.take_batches("n", Instant::now(), |_| true);
        lanes.landed(b, 1);
        assert_eq!(lanes.durable_below(), 0, "record 0 on lane a is not in yet");
        lanes.landed(a, 2);
        assert_eq!(lanes.durable_below(), 2);
    }

    #[test]
    fn batches_are_cut_by_size() {
        let mut lanes = Lanes::default();
        let p = Lane::Partition(0);
        lanes.open(p, 1, 0);
        for _ in 0..3 {
            lanes.append(p, vec![0; MAX_BATCH_BYTES / 2 + 1]).unwrap();
        }
        let batch = lanes.take_batches("n", Instant::now(), |_| true).remove(0);
        assert_eq!(batch.last, Some(0), "two would exceed the limit");
    }

    #[test]
    fn unwaited_records_go_alone_only_after_a_delay_and_hold_up_nobody() {
        let mut lanes = Lanes::default();
        let p = Lane::Partition(1);
        let now = Instant::now();
        lanes.open(p, 1, 5);
        lanes.append_unwaited(p, b"d".to_vec(), now);
        assert!(
            lanes.take_batches("n", now, |_| true).is_empty(),
            "not due yet"
        );
        assert_eq!(
            lanes.durable_below(),
            0,
            "nothing anybody waits for is pending"
        );
        let alone = lanes.take_batches("n", now + UNWAITED_DELAY, |_| true);
        assert_eq!((alone[0].last, &alone[0].payload[..]), (None, &b"d"[..]));
        lanes.landed(p, 6);
        assert_eq!(lanes.heads()[&p], (1, 6));
    }

    #[test]
    fn a_closed_lane_refuses_records_and_drops_unwaited_ones() {
        let mut lanes = Lanes::default();
        let p = Lane::Partition(2);
        let now = Instant::now();
        lanes.open(p, 1, 5);
        lanes.append(p, b"x".to_vec()).unwrap();
        assert_eq!(lanes.with_records().collect::<Vec<_>>(), [p]);
        lanes.take_batches("n", now, |_| true);
        lanes.landed(p, 6);
        assert_eq!(lanes.close(p), Some(6), "nothing left: handed off at 6");
        assert!(lanes.append(p, b"y".to_vec()).is_err());
        lanes.append_unwaited(p, b"d".to_vec(), now);
        assert!(lanes
            .take_batches("n", now + UNWAITED_DELAY, |_| true)
            .is_empty());
        assert_eq!(lanes.durable_below(), lanes.appended());
    }
}
