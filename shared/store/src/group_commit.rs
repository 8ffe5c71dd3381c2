use crate::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use tokio::sync::oneshot;

type Waiter = oneshot::Sender<Result<(), Error>>;

/// Counters of the group commit, to show how many writers share an fsync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// fsyncs run.
    pub flushes: u64,
    /// Callers of `flush` served by them.
    pub waiters: u64,
}

/// One flusher thread: every waiter queued before a flush starts is served by that flush.
#[derive(Clone)]
pub(crate) struct GroupCommit {
    inner: Arc<Inner>,
}

struct Inner {
    queue: Option<mpsc::Sender<Waiter>>,
    thread: Option<std::thread::JoinHandle<()>>,
    counters: Arc<[AtomicU64; 2]>,
}

impl Drop for Inner {
    /// The last handle closes the queue and waits for the flusher, so the database is released
    /// (and can be reopened) when the store is dropped.
    fn drop(&mut self) {
        self.queue.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl GroupCommit {
    pub(crate) fn start(db: sled::Db) -> GroupCommit {
        let (queue, waiting) = mpsc::channel::<Waiter>();
        let counters: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let stats = Arc::clone(&counters);
        let thread = std::thread::Builder::new()
            .name("keel-flusher".into())
            .spawn(move || {
                // Ends when every handle (and so every sender) is gone.
                while let Ok(first) = waiting.recv() {
                    let mut batch = vec![first];
                    batch.extend(waiting.try_iter());
                    let result = db.flush().map(drop).map_err(|e| e.to_string());
                    stats[0].fetch_add(1, Ordering::Relaxed);
                    stats[1].fetch_add(batch.len() as u64, Ordering::Relaxed);
                    for waiter in batch {
                        // A waiter that gave up (dropped) needs no answer.
                        let _ = waiter.send(result.clone().map_err(Error::Flush));
                    }
                }
            })
            .expect("spawning the flusher thread");
        GroupCommit {
            inner: Arc::new(Inner {
                queue: Some(queue),
                thread: Some(thread),
                counters,
            }),
        }
    }

    pub(crate) async fn flush(&self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let queue = self.inner.queue.as_ref().ok_or(Error::Closed)?;
        queue.send(tx).map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    pub(crate) fn stats(&self) -> FlushStats {
        FlushStats {
            flushes: self.inner.counters[0].load(Ordering::Relaxed),
            waiters: self.inner.counters[1].load(Ordering::Relaxed),
        }
    }
}
