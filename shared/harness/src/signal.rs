//! Signals sent to a process by its pid.

use std::process::Command;
use std::str::FromStr;

use crate::error::Error;

/// A signal the harness sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGKILL: ends the process at once.
    Kill,
    /// SIGTERM: asks it to shut down (what Kubernetes sends).
    Term,
    /// SIGSTOP: pauses it (it keeps its sockets, answers nothing).
    Stop,
    /// SIGCONT: resumes a paused process.
    Cont,
}

impl Signal {
    /// The name `kill` takes (`KILL`, `TERM`, `STOP`, `CONT`).
    pub fn name(self) -> &'static str {
        match self {
            Signal::Kill => "KILL",
            Signal::Term => "TERM",
            Signal::Stop => "STOP",
            Signal::Cont => "CONT",
        }
    }
}

impl FromStr for Signal {
    type Err = Error;

    /// `KILL`, `TERM`, `STOP` or `CONT`, with or without `SIG`, in any case.
    fn from_str(name: &str) -> Result<Signal, Error> {
        let upper = name.to_ascii_uppercase();
        let bare = upper.strip_prefix("SIG").unwrap_or(&upper);
        [Signal::Kill, Signal::Term, Signal::Stop, Signal::Cont]
            .into_iter()
            .find(|signal| signal.name() == bare)
            .ok_or_else(|| Error::UnknownSignal(name.to_owned()))
    }
}

/// Sends `signal` to the process `pid` with `kill(1)`.
pub(crate) fn send(pid: u32, signal: Signal) -> Result<(), Error> {
    let status = Command::new("kill")
        .arg(format!("-{}", signal.name()))
        .arg(pid.to_string())
        .status()
        .map_err(Error::io("running kill"))?;
    if status.success() {
        Ok(())
    } else {
        Err(Error::Signal {
            signal: signal.name(),
            pid,
            status,
        })
    }
}
