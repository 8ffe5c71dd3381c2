//! Where a node's time comes from: hold expiry and every timer are measured against a
//! [`Clock`], so that tests move time on instead of sleeping.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// The time now.
    fn now_ms(&self) -> u64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }
}

/// A clock that stands still until it is set or advanced (tests in the same process).
#[derive(Debug, Clone, Default)]
pub struct ManualClock(Arc<AtomicU64>);

impl ManualClock {
    /// A clock standing at `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        ManualClock(Arc::new(AtomicU64::new(now_ms)))
    }

    /// Moves the clock on by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// A clock read from a file holding milliseconds since the Unix epoch, which a test rewrites
/// to move the time of a node running in another process (`--clock-file`). While the file is
/// missing or unreadable the system clock is used.
#[derive(Debug, Clone)]
pub struct FileClock(PathBuf);

impl FileClock {
    /// The clock kept in `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        FileClock(path.into())
    }
}

impl Clock for FileClock {
    fn now_ms(&self) -> u64 {
        std::fs::read_to_string(&self.0)
            .ok()
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or_else(|| SystemClock.now_ms())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_clock_reads_its_file_and_falls_back_to_the_system_clock() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("now");
        let clock = FileClock::new(&path);
        assert!(clock.now_ms() > 1_600_000_000_000, "no file: system time");
        std::fs::write(&path, "42\n").unwrap();
        assert_eq!(clock.now_ms(), 42);
        let manual = ManualClock::at(5);
        manual.advance(10);
        assert_eq!(manual.now_ms(), 15);
    }
}
