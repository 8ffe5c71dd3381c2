#!/usr/bin/env python3
"""The cluster benchmark, run by hand (not in CI): orders/s and CPU time per order with 1, 2
and 3 Keel nodes on one nats-server, the partition spread, the hand-off time per partition,
and the restore time per 10,000 orders.

Each run starts a fresh nats-server (JetStream) and N release-built `keel` nodes on free
loopback ports, waits until the partitions are spread evenly, runs `keel-load promo --nats`
against them and reads the CPU time every keel process used during the load (/proc). Then:

* with 2 or more nodes, the last node gets SIGTERM: its leave time over the partitions it
  held is the hand-off time per partition, and the time until the others hold every
  partition again is printed too;
* with 1 node, the node is SIGKILLed, its data dir removed, and a fresh node started: its
  `/status` takeover says how long taking the 128 partitions over (restoring the changelog)
  took, for how many orders.

Usage (after `cargo build --release -p keel -p keel-load`):

    python3 load-tests/cluster_bench.py [--nodes 1 2 3] [--runs 3] [--duration 20s]
        [--concurrency 64] [--target-dir target] [--pg-baseline ../shared/bench/pg-baseline]

The runs interleave (1, 2, 3 nodes, then PostgreSQL with --pg-baseline, and again), so a noisy
moment hits every contender alike. Prints one line per run and the medians (with the ratio to
PostgreSQL measured in the same invocation); needs nats-server 2.10+ on PATH (tests/run
installs 2.15.1 into ~/.cache/keel/nats-server-2.15.1/bin).
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time
import urllib.request

from embedded_bench import run_pg

PARTITIONS = 128
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, None
    except OSError:
        return 0, None


def wait(what: str, probe, within: float = 120.0):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        found = probe()
        if found is not None:
            return found
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Nats:
    def __init__(self, root: str):
        self.port, self.monitor = free_port(), free_port()
        binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
        self.proc = subprocess.Popen(
            [binary, "-a", "127.0.0.1", "-p", str(self.port), "-m", str(self.monitor),
             "-js", "-sd", os.path.join(root, "nats")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait("nats-server", lambda: True if get(self.monitor, "/healthz")[0] == 200 else None)

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"


class Node:
    def __init__(self, binary: str, root: str, nats: Nats, name: str):
        self.name, self.port = name, free_port()
        self.data = os.path.join(root, name)
        self.log = open(os.path.join(root, f"{name}.log"), "a")
        self.proc = subprocess.Popen(
            [binary, "--http-addr", f"127.0.0.1:{self.port}", "--data-dir", self.data,
             "--seed-demo", "false", "--nats", nats.url, "--node-id", name],
            stdout=self.log, stderr=self.log)

    def status(self):
        code, body = get(self.port, "/status")
        return body if code == 200 else None


def spread(nodes):
    """The partitions each node holds, once all are ready and the spread is even."""
    held = []
    for node in nodes:
        s = node.status()
        if not s or s.get("ready") is not True or get(node.port, "/readyz")[0] != 200:
            return None
        held.append(s["partitions_held"])
    if sum(held) == PARTITIONS and max(held) - min(held) <= 1:
        return held
    return None


def run(args, count: int) -> dict:
    root = tempfile.mkdtemp(prefix="keel-cluster-bench-")
    keel = os.path.join(args.target_dir, "release", "keel")
    load = os.path.join(args.target_dir, "release", "keel-load")
    nats = Nats(root)
    nodes = []
    try:
        for i in range(count):
            nodes.append(Node(keel, root, nats, "abc"[i]))
        held = wait("an even spread", lambda: spread(nodes))
        before = sum(cpu_seconds(n.proc.pid) for n in nodes)
        summary = os.path.join(root, "load.json")
        subprocess.run(
            [load, "promo", "--nats", nats.url, "--nats-monitor",
             f"http://127.0.0.1:{nats.monitor}", "--duration", args.duration,
             "--concurrency", str(args.concurrency), "--skip-raw", "--json-out", summary],
            check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        cpu = sum(cpu_seconds(n.proc.pid) for n in nodes) - before
        with open(summary) as f:
            report = json.load(f)
        orders = report["orders_accepted"]
        result = {
            "nodes": count,
            "spread": held,
            "orders_per_sec": report["orders_per_sec"],
            "accept_p99_ms": report["latency_ms"]["p99"],
            "cpu_ms_per_order": 1000 * cpu / max(orders, 1),
            "messages_per_order": (report.get("nats") or {}).get("messages_per_order"),
            # What the NATS cost target counts: the messages the server received.
            "in_msgs_per_order": ((report.get("nats") or {}).get("in_msgs") or 0) / max(orders, 1),
            "violations": report["violations_total"],
            "orders": orders,
        }
        if count > 1:
            result.update(leave(nodes))
        else:
            result.update(restore(keel, root, nats, nodes))
        return result
    finally:
        for node in nodes:
            if node.proc.poll() is None:
                node.proc.kill()
                node.proc.wait()
        nats.proc.kill()
        nats.proc.wait()
        shutil.rmtree(root, ignore_errors=True)


def leave(nodes) -> dict:
    """SIGTERM the last node: its leave time per partition, and until the others hold all."""
    leaving = nodes.pop()
    partitions = leaving.status()["partitions_held"]
    started = time.monotonic()
    leaving.proc.send_signal(signal.SIGTERM)
    leaving.proc.wait()
    left = time.monotonic() - started
    wait("the others hold every partition", lambda: spread(nodes))
    settled = time.monotonic() - started
    return {
        "leave_ms": 1000 * left,
        "handoff_ms_per_partition": 1000 * left / max(partitions, 1),
        "others_hold_all_ms": 1000 * settled,
    }


def restore(keel: str, root: str, nats: Nats, nodes) -> dict:
    """SIGKILL the only node, remove its disk, start a fresh one: how long its restore took."""
    lost = nodes.pop()
    lost.proc.kill()
    lost.proc.wait()
    shutil.rmtree(lost.data)
    fresh = Node(keel, root, nats, "fresh")
    nodes.append(fresh)
    started = time.monotonic()
    wait("the fresh node holds every partition", lambda: spread(nodes))
    took = fresh.status()["takeover"]
    return {
        "ready_after_kill_ms": 1000 * (time.monotonic() - started),
        # The round's wall time (the partitions restore 16 at a time); restore_ms adds up the
        # partitions' own restore times.
        "takeover_ms": took["elapsed_ms"],
        "restore_ms": took["restore_ms"],
        "restored_messages": took["restored_messages"],
        "restored_writes": took["restored_writes"],
        # Partitions restored from a snapshot (and the messages after it) and their bytes.
        "from_snapshots": took.get("from_snapshots"),
        "snapshot_bytes": took.get("snapshot_bytes"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", default="20s")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--target-dir", default="target")
    parser.add_argument("--pg-baseline", default=None,
                        help="also run ../shared/bench/pg-baseline (this directory) once per run "
                             "at --concurrency clients, for the ratio in the same invocation")
    parser.add_argument("--pg-duration", type=int, default=20)
    args = parser.parse_args()
    results = {}
    pg = []
    for run_number in range(args.runs):
        for count in args.nodes:
            result = run(args, count)
            print(json.dumps(result), flush=True)
            results.setdefault(count, []).append(result)
        if args.pg_baseline:
            pg.append(run_pg(args.pg_baseline, args.concurrency, args.pg_duration))
            print(f"postgres run={run_number + 1}: {json.dumps(pg[-1])}", flush=True)
    print("\nmedians:")
    for count, runs in results.items():
        keys = [k for k, v in runs[0].items() if isinstance(v, (int, float)) and k != "nodes"]
        medians = {k: round(statistics.median(r[k] for r in runs), 2) for k in keys}
        medians["spread"] = runs[0]["spread"]
        if "takeover_ms" in medians:
            medians["takeover_s_per_10k_orders"] = round(
                statistics.median(r["takeover_ms"] / r["orders"] * 10 for r in runs), 2)
        if pg:
            medians["x_postgres"] = round(
                medians["orders_per_sec"] / statistics.median(r["orders_per_sec"] for r in pg), 2)
        print(f"{count} node(s): {json.dumps(medians)}")
    if pg:
        print(f"postgres: {statistics.median(r['orders_per_sec'] for r in pg):.0f} orders/s "
              f"(runs {[round(r['orders_per_sec']) for r in pg]})")


if __name__ == "__main__":
    main()
