#!/usr/bin/env python3
"""Place an order on Keel over NATS and print that order's events until it is delivered.

A client of Keel's NATS contract in Python (nats-py 2.x) that uses only what the docs promise:

* request-reply on `keel.v1.api.*` with JSON bodies; the reply's `Keel-Status` header says how
  it went (`ok`, `created`, or `error` with `Keel-Error: <code>` and `{"error":{code,message}}`);
* order events on `keel.v1.evt.order.{channel}.{order_id}`, one after every change of the order,
  kept in the JetStream stream `KEEL_EVENTS`.

With `--confirm` it also plays the warehouse: once the order is `released` it confirms every
fulfillment picked -> packed -> shipped -> delivered over `keel.v1.api.fulfillments.confirm`.

Events go to stdout, one line each (`v<version> <status> <fulfillment>@<location>=<status>...`);
notes and errors go to stderr. Exit status: 0 once the order is delivered; 1 on an error reply
(its code and message are printed), no connection, or a cancelled order; 2 on `--timeout`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import uuid

import nats
from nats.errors import NoRespondersError, NoServersError
from nats.errors import TimeoutError as NatsTimeout
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError

EVENTS_STREAM = "KEEL_EVENTS"
STEPS = ["picked", "packed", "shipped", "delivered"]
# Order statuses at which every warehouse node has accepted its fulfillment: steps can be confirmed.
CONFIRMABLE = {"released", "picking", "packed", "shipped"}
REQUEST_TIMEOUT = 10.0  # seconds one request may wait for its reply


class KeelError(Exception):
    """An error reply: `Keel-Status: error`, `Keel-Error: <code>`."""

    def __init__(self, subject: str, code: str, message: str) -> None:
        super().__init__(f"{code}: {message} (on {subject})")
        self.code = code


def note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


async def call(nc: nats.NATS, subject: str, body: dict) -> dict:
    """One request-reply exchange: returns the reply body, raises KeelError on an error reply."""
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=REQUEST_TIMEOUT)
    payload = json.loads(reply.data) if reply.data else {}
    headers = reply.headers or {}
    if headers.get("Keel-Status") == "error":
        error = payload.get("error", {})
        code = headers.get("Keel-Error") or error.get("code", "?")
        raise KeelError(subject, code, error.get("message", ""))
    return payload


async def confirm_all(nc: nats.NATS, fulfillment_ids: list[str]) -> None:
    """Confirms the remaining steps of each fulfillment in turn."""
    for fid in fulfillment_ids:
        # Start from its current status (events may be a replay): a re-run must not go back.
        status = (await call(nc, "keel.v1.api.fulfillments.get", {"id": fid}))["status"]
        if status == "cancelled":
            continue
        done = STEPS.index(status) + 1 if status in STEPS else 0
        for step in STEPS[done:]:
            for attempt in range(50):
                try:
                    await call(nc, "keel.v1.api.fulfillments.confirm", {"id": fid, "step": step})
                    break
                except KeelError as e:
                    # invalid_transition until its warehouse node accepted it: retry shortly.
                    if e.code != "invalid_transition" or attempt == 49:
                        raise
                    await asyncio.sleep(0.1)
            note(f"-- confirmed {fid} {step}")


def event_line(event: dict) -> str:
    """`v<version> <status> <fulfillment>@<location>=<status> ...`"""
    fulfillments = [f"{f['id']}@{f['location']}={f['status']}" for f in event["fulfillments"]]
    return " ".join([f"v{event['version']}", event["status"], *fulfillments])


async def follow(args: argparse.Namespace) -> int:
    connected = False

    async def on_nats_error(e: Exception) -> None:
        if connected:  # failed connection attempts are reported once, below
            note(f"-- nats: {e}")

    try:
        nc = await nats.connect(
            args.nats, connect_timeout=5, max_reconnect_attempts=2, error_cb=on_nats_error
        )
    except (NoServersError, OSError) as e:
        note(f"error: cannot connect to {args.nats}: {e or type(e).__name__}")
        return 1
    connected = True
    try:
        # Events and a failed confirmation both land in `inbox`, so the loop below sees either.
        inbox: asyncio.Queue = asyncio.Queue()

        async def on_event(msg) -> None:
            await inbox.put(json.loads(msg.data))

        def report_failure(task: asyncio.Task) -> None:
            if not task.cancelled() and task.exception() is not None:
                inbox.put_nowait(task.exception())

        # 1. Subscribe BEFORE placing, replaying the order's subject from the start of the
        #    stream: no event is missed, also when the order already existed. An ordered
        #    consumer is ephemeral, in order, with one filter subject (fine on nats-server 2.9).
        subject = f"keel.v1.evt.order.{args.channel}.{args.order}"
        try:
            await nc.jetstream().subscribe(
                subject,
                stream=EVENTS_STREAM,
                cb=on_event,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
        except NotFoundError:
            note(f"error: no stream {EVENTS_STREAM} on {args.nats}: is keel running with --nats?")
            return 1

        # 2. Place the order (idempotent by id: placing it again answers its current state).
        order = {
            "id": args.order,
            "channel": args.channel,
            "lines": [{"sku": sku, "quantity": qty} for sku, qty in args.lines],
            "ship_to": {"region": args.region},
        }
        placed = await call(nc, "keel.v1.api.orders.place", order)
        note(f"-- placed {args.order} on {args.channel} ({placed.get('status')}); following {subject}")

        # 3. Print each event of the order until it is delivered.
        confirming: asyncio.Task | None = None
        while True:
            event = await inbox.get()
            if isinstance(event, Exception):
                raise event  # from the confirming task
            print(event_line(event), flush=True)
            if event["status"] == "delivered":
                if confirming is not None:
                    await confirming
                return 0
            if event["status"] == "cancelled":
                note(f"error: order {args.order} was cancelled")
                return 1
            if args.confirm and confirming is None and event["status"] in CONFIRMABLE:
                ids = [f["id"] for f in event["fulfillments"]]
                confirming = asyncio.create_task(confirm_all(nc, ids))
                confirming.add_done_callback(report_failure)
    except KeelError as e:
        note(f"error: {e}")
        return 1
    except (NoRespondersError, NatsTimeout) as e:
        note(f"error: no answer from keel ({type(e).__name__}): is it running with --nats {args.nats}?")
        return 1
    finally:
        await nc.close()


def parse_lines(values: list[str]) -> list[tuple[str, int]]:
    """`--sku A --sku B,C:2` -> [("A", 1), ("B", 1), ("C", 2)]."""
    lines = []
    for value in values:
        for item in filter(None, (v.strip() for v in value.split(","))):
            sku, _, qty = item.partition(":")
            lines.append((sku, int(qty or 1)))
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--nats", default="nats://127.0.0.1:4222", help="NATS URL (default: %(default)s)")
    p.add_argument("--order", default=f"py-{uuid.uuid4().hex[:8]}", help="order id (default: random)")
    p.add_argument("--channel", default="web", help="sales channel (default: %(default)s)")
    p.add_argument(
        "--sku", action="append", required=True, metavar="SKU[:QTY]",
        help="an order line (quantity 1 unless given); repeatable or comma-separated",
    )  # fmt: skip
    p.add_argument("--region", default="east", help="ship-to region (default: %(default)s)")
    p.add_argument("--confirm", action="store_true", help="play the warehouse: confirm every step")
    p.add_argument("--timeout", type=float, default=30.0, help="give up after this many seconds")
    args = p.parse_args()
    try:
        args.lines = parse_lines(args.sku)
    except ValueError:
        p.error("--sku takes SKU or SKU:QTY with a whole-number quantity")

    async def run() -> int:
        try:
            async with asyncio.timeout(args.timeout):
                return await follow(args)
        except TimeoutError:
            note(f"error: timeout: order {args.order} not delivered within {args.timeout:g}s")
            return 2

    return asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
