//! The harness on real processes: `sh` and `sleep`, and `nats-server` from PATH (tests/run puts
//! the pinned release there) for what must serve.

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keel_harness::{
    find_program, free_port, Error, NatsServer, Probe, Process, Signal, Spec, LOOPBACK,
};

/// `sh -c script` (the port as `$1`), logging to `dir/name.log`, ready on a NATS greeting.
fn shell(dir: &Path, name: &str, script: &str, startup: Duration) -> Process {
    let script = script.to_owned();
    Process::new(Spec {
        name: name.into(),
        program: "/bin/sh".into(),
        args: Box::new(move |port| {
            ["-c", &script, "sh", &port.to_string()]
                .map(OsString::from)
                .to_vec()
        }),
        env: vec![("HARNESS_TEST".into(), "set".into())],
        log: dir.join(format!("{name}.log")),
        ready: Probe::NatsGreeting,
        startup,
    })
    .unwrap()
}

/// [`shell`] started, which must fail: the process and why.
fn failed_start(dir: &Path, name: &str, script: &str, startup: Duration) -> (Process, Error) {
    let mut process = shell(dir, name, script, startup);
    let err = process.start().expect_err("the start fails");
    (process, err)
}

fn nats_server() -> PathBuf {
    find_program(Path::new("nats-server"), &[]).expect(
        "nats-server is not on PATH: tests/run installs it (or put ~/.cache/keel/nats-server-2.15.1/bin first on PATH)",
    )
}

/// A bare `nats-server` (no JetStream) as a generic process that serves.
fn nats_process(dir: &Path) -> Process {
    Process::new(Spec {
        name: "nats-server".into(),
        program: nats_server(),
        args: Box::new(|port| {
            ["-a", LOOPBACK, "-p", &port.to_string()]
                .map(OsString::from)
                .to_vec()
        }),
        env: Vec::new(),
        log: dir.join("nats.log"),
        ready: Probe::NatsGreeting,
        startup: Duration::from_secs(15),
    })
    .unwrap()
}

#[test]
fn free_ports_can_be_bound() {
    let port = free_port().unwrap();
    TcpListener::bind((LOOPBACK, port)).expect("the free port binds");
}

#[test]
fn programs_are_found_by_path_or_name() {
    let sh = find_program(Path::new("sh"), &[]).unwrap();
    assert!(sh.is_absolute(), "{}", sh.display());
    assert_eq!(
        find_program(Path::new("/bin/sh"), &[]),
        Some(PathBuf::from("/bin/sh"))
    );
    assert_eq!(find_program(Path::new("no-such-program-keel"), &[]), None);
    assert_eq!(find_program(Path::new("./no/such/program"), &[]), None);

    let dir = tempfile::tempdir().unwrap();
    let program = dir.path().join("keel-harness-test-program");
    std::fs::write(&program, "#!/bin/sh\n").unwrap();
    let name = Path::new("keel-harness-test-program");
    assert_eq!(find_program(name, &[]), None, "not on PATH");
    assert_eq!(find_program(name, &[dir.path()]), None, "not executable");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&program, std::fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(find_program(name, &[dir.path()]), Some(program));
}

#[test]
fn signals_are_named_as_kill_takes_them() {
    assert_eq!("STOP".parse::<Signal>().unwrap(), Signal::Stop);
    assert_eq!("sigterm".parse::<Signal>().unwrap(), Signal::Term);
    assert_eq!(Signal::Cont.name(), "CONT");
    assert!(matches!(
        "HUP".parse::<Signal>(),
        Err(Error::UnknownSignal(_))
    ));
}

#[test]
fn a_process_that_exits_is_reported_with_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo it broke with $HARNESS_TEST on $1; exit 3";
    let (process, err) = failed_start(dir.path(), "broken", script, Duration::from_secs(5));
    let (port, msg) = (process.port(), err.to_string());
    assert!(
        matches!(err, Error::NotReady { .. }) && msg.contains("exited"),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("it broke with set on {port}")),
        "{msg}"
    );
    assert!(msg.contains("start #1 of broken"), "{msg}");
    assert_eq!(process.pid(), None);
    assert!(matches!(
        process.signal(Signal::Term),
        Err(Error::NotRunning(_))
    ));
}

#[test]
fn a_process_not_ready_in_time_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let (mut process, err) = failed_start(
        dir.path(),
        "mute",
        "exec sleep 30",
        Duration::from_millis(300),
    );
    let msg = err.to_string();
    assert!(
        msg.contains("not ready within 300ms; last: connect"),
        "{msg}"
    );
    assert_eq!(process.pid(), None, "the process was killed");
    assert!(process.has_exited().unwrap());
}

#[test]
fn a_start_that_loses_its_port_is_tried_again() {
    let dir = tempfile::tempdir().unwrap();
    let script = "echo address already in use; exit 1";
    let (process, err) = failed_start(dir.path(), "unlucky", script, Duration::from_millis(500));
    let msg = err.to_string();
    assert!(msg.contains("address already in use"), "{msg}");
    assert!(process.starts() > 1, "started {} times", process.starts());
}

#[test]
fn signals_pause_resume_and_end_a_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut process = nats_process(dir.path());
    process.start().unwrap();
    let (port, pid) = (process.port(), process.pid().unwrap());

    process.signal(Signal::Stop).unwrap();
    assert!(
        Probe::NatsGreeting.check(port).is_err(),
        "a paused server greets nobody"
    );
    process.signal(Signal::Cont).unwrap();
    process.wait_ready().unwrap();

    let status = process.terminate(Duration::from_secs(10)).unwrap();
    assert!(status.is_some(), "nats-server ends on SIGTERM");
    assert!(process.has_exited().unwrap());

    process.start().unwrap();
    assert_eq!(process.port(), port, "a restart keeps the port");
    assert_ne!(process.pid(), Some(pid));
    assert_eq!(process.starts(), 2);
    process.signal(Signal::Stop).unwrap();
    assert_eq!(
        process.wait_exit(Duration::from_millis(200)).unwrap(),
        None,
        "a paused process does not exit: it is SIGKILLed"
    );
    assert_eq!(process.pid(), None);
    assert!(process.log_tail(50).contains("start #2 of nats-server"));
}

#[test]
fn a_nats_server_restarts_on_its_port_and_store() {
    let dir = tempfile::tempdir().unwrap();
    let mut nats = NatsServer::start_in(&nats_server(), dir.path(), "ping_max: 2\n").unwrap();
    let (url, pid) = (nats.url(), nats.pid());
    assert_eq!(url, format!("nats://127.0.0.1:{}", nats.port()));
    assert!(
        nats.store_dir().join("jetstream").is_dir(),
        "JetStream is on"
    );
    let varz = ureq::get(format!("{}/varz", nats.monitor_url()))
        .call()
        .expect("the monitoring port answers")
        .body_mut()
        .read_to_string()
        .unwrap();
    assert!(varz.contains("\"ping_max\": 2"), "{varz}");

    nats.kill();
    assert_eq!(nats.pid(), None);
    assert!(Probe::NatsGreeting.check(nats.port()).is_err());
    nats.restart().unwrap();
    assert_eq!(nats.url(), url);
    assert_ne!(nats.pid(), pid);
    let log = std::fs::read_to_string(nats.log_path()).unwrap();
    assert!(log.contains("start #2 of nats-server"), "{log}");
    let port = nats.port();
    drop(nats);
    assert!(
        Probe::NatsGreeting.check(port).is_err(),
        "dropping the guard ends the server"
    );
}
