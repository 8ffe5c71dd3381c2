//! The Python example (`examples/python/place_order_and_follow.py`, nats-py) against the real
//! binary on NATS: proof that the documented NATS contract is usable from another language.
//!
//! The script places an order with request-reply, follows the order's events from the
//! `KEEL_EVENTS` stream and, with `--confirm`, confirms each fulfillment to delivered. Needs
//! `python3` with nats-py (`pip install nats-py`; tests/run installs it): without it these tests
//! fail, they never skip.

#[path = "fixtures/mod.rs"]
mod fixtures;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use fixtures::{list, order_status_rank, text, Keel, Network};

/// The script's own `--timeout`; the test gives it a little more before killing it.
const SCRIPT_TIMEOUT_SECS: u64 = 60;

/// Panics (with the install hint) unless `python3` can import nats-py.
fn require_nats_py() {
    let hint = "the Python example needs python3 with nats-py: `pip install nats-py` \
                (or `python3 -m pip install -r examples/python/requirements.txt`; tests/run \
                installs it)";
    match Command::new("python3").args(["-c", "import nats"]).output() {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "`python3 -c \"import nats\"` failed: {}\n{hint}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!("cannot run python3: {e}\n{hint}"),
    }
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/python/place_order_and_follow.py")
}

/// Runs the script with `args`; kills it if it outlives its own timeout by far.
fn run_script(nats_url: &str, args: &[&str]) -> Output {
    let timeout = SCRIPT_TIMEOUT_SECS.to_string();
    let child = Command::new("python3")
        .arg(script())
        .args(["--nats", nats_url, "--timeout", &timeout])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let pid = child.id();
    let (done, output) = mpsc::channel();
    thread::spawn(move || done.send(child.wait_with_output()));
    match output.recv_timeout(Duration::from_secs(SCRIPT_TIMEOUT_SECS + 30)) {
        Ok(output) => output.expect("wait for the script"),
        Err(_) => {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            panic!("the script (pid {pid}) ignored its --timeout {timeout}; killed it")
        }
    }
}

fn describe(output: &Output) -> String {
    format!(
        "exit {}\n--- stdout ---\n{}--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// The `(version, status)` of each event line (`v<version> <status> <fulfillments>…`).
fn printed_events(output: &Output) -> Vec<(u64, String)> {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| {
            let mut words = line.split_whitespace();
            let version = words
                .next()
                .and_then(|v| v.strip_prefix('v'))
                .and_then(|v| v.parse().ok());
            match (version, words.next()) {
                (Some(version), Some(status)) => (version, status.to_owned()),
                _ => panic!(
                    "not an event line on stdout: {line:?}\n{}",
                    describe(output)
                ),
            }
        })
        .collect()
}

fn start_keel() -> (Keel, String, Network) {
    let mut keel = Keel::start_on_nats();
    let url = keel.nats().url();
    let net = Network::two_dcs(&keel, "py");
    (keel, url, net)
}

#[test]
fn the_python_example_places_an_order_and_follows_it_to_delivered() {
    require_nats_py();
    let (keel, url, net) = start_keel();
    // One SKU only in the east, one only in the west: the order splits into two fulfillments.
    keel.create_sku("py-mug");
    keel.create_sku("py-lid");
    keel.receive("py-r-mug", "py-mug", &net.east, 10);
    keel.receive("py-r-lid", "py-lid", &net.west, 10);

    let args = [
        "--order",
        "py-o-1",
        "--channel",
        &net.channel,
        "--sku",
        "py-mug:2",
        "--sku",
        "py-lid",
        "--region",
        "east",
        "--confirm",
    ];
    let output = run_script(&url, &args);
    assert!(
        output.status.success(),
        "the script failed: {}",
        describe(&output)
    );
    let events = printed_events(&output);
    let statuses: Vec<&str> = events.iter().map(|(_, s)| s.as_str()).collect();
    assert_eq!(statuses.first(), Some(&"received"), "{}", describe(&output));
    assert_eq!(statuses.last(), Some(&"delivered"), "{}", describe(&output));
    for step in ["released", "picking", "packed", "shipped"] {
        assert!(statuses.contains(&step), "no {step}: {}", describe(&output));
    }
    for pair in events.windows(2) {
        assert!(
            pair[1].0 > pair[0].0,
            "versions out of order: {}",
            describe(&output)
        );
        assert!(
            order_status_rank(&pair[1].1) >= order_status_rank(&pair[0].1),
            "status went back: {}",
            describe(&output)
        );
    }

    let order = keel.order("py-o-1");
    assert_eq!(text(&order, "status"), "delivered", "{order}");
    let fulfillments = list(&order, "fulfillments");
    assert_eq!(fulfillments.len(), 2, "expected a split order: {order}");
    for f in fulfillments {
        assert_eq!(text(f, "status"), "delivered", "{order}");
    }

    // Again with the same order id: placing is idempotent, the events are replayed from the
    // start of the stream, nothing is left to confirm.
    let again = run_script(&url, &args);
    assert!(
        again.status.success(),
        "the re-run failed: {}",
        describe(&again)
    );
    assert_eq!(
        printed_events(&again),
        events,
        "the re-run printed other events"
    );
}

#[test]
fn the_python_example_reports_an_error_reply_with_its_code_and_message() {
    require_nats_py();
    let (_keel, url, net) = start_keel();
    let output = run_script(
        &url,
        &[
            "--order",
            "py-o-2",
            "--channel",
            &net.channel,
            "--sku",
            "py-nope",
            "--confirm",
        ],
    );
    assert_eq!(output.status.code(), Some(1), "{}", describe(&output));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("unknown_sku") && stderr.contains("py-nope"),
        "expected the code and message of the error reply: {}",
        describe(&output)
    );
}
