//! Command batches to other nodes, coalesced per target partition: at most [`IN_FLIGHT`]
//! requests to a partition are on their way at once, and what callers hand in meanwhile goes
//! together in the next one. A quiet node sends each caller's commands at once; a busy one
//! sends a partition one message per round trip and slot, whatever number of sagas and relay
//! shards feed it. Each caller's commands stay together and in order, and a caller sends a
//! target's next command only after the previous one was answered, so several requests in
//! flight never reorder a target's commands.

use crate::Error;
use parking_lot::Mutex;
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Requests to one partition on their way at once, at most.
const IN_FLIGHT: usize = 4;
/// The most bytes of commands one request carries (NATS' default limit is 1 MiB); a single
/// caller's commands always go whole.
const BATCH_BYTES: usize = 256 * 1024;

/// What one caller hands in: its commands (id and JSON) and where their outcomes (`T`) go.
pub(crate) struct Caller<T> {
    pub commands: Vec<(String, Vec<u8>)>,
    pub answer: oneshot::Sender<Result<Vec<T>, Error>>,
}

/// One partition's waiting callers and requests on their way.
struct Queue<T> {
    waiting: Vec<Caller<T>>,
    in_flight: usize,
}

/// The outgoing command batches of a node, whose commands answer a `T` each.
pub(crate) struct Batches<T> {
    partitions: Mutex<HashMap<u32, Queue<T>>>,
}

impl<T> Default for Batches<T> {
    fn default() -> Self {
        Batches {
            partitions: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Batches<T> {
    /// Queues a caller for `partition`; answers whether the caller must start a sender for it
    /// (a request slot is free).
    pub(crate) fn queue(&self, partition: u32, caller: Caller<T>) -> bool {
        let mut partitions = self.partitions.lock();
        let queue = partitions.entry(partition).or_insert_with(|| Queue {
            waiting: Vec::new(),
            in_flight: 0,
        });
        queue.waiting.push(caller);
        let start = queue.in_flight < IN_FLIGHT;
        if start {
            queue.in_flight += 1;
        }
        start
    }

    /// The callers to send to `partition` next (whole ones, up to [`BATCH_BYTES`]), or `None`
    /// when none wait, which ends the asking sender (its slot is free again).
    pub(crate) fn take(&self, partition: u32) -> Option<Vec<Caller<T>>> {
        let mut partitions = self.partitions.lock();
        let queue = partitions.get_mut(&partition)?;
        if queue.waiting.is_empty() {
            queue.in_flight -= 1;
            if queue.in_flight == 0 {
                partitions.remove(&partition);
            }
            return None;
        }
        let mut bytes = 0;
        let whole = queue
            .waiting
            .iter()
            .take_while(|caller| {
                let size: usize = caller.commands.iter().map(|(_, json)| json.len()).sum();
                let fits = bytes == 0 || bytes + size <= BATCH_BYTES;
                bytes += size;
                fits
            })
            .count();
        Some(queue.waiting.drain(..whole.max(1)).collect())
    }
}

/// One request's body (a JSON array) and ids, from `callers`' commands in order.
pub(crate) fn request<T>(callers: &[Caller<T>]) -> (Vec<u8>, Vec<&str>) {
    let mut payload = vec![b'['];
    let mut ids = Vec::new();
    for (id, json) in callers.iter().flat_map(|c| &c.commands) {
        if !ids.is_empty() {
            payload.push(b',');
        }
        payload.extend_from_slice(json);
        ids.push(id.as_str());
    }
    payload.push(b']');
    (payload, ids)
}

/// Hands each caller its share of a request's outcomes (in order), or the request's error.
pub(crate) fn answer<T>(callers: Vec<Caller<T>>, sent: Result<Vec<T>, Error>) {
    match sent {
        Err(e) => {
            for caller in callers {
                let _ = caller.answer.send(Err(e.clone()));
            }
        }
        Ok(outcomes) => {
            let mut outcomes = outcomes.into_iter();
            for caller in callers {
                let mine = outcomes.by_ref().take(caller.commands.len()).collect();
                let _ = caller.answer.send(Ok(mine));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<(), Error>;

    fn caller(
        ids: &[&str],
        size: usize,
    ) -> (
        Caller<Outcome>,
        oneshot::Receiver<Result<Vec<Outcome>, Error>>,
    ) {
        let (answer, receiver) = oneshot::channel();
        let commands = ids
            .iter()
            .map(|id| ((*id).to_owned(), vec![b'x'; size]))
            .collect();
        (Caller { commands, answer }, receiver)
    }

    #[test]
    fn callers_coalesce_once_every_slot_is_busy_and_keep_their_order() {
        let batches = Batches::<Outcome>::default();
        for n in 0..IN_FLIGHT {
            assert!(
                batches.queue(7, caller(&[&format!("c{n}")], 10).0),
                "slot {n} free"
            );
        }
        assert!(
            !batches.queue(7, caller(&["late-1", "late-2"], 10).0),
            "every slot busy"
        );
        assert!(!batches.queue(7, caller(&["later"], 10).0));
        // The four senders each take what waits; the first takes everything so far, in order.
        let first = batches.take(7).expect("callers wait");
        let (payload, ids) = request(&first);
        assert_eq!(ids.len(), IN_FLIGHT + 3);
        assert!(ids.ends_with(&["late-1", "late-2", "later"]));
        assert_eq!(payload.first(), Some(&b'['));
        assert_eq!(payload.last(), Some(&b']'));
        for _ in 0..IN_FLIGHT {
            assert!(batches.take(7).is_none(), "nothing left: the sender stops");
        }
        assert!(
            batches.queue(7, caller(&["again"], 10).0),
            "all slots free again"
        );
    }

    #[test]
    fn a_request_holds_whole_callers_up_to_the_byte_limit_and_each_gets_its_share() {
        let batches = Batches::<Outcome>::default();
        let (big, big_answer) = caller(&["b1", "b2"], BATCH_BYTES / 2);
        let (small, small_answer) = caller(&["s1"], 10);
        assert!(batches.queue(1, big));
        assert!(batches.queue(1, small));
        let first = batches.take(1).expect("waiting");
        assert_eq!(
            first.len(),
            1,
            "the second caller does not fit beside the first"
        );
        let second = batches.take(1).expect("the rest");
        answer(first, Ok(vec![Ok(()), Err(Error::Unavailable("x".into()))]));
        answer(second, Err(Error::Unavailable("no answer".into())));
        let big = big_answer.blocking_recv().expect("answered").expect("sent");
        assert!(
            big[0].is_ok() && big[1].is_err(),
            "its own two outcomes, in order"
        );
        assert!(small_answer.blocking_recv().expect("answered").is_err());
    }
}
