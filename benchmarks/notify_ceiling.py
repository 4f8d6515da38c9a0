"""The delivery ceiling, the same-run baseline of ``notify.py``'s phase (a).

Run by ``notify.py`` as a process pinned to the broker's core: the broker's own ``Dispatcher``
and ``HttpSender``, with their default settings, carry ``--count`` pre-built keyValues
notifications (the size of the broker's, stamped like them) round-robin to the receivers in
``--urls``. No HTTP ingress, no SQLite, no matching, no rendering: how many notifications per second
one core can put on the wire to these receivers, which the broker's fan-out figure is divided by.
At most ``--window`` deliveries are outstanding, so no per-origin queue overflows (the dispatcher
drops the oldest beyond 1,000 per origin).

Prints one JSON object: ``{"ok": N, "failed": N, "seconds": S, "cpu": its CPU / wall time}``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
import uuid

import orjson
import uvloop
from broker.notify.dispatcher import Delivery, Dispatcher, Outcome

HEADERS = {
    "Content-Type": "application/json",
    "Link": '<https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld>; rel="http://www.w3'
    '.org/ns/json-ld#context"; type="application/ld+json"',
}


def body(n: int) -> bytes:
    return orjson.dumps(
        {
            "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
            "type": "Notification",
            "subscriptionId": f"urn:ngsi-ld:Subscription:ceiling-{n % 1000}",
            "notifiedAt": "2026-11-23T03:00:00.000000Z",
            "data": [
                {"id": "urn:ngsi-ld:BenchSensor:a", "type": "BenchSensor", "seq": time.time()}
            ],
        }
    )


async def main(args: argparse.Namespace) -> None:
    urls = args.urls.split(",")
    dispatcher = Dispatcher()
    await dispatcher.start()
    room = asyncio.Semaphore(args.window)
    landed = {"ok": 0, "failed": 0}
    finished = asyncio.Event()

    def done(outcome: Outcome) -> None:
        landed["ok" if outcome.ok else "failed"] += 1
        room.release()
        if landed["ok"] + landed["failed"] == args.count:
            finished.set()

    started, cpu = time.perf_counter(), time.process_time()
    for n in range(args.count):
        await room.acquire()
        delivery = Delivery(urls[n % len(urls)], body(n), HEADERS, str(n), done)
        if not dispatcher.submit(delivery):
            done(Outcome(ok=False, error="refused"))
    await finished.wait()
    seconds = time.perf_counter() - started
    cpu = (time.process_time() - cpu) / seconds
    await dispatcher.close()
    print(json.dumps({**landed, "seconds": seconds, "cpu": cpu}), flush=True)


async def run_ceiling(core: int, urls: list[str], count: int) -> dict[str, float]:
    """Run this script pinned to ``core`` without blocking the caller's loop (its receivers
    must keep answering); returns its figures."""
    taskset = ["taskset", "-c", str(core)] if shutil.which("taskset") else []
    process = await asyncio.create_subprocess_exec(
        *taskset,
        sys.executable,
        __file__,
        *("--urls", ",".join(urls), "--count", str(count)),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError(f"notify_ceiling.py failed with status {process.returncode}")
    figures: dict[str, float] = json.loads(out)
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--urls", required=True, help="comma-separated receiver URLs")
    parser.add_argument("--count", type=int, required=True, help="notifications to deliver")
    parser.add_argument("--window", type=int, default=2000, help="most outstanding at once")
    uvloop.run(main(parser.parse_args()))
