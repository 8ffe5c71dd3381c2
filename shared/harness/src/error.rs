use std::path::PathBuf;
use std::process::ExitStatus;

/// What can go wrong starting, probing or signalling a process.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An operating-system call failed (binding a port, opening a log, spawning, reaping).
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A start did not serve: the process exited, or its probe did not pass within the
    /// deadline (it was then SIGKILLed). `tail` is the end of its log.
    #[error("{name} on 127.0.0.1:{port}: {why}; the end of {}:\n{tail}", .log.display())]
    NotReady {
        name: String,
        port: u16,
        why: String,
        log: PathBuf,
        tail: String,
    },
    /// The process is not running (never started, exited and reaped, or killed).
    #[error("{0} is not running")]
    NotRunning(String),
    /// `kill` could not deliver a signal.
    #[error("kill -{signal} {pid} failed ({status})")]
    Signal {
        signal: &'static str,
        pid: u32,
        status: ExitStatus,
    },
    /// A signal name other than KILL, TERM, STOP or CONT.
    #[error("unknown signal {0:?} (expected KILL, TERM, STOP or CONT)")]
    UnknownSignal(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}
