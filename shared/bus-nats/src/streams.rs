//! The JetStream streams a node relies on, created or updated at connect time.

use crate::Error;
use async_nats::jetstream::{self, stream};
use std::time::{Duration, Instant};

/// One stream: its name, the subjects it captures and how long it keeps them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamSpec {
    /// Stream name (no dots or spaces).
    pub name: String,
    /// Subject patterns the stream captures.
    pub subjects: Vec<String>,
    /// A work queue forgets a message once its consumer acknowledged it (commands); otherwise
    /// messages stay until `max_age` (events a subscriber may replay).
    pub work_queue: bool,
    /// Oldest message kept (zero: no limit).
    pub max_age: Duration,
    /// Window in which a repeated `Nats-Msg-Id` is recognised as a duplicate.
    pub duplicate_window: Duration,
}

impl StreamSpec {
    fn config(&self) -> stream::Config {
        stream::Config {
            name: self.name.clone(),
            subjects: self.subjects.clone(),
            retention: if self.work_queue {
                stream::RetentionPolicy::WorkQueue
            } else {
                stream::RetentionPolicy::Limits
            },
            storage: stream::StorageType::File,
            max_age: self.max_age,
            duplicate_window: self.duplicate_window,
            ..stream::Config::default()
        }
    }
}

/// Creates each stream or updates it to `specs`; retries while JetStream is not up yet (a
/// server that just started may take a moment) until `within` has passed.
pub(crate) async fn ensure(
    jetstream: &jetstream::Context,
    specs: &[StreamSpec],
    within: Duration,
) -> Result<(), Error> {
    let deadline = Instant::now() + within;
    for spec in specs {
        loop {
            match jetstream.create_or_update_stream(spec.config()).await {
                Ok(_) => break,
                Err(e) if Instant::now() < deadline => {
                    tracing::warn!(stream = %spec.name, error = %e, "JetStream not ready; retrying");
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                Err(e) => {
                    return Err(Error::Stream {
                        stream: spec.name.clone(),
                        reason: e.to_string(),
                    })
                }
            }
        }
    }
    Ok(())
}
