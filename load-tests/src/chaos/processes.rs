//! The local processes `chaos` owns: a `nats-server` with JetStream and a Keel node on it,
//! each on a free loopback port with its state in one scratch directory, SIGKILLed and
//! restarted on the same port and state. The mechanics are `keel-harness`'s (shared with the
//! black-box tests); what is chaos's own is here: which processes, their roles, where the
//! scratch directory is and when it is kept.
//!
//! Everything is owned by guards: dropping a [`Cluster`] (at the end of the run, on an error,
//! or while a panic unwinds) kills and reaps both processes, then removes the scratch
//! directory unless it is kept for a post-mortem ([`Cluster::keep`], or during a panic).
//! Ctrl-C in a terminal reaches them too (they stay in the tool's process group); a SIGKILL of
//! the tool itself leaves them running.

use std::fs;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use keel_harness::{keel_args, NatsServer, Probe, Process, Spec, LOOPBACK};

pub use keel_harness::is_executable;

/// How long a (re)started Keel node may take to answer `/readyz` with 200 (a debug build
/// recovering a busy store is slow).
const KEEL_STARTUP: Duration = Duration::from_secs(60);

/// Which process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The Keel node.
    Keel,
    /// The NATS server.
    Nats,
}

impl Role {
    /// The name in the report and the logs.
    pub fn name(self) -> &'static str {
        match self {
            Role::Keel => "keel",
            Role::Nats => "nats-server",
        }
    }
}

/// A nats-server and a Keel node on it, on loopback.
pub struct Cluster {
    // Fields drop in this order: the node before its server, both before their directory.
    keel: Process,
    nats: NatsServer,
    scratch: Scratch,
}

impl Cluster {
    /// Starts `nats_bin` (`-js`) and then `keel_bin` on it, and waits until both serve.
    pub fn start(keel_bin: &Path, nats_bin: &Path) -> anyhow::Result<Cluster> {
        let scratch = Scratch::create()?;
        let nats = NatsServer::start_in(nats_bin, &scratch.path, "")?;
        let nats_url = nats.url();
        let data = scratch.path.join("keel-data");
        let mut keel = Process::new(Spec {
            name: Role::Keel.name().into(),
            program: keel_bin.to_owned(),
            args: Box::new(keel_args(&data, Some(&nats_url), &[])),
            env: Vec::new(),
            log: scratch.path.join("keel.log"),
            ready: Probe::http("/readyz"),
            startup: KEEL_STARTUP,
        })?;
        keel.start()
            .with_context(|| format!("nats-server is up at {nats_url}"))?;
        Ok(Cluster {
            keel,
            nats,
            scratch,
        })
    }

    /// The NATS server's client URL.
    pub fn nats_url(&self) -> String {
        self.nats.url()
    }

    /// The node's HTTP base URL.
    pub fn http_url(&self) -> String {
        format!("http://{LOOPBACK}:{}", self.keel.port())
    }

    /// The PID of the running node.
    pub fn keel_pid(&self) -> Option<u32> {
        self.keel.pid()
    }

    /// Where the logs and state are.
    pub fn dir(&self) -> &Path {
        &self.scratch.path
    }

    /// Keeps the scratch directory (logs, store) after the run.
    pub fn keep(&mut self) {
        self.scratch.keep = true;
    }

    /// SIGKILLs `role`'s process and starts it again on the same port and state; returns once
    /// the restarted process serves (nats-server greets, the node answers `/readyz` 200).
    pub fn kill_and_restart(&mut self, role: Role) -> anyhow::Result<()> {
        match role {
            Role::Keel => self.keel.start()?,
            Role::Nats => self.nats.restart()?,
        }
        Ok(())
    }

    /// Waits until the node answers `/readyz` with 200 (it answers `503` while its NATS
    /// connection is down).
    pub fn keel_ready(&mut self) -> anyhow::Result<()> {
        Ok(self.keel.wait_ready()?)
    }
}

/// A directory of the run's own under the system temp dir, removed when dropped unless kept.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Scratch {
    fn create() -> anyhow::Result<Scratch> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos();
        let path =
            std::env::temp_dir().join(format!("keel-load-chaos-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).with_context(|| format!("creating {}", path.display()))?;
        Ok(Scratch { path, keep: false })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep || thread::panicking() {
            eprintln!(
                "keel-load: chaos: logs and state kept in {}",
                self.path.display()
            );
        } else {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// The program to run for `bin`: a path as given (anything with a `/`), else the first
/// executable of that name on `PATH`, then in `/usr/sbin` (where Debian puts nats-server).
pub fn find_program(bin: &Path) -> Option<PathBuf> {
    keel_harness::find_program(bin, &[Path::new("/usr/sbin")])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scratch_directory_goes_unless_kept() {
        let scratch = Scratch::create().unwrap();
        let dir = scratch.path.clone();
        assert!(dir.is_dir());
        drop(scratch);
        assert!(!dir.exists());
        let mut kept = Scratch::create().unwrap();
        kept.keep = true;
        let dir = kept.path.clone();
        drop(kept);
        assert!(dir.is_dir());
        fs::remove_dir_all(dir).unwrap();
    }
}
