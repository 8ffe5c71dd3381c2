//! A supervised child process on a loopback port: started until its probe passes, signalled,
//! waited for, SIGKILLed and started again on the same port.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::port::{free_port, LOOPBACK};
use crate::probe::Probe;
use crate::signal::{self, Signal};

/// Pause between two readiness checks, and between two looks at a process that should exit.
const POLL: Duration = Duration::from_millis(25);
/// Log lines an [`Error::NotReady`] shows.
const ERROR_TAIL: usize = 30;

/// A process's arguments for the port it is started on.
pub type Args = Box<dyn Fn(u16) -> Vec<OsString> + Send + Sync>;

/// What to run and when it counts as started.
pub struct Spec {
    /// What errors and the log call it (`keel`, `nats-server`).
    pub name: String,
    pub program: PathBuf,
    /// Its arguments for the port it is started on ([`keel_args`](crate::keel_args) for a
    /// Keel node).
    pub args: Args,
    /// Variables set for it on top of this process's environment.
    pub env: Vec<(OsString, OsString)>,
    /// stdout and stderr of every start are appended here (after a line naming the start).
    pub log: PathBuf,
    /// Must pass on its port before a start counts as done.
    pub ready: Probe,
    /// How long a start may take until `ready` passes.
    pub startup: Duration,
}

/// A child process on a port of its own; SIGKILLed and reaped when dropped.
pub struct Process {
    spec: Spec,
    port: u16,
    child: Option<Child>,
    starts: u32,
    /// Whether it ever served on `port`: it then keeps that port for good.
    served: bool,
}

impl Process {
    /// `spec` on a free loopback port, not started yet.
    pub fn new(spec: Spec) -> Result<Process, Error> {
        Ok(Process {
            spec,
            port: free_port()?,
            child: None,
            starts: 0,
            served: false,
        })
    }

    /// Starts the process (SIGKILLing it first if it runs) and returns once its probe passes.
    ///
    /// A start whose log says its port is in use (another process took the port) is tried
    /// again until the deadline: on a fresh port while the process never served, else on the
    /// same one. Any other failure is an [`Error::NotReady`] with the log's tail, and leaves
    /// nothing running.
    pub fn start(&mut self) -> Result<(), Error> {
        self.kill();
        let deadline = Instant::now() + self.spec.startup;
        loop {
            let log_before = fs::metadata(&self.spec.log).map_or(0, |m| m.len() as usize);
            self.spawn()?;
            let Err(e) = self.wait_until(deadline) else {
                self.served = true;
                return Ok(());
            };
            let log = fs::read_to_string(&self.spec.log).unwrap_or_default();
            let this_start = log.get(log_before..).unwrap_or_default();
            if !this_start.contains("in use") || Instant::now() >= deadline {
                return Err(e);
            }
            if !self.served {
                self.port = free_port()?;
            }
            thread::sleep(POLL);
        }
    }

    /// Waits (up to the spec's startup time) until the running process's probe passes, e.g.
    /// once something it depends on is back; SIGKILLs it and fails as [`Process::start`] does
    /// otherwise.
    pub fn wait_ready(&mut self) -> Result<(), Error> {
        self.wait_until(Instant::now() + self.spec.startup)
    }

    /// Replaces the arguments the next start passes.
    pub fn set_args(&mut self, args: impl Fn(u16) -> Vec<OsString> + Send + Sync + 'static) {
        self.spec.args = Box::new(args);
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the running process.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// How many times it was spawned (every try counts).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    pub fn name(&self) -> &str {
        &self.spec.name
    }

    pub fn log_path(&self) -> &Path {
        &self.spec.log
    }

    /// The last `lines` lines of its log (every start's output).
    pub fn log_tail(&self, lines: usize) -> String {
        let log = fs::read_to_string(&self.spec.log).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Sends `signal` to the running process (for [`Signal::Kill`] that is all: use
    /// [`Process::kill`] to reap it too).
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        let pid = self.pid().ok_or_else(|| self.not_running())?;
        signal::send(pid, signal)
    }

    /// SIGKILLs the process (`Child::kill` is SIGKILL on unix) and reaps it; nothing when it
    /// is not running.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, then [`Process::wait_exit`].
    pub fn terminate(&mut self, within: Duration) -> Result<Option<ExitStatus>, Error> {
        self.signal(Signal::Term)?;
        self.wait_exit(within)
    }

    /// Waits up to `within` for the running process to exit; answers how it ended, or `None`
    /// when it was still running (it is then SIGKILLed). Either way it is reaped.
    pub fn wait_exit(&mut self, within: Duration) -> Result<Option<ExitStatus>, Error> {
        let deadline = Instant::now() + within;
        let child = self
            .child
            .as_mut()
            .ok_or_else(|| Error::NotRunning(self.spec.name.clone()))?;
        loop {
            if let Some(status) = child.try_wait().map_err(Error::io("waiting for a child"))? {
                self.child = None;
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Ok(None);
            }
            thread::sleep(POLL);
        }
    }

    /// Whether the process has ended by itself (it is then reaped; `start` runs it again).
    /// True too when it was never started or was killed.
    pub fn has_exited(&mut self) -> Result<bool, Error> {
        let exited = match self.child.as_mut() {
            Some(child) => child
                .try_wait()
                .map_err(Error::io("waiting for a child"))?
                .is_some(),
            None => true,
        };
        if exited {
            self.child = None;
        }
        Ok(exited)
    }

    /// Spawns the process (stdin closed, output appended to the log).
    fn spawn(&mut self) -> Result<(), Error> {
        self.starts += 1;
        let path = &self.spec.log;
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        }
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(Error::io(format!("opening {}", path.display())))?;
        let _ = writeln!(
            log,
            "=== keel-harness: start #{} of {} on {LOOPBACK}:{} ===",
            self.starts, self.spec.name, self.port
        );
        let stderr = log
            .try_clone()
            .map_err(Error::io(format!("opening {}", path.display())))?;
        let child = Command::new(&self.spec.program)
            .args((self.spec.args)(self.port))
            .envs(self.spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .spawn()
            .map_err(Error::io(format!(
                "starting {}",
                self.spec.program.display()
            )))?;
        self.child = Some(child);
        Ok(())
    }

    /// Polls the probe until it passes; SIGKILLs the process and fails when it exits or the
    /// deadline passes first.
    fn wait_until(&mut self, deadline: Instant) -> Result<(), Error> {
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(self.not_ready("not running".into()));
            };
            if let Some(status) = child.try_wait().map_err(Error::io("waiting for a child"))? {
                let why = format!("exited ({status}) before it was ready");
                return Err(self.not_ready(why));
            }
            let last = match self.spec.ready.check(self.port) {
                Ok(()) => return Ok(()),
                Err(last) => last,
            };
            if Instant::now() >= deadline {
                let why = format!("not ready within {:?}; last: {last}", self.spec.startup);
                return Err(self.not_ready(why));
            }
            thread::sleep(POLL);
        }
    }

    /// Kills the process and describes why it did not serve.
    fn not_ready(&mut self, why: String) -> Error {
        self.kill();
        Error::NotReady {
            name: self.spec.name.clone(),
            port: self.port,
            why,
            log: self.spec.log.clone(),
            tail: self.log_tail(ERROR_TAIL),
        }
    }

    fn not_running(&self) -> Error {
        Error::NotRunning(self.spec.name.clone())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        self.kill();
    }
}
