//! How a Keel node is run.

use std::ffi::OsString;
use std::path::Path;

use crate::port::LOOPBACK;

/// The `keel` binary's arguments for a port (a [`Spec::args`](crate::Spec::args)): its data
/// dir, HTTP on `127.0.0.1:{port}`, no demo seed, `--nats nats_url` when given, then `extra`.
pub fn keel_args(
    data_dir: &Path,
    nats_url: Option<&str>,
    extra: &[&str],
) -> impl Fn(u16) -> Vec<OsString> + Send + Sync + 'static {
    let mut fixed: Vec<OsString> = nats_url
        .map(|url| vec!["--nats".into(), url.into()])
        .unwrap_or_default();
    fixed.extend(extra.iter().map(OsString::from));
    let data_dir = data_dir.to_owned();
    move |port| {
        let mut args: Vec<OsString> = vec!["--data-dir".into(), data_dir.clone().into()];
        let addr = format!("{LOOPBACK}:{port}");
        args.extend(["--http-addr", &addr, "--seed-demo", "false"].map(OsString::from));
        args.extend(fixed.iter().cloned());
        args
    }
}
