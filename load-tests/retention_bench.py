#!/usr/bin/env python3
"""The retention benchmark, run by hand (not in CI): does a node's memory and disk follow its
active set, not its history?

1. Starts a fresh embedded `keel` (release build) and runs `keel-load soak` against it (a
   `steady` day, default 10 minutes, 32 clients), which samples the node's RSS every 10 s and
   reports the growth: the median RSS of the last third of the samples minus the first third's.
2. Once the load and its verification are done, waits `--idle` seconds and reads the idle RSS
   and the size of the store on disk, per order stored.
3. SIGKILLs the node, starts it again on the same store and measures the time until /readyz is
   200, then the idle RSS of the restarted node.
4. Stops it (SIGTERM), runs `keel compact` on its store (`--compact-compression`: whether the
   copy compresses its pages, default true), and measures the disk per order, the time to
   ready and the idle RSS of the node started on the compacted store (`--compact-compression
   none` skips this step).

Retention can be compressed to fit the run (`--archive-after-secs`, `--dedupe-retention-secs`,
passed to keel), so that closed orders reach the archive and command ids expire while it runs.

Usage (after `cargo build --release -p keel -p keel-load`):

    python3 load-tests/retention_bench.py [--duration 10m] [--clients 32]
        [--archive-after-secs 60] [--dedupe-retention-secs 300] [--idle 40] [--keep DIR]
        [--compact-compression true|false|none]

Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import tempfile
import time
import urllib.request

from embedded_bench import free_port

HERE = os.path.dirname(os.path.abspath(__file__))


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def disk_bytes(path: str) -> int:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:
                pass
    return total


class Node:
    """A keel process on a data directory, restartable on the same port and store."""

    def __init__(self, binary: str, root: str, flags: list):
        self.binary, self.root, self.flags = binary, root, flags
        self.url = f"http://127.0.0.1:{free_port()}"
        self.proc = None

    def start(self) -> float:
        """Starts the node; answers the seconds until /readyz was 200."""
        log = open(os.path.join(self.root, "keel.log"), "a")
        began = time.monotonic()
        self.proc = subprocess.Popen(
            [self.binary, "--http-addr", self.url.removeprefix("http://"),
             "--data-dir", os.path.join(self.root, "data"), "--seed-demo", "false", *self.flags],
            stdout=log, stderr=log)
        while not ready(self.url):
            if self.proc.poll() is not None or time.monotonic() - began > 300:
                raise SystemExit(f"keel did not become ready; see {self.root}/keel.log")
            time.sleep(0.05)
        return time.monotonic() - began

    def kill(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait()

    def compact(self, compression: str) -> dict:
        """Runs `keel compact` on the stopped node's store; answers its report and duration."""
        began = time.monotonic()
        out = subprocess.run(
            [self.binary, "compact", "--data-dir", os.path.join(self.root, "data"),
             "--store-compression", compression], check=True, capture_output=True, text=True)
        report = json.loads(out.stdout)
        report["seconds"] = time.monotonic() - began
        return report


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keel", default=os.path.join(HERE, "..", "target", "release", "keel"))
    parser.add_argument("--load", default=os.path.join(HERE, "..", "target", "release",
                                                       "keel-load"))
    parser.add_argument("--duration", default="10m")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--archive-after-secs", type=int, default=None)
    parser.add_argument("--dedupe-retention-secs", type=int, default=None)
    parser.add_argument("--idle", type=int, default=40)
    parser.add_argument("--keep", default=None, help="work directory to keep (default: temp)")
    parser.add_argument("--compact-compression", default="true",
                        choices=["true", "false", "none"])
    args = parser.parse_args()

    root = args.keep or tempfile.mkdtemp(prefix="keel-retention-bench-")
    os.makedirs(root, exist_ok=True)
    flags = []
    if args.archive_after_secs is not None:
        flags += ["--archive-after-secs", str(args.archive_after_secs)]
    if args.dedupe_retention_secs is not None:
        flags += ["--dedupe-retention-secs", str(args.dedupe_retention_secs)]
    node = Node(args.keel, root, flags)
    try:
        node.start()
        out = os.path.join(root, "soak.json")
        subprocess.run(
            [args.load, "soak", "--http", node.url, "--keel-pid", str(node.proc.pid),
             "--duration", args.duration, "--concurrency", str(args.clients),
             "--json-out", out], check=True, stdout=subprocess.DEVNULL)
        with open(out) as f:
            soak = json.load(f)
        orders = max(soak["orders_accepted"], 1)
        time.sleep(args.idle)
        idle_rss = rss_mib(node.proc.pid)
        disk = disk_bytes(os.path.join(root, "data"))
        node.kill()
        ready_s = node.start()
        time.sleep(args.idle)
        restarted_rss = rss_mib(node.proc.pid)
        compacted = {}
        if args.compact_compression != "none":
            node.stop()
            report = node.compact(args.compact_compression)
            compacted_disk = disk_bytes(os.path.join(root, "data"))
            compacted_ready = node.start()
            time.sleep(args.idle)
            compacted = {
                "compaction_s": report["seconds"],
                "compressed": report["compressed"],
                "live_bytes_per_order": report["live_bytes"] / orders,
                "compacted_disk_mib": compacted_disk / 2**20,
                "compacted_disk_bytes_per_order": compacted_disk / orders,
                "compacted_ready_s": compacted_ready,
                "compacted_idle_rss_mib": rss_mib(node.proc.pid),
            }
        samples = [s["rss_bytes"] / 2**20 for s in soak.get("samples") or [] if s.get("rss_bytes")]
        third = max(len(samples) // 3, 1)
        first, last = statistics.median(samples[:third]), statistics.median(samples[-third:])
        print(json.dumps({
            "orders": soak["orders_accepted"],
            "orders_per_sec": soak["orders_per_sec"],
            "p99_ms": soak["latency_ms"]["p99"],
            "violations": len(soak.get("violations", [])),
            "rss_first_third_mib": first,
            "rss_last_third_mib": last,
            "rss_growth_share": (last - first) / first,
            "idle_rss_mib": idle_rss,
            "disk_mib": disk / 2**20,
            "disk_bytes_per_order": disk / orders,
            "ready_after_sigkill_s": ready_s,
            "idle_rss_after_restart_mib": restarted_rss,
            **compacted,
            "flags": flags,
        }, indent=2))
    finally:
        if node.proc and node.proc.poll() is None:
            node.kill()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
