#!/usr/bin/env python3
"""The embedded benchmark, run by hand (not in CI): `keel-load promo` against a fresh embedded
node, for one or more `keel` binaries (e.g. before and after a change), and the PostgreSQL
row-lock baseline (../shared/bench/pg-baseline) in the same invocation, so the ratio is taken
on the same machine in the same window.

Per run it reports orders/s, accept p50/p99, the node's CPU time per order (/proc, utime +
stime over the load) and, from the node's /metrics, what the store wrote per order: sled key
writes (log values + checkpoint writes, or nothing for a binary without those counters),
fsyncs and log bytes.

Usage (after `cargo build --release -p keel -p keel-load`):

    python3 load-tests/embedded_bench.py [--keel NAME=PATH ...] [--clients 8 32 64]
        [--runs 3] [--duration 20s] [--pg-baseline ../shared/bench/pg-baseline]
        [--pg-duration 20] [--skip-pg]

Prints one line per run and a table of medians.
"""

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url: str):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except OSError:
        return 0, ""


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def metrics(url: str) -> dict:
    _, text = fetch(f"{url}/metrics")
    found = {}
    for line in text.splitlines():
        m = re.match(r"^(keel_store_[a-z_]+)(?:\{[^}]*\})? ([0-9.e+]+)$", line)
        if m:
            found[m.group(1)] = float(m.group(2))
    return found


def run_keel(binary: str, target: str, clients: int, duration: str) -> dict:
    root = tempfile.mkdtemp(prefix="keel-embedded-bench-")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(os.path.join(root, "keel.log"), "w")
    node = subprocess.Popen(
        [binary, "--http-addr", f"127.0.0.1:{port}", "--data-dir", os.path.join(root, "data"),
         "--seed-demo", "false"], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 60
        while fetch(f"{url}/readyz")[0] != 200:
            if time.monotonic() > deadline or node.poll() is not None:
                raise SystemExit(f"{binary} did not become ready; see {root}/keel.log")
            time.sleep(0.1)
        load = os.path.join(target, "release", "keel-load")
        out = os.path.join(root, "load.json")
        before_cpu, before = cpu_seconds(node.pid), metrics(url)
        subprocess.run(
            [load, "promo", "--http", url, "--duration", duration, "--concurrency",
             str(clients), "--json-out", out], check=True, stdout=subprocess.DEVNULL)
        # The verification after the load reads the node too; CPU is taken over the whole run.
        cpu, after = cpu_seconds(node.pid) - before_cpu, metrics(url)
        with open(out) as f:
            summary = json.load(f)
        orders = max(summary["orders_accepted"], 1)
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
        writes = delta.get("keel_store_log_writes_total", 0) + delta.get(
            "keel_store_checkpoint_writes_total", 0)
        return {
            "orders_per_sec": summary["orders_per_sec"],
            "p50_ms": summary["latency_ms"]["p50"],
            "p99_ms": summary["latency_ms"]["p99"],
            "cpu_ms_per_order": 1000 * cpu / orders,
            "sled_writes_per_order": writes / orders if writes else None,
            "fsyncs_per_order": delta.get("keel_store_flushes_total", 0) / orders,
            "log_bytes_per_order": delta.get("keel_store_log_bytes_total", 0) / orders or None,
            "violations": len(summary.get("violations", [])),
        }
    finally:
        node.terminate()
        node.wait()
        subprocess.run(["rm", "-rf", root], check=False)


def run_pg(baseline: str, clients: int, duration: int) -> dict:
    env = dict(os.environ, CLIENTS=str(clients), SYNC_MODES="on", REPS="1",
               DURATION=str(duration), FSYNC_TEST="0",
               RESULTS=tempfile.mkdtemp(prefix="pg-baseline-"))
    subprocess.run(["bash", os.path.join(baseline, "run.sh")], env=env, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with open(os.path.join(env["RESULTS"], "runs.tsv")) as f:
        rows = [line.rstrip("\n").split("\t") for line in f]
    header, rows = rows[0], rows[1:]
    col = {name: i for i, name in enumerate(header)}
    tps_col = next(c for c in ("tps", "orders_per_sec", "orders/s") if c in col)
    return {"orders_per_sec": float(rows[-1][col[tps_col]]),
            "p99_ms": float(rows[-1][col["lat_p99_ms"]])}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--keel", nargs="+", default=None,
                        help="NAME=PATH of each keel binary (default: after=target/release/keel)")
    parser.add_argument("--clients", nargs="+", type=int, default=[32])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--target-dir", default=os.path.join(HERE, "..", "target"))
    parser.add_argument("--pg-baseline",
                        default=os.path.join(HERE, "..", "..", "shared", "bench", "pg-baseline"))
    parser.add_argument("--pg-duration", type=int, default=20)
    parser.add_argument("--skip-pg", action="store_true")
    args = parser.parse_args()
    binaries = [b.split("=", 1) for b in (args.keel or
                [f"after={os.path.join(args.target_dir, 'release', 'keel')}"])]
    results = {}
    for clients in args.clients:
        for run in range(args.runs):
            # Interleaved, so a noisy minute hurts every contender alike.
            for name, binary in binaries:
                r = run_keel(binary, args.target_dir, clients, args.duration)
                results.setdefault((name, clients), []).append(r)
                print(f"{name} clients={clients} run={run + 1}: {json.dumps(r)}", flush=True)
            if not args.skip_pg:
                r = run_pg(args.pg_baseline, clients, args.pg_duration)
                results.setdefault(("postgres", clients), []).append(r)
                print(f"postgres clients={clients} run={run + 1}: {json.dumps(r)}", flush=True)
    print("\n| contender | clients | orders/s (runs) | × postgres | p99 ms | CPU ms/order |"
          " sled writes/order | fsyncs/order |")
    print("|---|---|---|---|---|---|---|---|")
    for (name, clients), rs in results.items():
        med = lambda k: (statistics.median([r[k] for r in rs if r.get(k) is not None])
                         if any(r.get(k) is not None for r in rs) else None)
        pg = results.get(("postgres", clients))
        ratio = (med("orders_per_sec") / statistics.median([r["orders_per_sec"] for r in pg])
                 if pg and name != "postgres" else None)
        fmt = lambda v, p=2: "–" if v is None else f"{v:,.{p}f}"
        runs = ", ".join(f"{r['orders_per_sec']:,.0f}" for r in rs)
        print(f"| {name} | {clients} | **{fmt(med('orders_per_sec'), 0)}** ({runs}) | "
              f"{fmt(ratio)} | {fmt(med('p99_ms'), 1)} | {fmt(med('cpu_ms_per_order'), 3)} | "
              f"{fmt(med('sled_writes_per_order'), 1)} | {fmt(med('fsyncs_per_order'), 3)} |")


if __name__ == "__main__":
    main()
