//! The local processes `chaos` owns: a `nats-server` with JetStream and a Keel node on it,
//! each on a free loopback port with its state in one scratch directory, SIGKILLed and
//! restarted on the same port and state.
//!
//! Everything is owned by guards: dropping a [`Cluster`] (at the end of the run, on an error,
//! or while a panic unwinds) kills and reaps both processes, then removes the scratch
//! directory unless it is kept for a post-mortem ([`Cluster::keep`], or during a panic).
//! Ctrl-C in a terminal reaches them too (they stay in the tool's process group); a SIGKILL of
//! the tool itself leaves them running.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};

/// How long a (re)started nats-server may take to greet a client.
const NATS_STARTUP: Duration = Duration::from_secs(15);
/// How long a (re)started Keel node may take to answer `/readyz` with 200 (a debug build
/// recovering a busy store is slow).
const KEEL_STARTUP: Duration = Duration::from_secs(60);
/// Pause between readiness probes.
const PROBE_EVERY: Duration = Duration::from_millis(25);
/// Log lines shown when a process does not come up.
const LOG_TAIL: usize = 30;
/// First starts tried on fresh ports when the chosen one was taken in the meantime.
const PORT_ATTEMPTS: usize = 3;

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
    keel: Service,
    nats: Service,
    scratch: Scratch,
    /// Readiness probes of the node.
    agent: ureq::Agent,
}

impl Cluster {
    /// Starts `nats_bin` (`-js`) and then `keel_bin` on it, and waits until both serve.
    pub fn start(keel_bin: &Path, nats_bin: &Path) -> anyhow::Result<Cluster> {
        let scratch = Scratch::create()?;
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .into();
        let store = scratch.path.join("nats-store");
        let nats = Service::start_on_free_port(NATS_STARTUP, greets, |port| Service {
            role: Role::Nats,
            port,
            program: nats_bin.to_owned(),
            args: os_args(
                &["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"],
                &store,
            ),
            log: scratch.path.join("nats.log"),
            child: None,
            starts: 0,
        })?;
        let data = scratch.path.join("keel-data");
        let nats_url = nats_url(nats.port);
        let ready = |port| readyz(&agent, port);
        let keel = Service::start_on_free_port(KEEL_STARTUP, ready, |port| {
            let mut args = os_args(&["--data-dir"], &data);
            args.extend(
                [
                    "--http-addr",
                    &format!("127.0.0.1:{port}"),
                    "--seed-demo",
                    "false",
                    "--nats",
                    &nats_url,
                ]
                .map(OsString::from),
            );
            Service {
                role: Role::Keel,
                port,
                program: keel_bin.to_owned(),
                args,
                log: scratch.path.join("keel.log"),
                child: None,
                starts: 0,
            }
        })
        .map_err(|e| e.context(format!("nats-server is up at {nats_url}")))?;
        Ok(Cluster {
            keel,
            nats,
            scratch,
            agent,
        })
    }

    /// The NATS server's client URL.
    pub fn nats_url(&self) -> String {
        nats_url(self.nats.port)
    }

    /// The node's HTTP base URL.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.keel.port)
    }

    /// The PID of the running node.
    pub fn keel_pid(&self) -> Option<u32> {
        self.keel.child.as_ref().map(Child::id)
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
            Role::Keel => {
                self.keel.kill();
                self.keel.spawn()?;
                self.keel_ready()
            }
            Role::Nats => {
                self.nats.kill();
                self.nats.spawn()?;
                self.nats.wait(NATS_STARTUP, greets)
            }
        }
    }

    /// Waits until the node answers `/readyz` with 200 (it answers `503` while its NATS
    /// connection is down).
    pub fn keel_ready(&mut self) -> anyhow::Result<()> {
        let agent = &self.agent;
        self.keel.wait(KEEL_STARTUP, |port| readyz(agent, port))
    }
}

/// Whether the node on `port` answers `GET /readyz` with 200.
fn readyz(agent: &ureq::Agent, port: u16) -> bool {
    agent
        .get(format!("http://127.0.0.1:{port}/readyz"))
        .call()
        .is_ok_and(|r| r.status() == 200)
}

/// `nats://127.0.0.1:{port}`.
fn nats_url(port: u16) -> String {
    format!("nats://127.0.0.1:{port}")
}

/// `words` followed by `path`, as process arguments.
fn os_args(words: &[&str], path: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = words.iter().map(OsString::from).collect();
    args.push(path.into());
    args
}

/// One process the tool owns; killed and reaped when dropped.
struct Service {
    role: Role,
    port: u16,
    program: PathBuf,
    args: Vec<OsString>,
    /// stdout and stderr of every start, appended.
    log: PathBuf,
    child: Option<Child>,
    starts: u32,
}

impl Service {
    /// The first start: `make` describes the service on a free port, which serves once
    /// `ready(port)` holds (within `within`); a lost race for the port (another process took
    /// it) is tried again on another.
    fn start_on_free_port(
        within: Duration,
        ready: impl Fn(u16) -> bool,
        make: impl Fn(u16) -> Service,
    ) -> anyhow::Result<Service> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut service = make(free_port()?);
            let log_before = fs::metadata(&service.log).map_or(0, |m| m.len() as usize);
            let started = service.spawn().and_then(|()| service.wait(within, &ready));
            match started {
                Ok(()) => return Ok(service),
                Err(e) => {
                    let log = fs::read_to_string(&service.log).unwrap_or_default();
                    let this_start = log.get(log_before..).unwrap_or_default();
                    if !this_start.contains("in use") || attempt >= PORT_ATTEMPTS {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// Starts the process (stdin closed, output appended to the log).
    fn spawn(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let _ = writeln!(
            log,
            "=== keel-load chaos: start #{} on 127.0.0.1:{} ===",
            self.starts, self.port
        );
        let child = Command::new(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.program.display()))?;
        self.child = Some(child);
        Ok(())
    }

    /// Waits until `ready(port)` holds, failing with the log's tail when the process exits or
    /// `within` passes first.
    fn wait(&mut self, within: Duration, ready: impl Fn(u16) -> bool) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if ready(self.port) {
                return Ok(());
            }
            let exited = match self.child.as_mut() {
                Some(child) => child.try_wait()?.map(|s| s.to_string()),
                None => Some("not running".into()),
            };
            if exited.is_some() || Instant::now() >= deadline {
                let why = exited.map_or(format!("not ready within {within:?}"), |status| {
                    format!("exited ({status})")
                });
                self.kill();
                bail!(
                    "{} on 127.0.0.1:{}: {why}; the end of {}:\n{}",
                    self.role.name(),
                    self.port,
                    self.log.display(),
                    tail(&self.log, LOG_TAIL)
                );
            }
            thread::sleep(PROBE_EVERY);
        }
    }

    /// SIGKILLs the process (`Child::kill` is SIGKILL on unix) and reaps it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
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

/// A loopback port nobody listened on a moment ago.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// Whether a NATS server on `port` sends its `INFO` greeting.
fn greets(port: u16) -> bool {
    let Ok(stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut line = String::new();
    BufReader::new(stream).read_line(&mut line).is_ok() && line.starts_with("INFO")
}

/// The last `lines` lines of the file at `path`.
fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The program to run for `bin`: a path as given (anything with a `/`), else the first
/// executable of that name on `PATH`, then in `/usr/sbin` (where Debian puts nats-server).
pub fn find_program(bin: &Path) -> Option<PathBuf> {
    if bin.components().count() > 1 {
        return is_executable(bin).then(|| bin.to_owned());
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join(bin))
        .find(|candidate| is_executable(candidate))
}

/// Whether `path` is an executable file.
pub fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn programs_are_found_by_path_or_name() {
        assert_eq!(
            find_program(Path::new("sh")).map(|p| p.is_absolute()),
            Some(true)
        );
        assert_eq!(
            find_program(Path::new("/bin/sh")),
            Some(PathBuf::from("/bin/sh"))
        );
        assert_eq!(find_program(Path::new("no-such-program-keel-load")), None);
        assert_eq!(find_program(Path::new("./no/such/program")), None);
    }

    #[test]
    fn a_process_that_exits_is_reported_with_its_log() {
        let scratch = Scratch::create().unwrap();
        let dir = scratch.path.clone();
        let err = Service::start_on_free_port(
            Duration::from_secs(5),
            |_| false,
            |port| Service {
                role: Role::Nats,
                port,
                program: "/bin/sh".into(),
                args: os_args(&["-c", "echo it broke; exit 3", "sh"], &dir),
                log: dir.join("nats.log"),
                child: None,
                starts: 0,
            },
        )
        .err()
        .expect("started");
        let msg = format!("{err:#}");
        assert!(msg.contains("exited") && msg.contains("it broke"), "{msg}");
        drop(scratch);
        assert!(!dir.exists());
    }
}
