//! A `nats-server` with JetStream, restarted on the same port and store.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::Error;
use crate::port::{free_port, LOOPBACK};
use crate::probe::Probe;
use crate::process::{Process, Spec};

/// How long a (re)started server may take to greet a client.
const STARTUP: Duration = Duration::from_secs(15);

/// A running `nats-server -js` on a free loopback port, with an HTTP monitoring port; its
/// files are in a directory of the caller's: `nats.log` (every start appends), the JetStream
/// store `nats-store/` and `nats.conf` when it has one. SIGKILLed and reaped when dropped.
pub struct NatsServer {
    process: Process,
    monitor_port: u16,
    dir: PathBuf,
}

impl NatsServer {
    /// Starts `program` (nats-server 2.10+) with its files in `dir` (created if missing) and
    /// `config` as its configuration file (e.g. ping settings; empty: none, the server's
    /// defaults); returns once it greets a client.
    pub fn start_in(program: &Path, dir: &Path, config: &str) -> Result<NatsServer, Error> {
        fs::create_dir_all(dir).map_err(Error::io(format!("creating {}", dir.display())))?;
        let mut config_args: Vec<OsString> = Vec::new();
        if !config.is_empty() {
            // nats-server refuses an empty configuration file.
            let conf = dir.join("nats.conf");
            fs::write(&conf, config).map_err(Error::io(format!("writing {}", conf.display())))?;
            config_args = vec!["-c".into(), conf.into()];
        }
        let monitor_port = free_port()?;
        let store = dir.join("nats-store");
        let args = move |port: u16| {
            let mut args = config_args.clone();
            let listen = ["-a", LOOPBACK, "-p", &port.to_string(), "-js"].map(OsString::from);
            args.extend(listen);
            args.extend(["-m".into(), monitor_port.to_string().into()]);
            args.extend(["-sd".into(), store.clone().into()]);
            args
        };
        let mut process = Process::new(Spec {
            name: "nats-server".into(),
            program: program.to_owned(),
            args: Box::new(args),
            env: Vec::new(),
            log: dir.join("nats.log"),
            ready: Probe::NatsGreeting,
            startup: STARTUP,
        })?;
        process.start()?;
        Ok(NatsServer {
            process,
            monitor_port,
            dir: dir.to_owned(),
        })
    }

    /// The client URL, `nats://127.0.0.1:{port}`.
    pub fn url(&self) -> String {
        format!("nats://{LOOPBACK}:{}", self.port())
    }

    /// The client port (kept across restarts).
    pub fn port(&self) -> u16 {
        self.process.port()
    }

    /// The HTTP monitoring endpoint's base URL (`/varz`, `/jsz`, … below it).
    pub fn monitor_url(&self) -> String {
        format!("http://{LOOPBACK}:{}", self.monitor_port)
    }

    /// The JetStream store directory (kept across restarts).
    pub fn store_dir(&self) -> PathBuf {
        self.dir.join("nats-store")
    }

    pub fn log_path(&self) -> &Path {
        self.process.log_path()
    }

    /// The pid of the running server.
    pub fn pid(&self) -> Option<u32> {
        self.process.pid()
    }

    /// SIGKILLs the server and reaps it.
    pub fn kill(&mut self) {
        self.process.kill();
    }

    /// Starts it again (SIGKILLing it first if it runs) on the same port and store; returns
    /// once it greets a client.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.process.start()
    }
}
