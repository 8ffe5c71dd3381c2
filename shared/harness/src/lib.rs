//! The local processes Keel's black-box tests (`tests/`) and `keel-load chaos` run, on
//! loopback, each on a free port with its log in a directory of the caller's.
//!
//! - [`free_port`]: a loopback port nobody listened on a moment ago.
//! - [`Process`]: a child process described by a [`Spec`] (program, arguments for its port,
//!   environment, log file, readiness [`Probe`] and deadline), started until ready, sent a
//!   [`Signal`], waited for, SIGKILLed and started again on the same port.
//! - [`NatsServer`]: a `nats-server` with JetStream, its store, configuration and log in one
//!   directory, restarted on the same port and store.
//! - [`keel_args`]: the command line of a Keel node on a port.
//! - [`find_program`]: where an executable is.
//!
//! Every process is SIGKILLed and reaped when its guard drops (at the end, on an error, or
//! while a panic unwinds). Directories are the caller's: keeping them for a post-mortem is its
//! decision. Unix only: signals are sent with `kill(1)` (the workspace forbids `unsafe`).

mod error;
mod keel;
mod nats;
mod port;
mod probe;
mod process;
mod program;
mod signal;

pub use error::Error;
pub use keel::keel_args;
pub use nats::NatsServer;
pub use port::{free_port, LOOPBACK};
pub use probe::Probe;
pub use process::{Args, Process, Spec};
pub use program::{find_program, is_executable};
pub use signal::Signal;
