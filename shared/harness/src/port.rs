//! Free loopback ports.

use std::net::TcpListener;

use crate::error::Error;

/// The address every process listens on.
pub const LOOPBACK: &str = "127.0.0.1";

/// A loopback port nobody listened on a moment ago. Another process may take it before the
/// caller binds it: [`Process::start`](crate::Process::start) tries again when that happens.
pub fn free_port() -> Result<u16, Error> {
    let bound = TcpListener::bind((LOOPBACK, 0)).map_err(Error::io("binding 127.0.0.1:0"))?;
    let addr = bound
        .local_addr()
        .map_err(Error::io("reading the port bound"))?;
    Ok(addr.port())
}
