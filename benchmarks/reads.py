"""Small reads: a 20-entity type query and a retrieve by id, the shape other brokers publish.

Method. ``toshi serve`` with a fresh SQLite store, pinned to one core (``taskset``), holds 100
``Vehicle`` entities of five attributes each (created over HTTP before measuring). ``--clients``
keep-alive connections (default 50, as ``wrk -c50``) in a closed loop from the other core send

(a) ``page``     — ``GET /entities?type=Vehicle&limit=20`` (the published C-broker figure is
                   5,930 req/s on one core for this shape; aim ≥ 3,000 req/s);
(b) ``retrieve`` — ``GET /entities/{id}``, cycling over the 100 ids (aim ≥ 8,000 req/s).

Every answer must be 200 (and the page must hold 20 entities, checked once per phase); anything
else is an error. Baseline: the bare ASGI echo app answering the same GETs on the same core in
the same run. ``--repeat K`` alternates echo and Toshi K times; medians are reported.

Run from the repository root: ``pip install -e '.[bench]' && python benchmarks/reads.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from collections.abc import Callable
from typing import Any

import aiohttp

from harness import API, HOST, Request, Result, Server, closed_loop

COUNT = 100
AIMS = {"page": 3000.0, "retrieve": 8000.0}


def vehicle(n: int) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:Vehicle:{n:03d}",
        "type": "Vehicle",
        "speed": {"type": "Property", "value": 40 + n % 30, "unitCode": "KMH"},
        "fuelLevel": {"type": "Property", "value": round(n / COUNT, 2)},
        "status": {"type": "Property", "value": "moving" if n % 3 else "parked"},
        "owner": {"type": "Relationship", "object": f"urn:ngsi-ld:Person:{n % 7}"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [139.7 + n / 1000, 35.6 + n / 1000]},
        },
    }


async def seed(port: int) -> list[str]:
    """Create the vehicles; fails loudly on anything but 201 and checks the page shape."""
    base = f"http://{HOST}:{port}{API}"
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for n in range(COUNT):
            body = json.dumps(vehicle(n))
            async with http.post(f"{base}/entities", data=body, headers=headers) as r:
                if r.status != 201:
                    raise RuntimeError(f"seeding failed: {r.status} {await r.text()}")
        async with http.get(f"{base}/entities?type=Vehicle&limit=20") as r:
            page = await r.json()
            if r.status != 200 or len(page) != 20 or len(page[0]) != 7:
                raise RuntimeError(f"unexpected page: {r.status} {str(page)[:200]}")
    return [vehicle(n)["id"] for n in range(COUNT)]


def maker(phase: str, ids: list[str]) -> Callable[[int], Request]:
    if phase == "page":
        return lambda _n: ("GET", f"{API}/entities?type=Vehicle&limit=20", b"")
    return lambda n: ("GET", f"{API}/entities/{ids[n % len(ids)]}", b"")


async def main(args: argparse.Namespace) -> int:
    others = os.sched_getaffinity(0) - {args.core}
    if others:
        os.sched_setaffinity(0, others)
    echoes: list[Result] = []
    toshi: dict[str, list[Result]] = {"page": [], "retrieve": []}
    ids = [vehicle(n)["id"] for n in range(COUNT)]
    for _ in range(args.repeat):
        async with Server("echo", args.core) as echo:
            echoes.append(
                await closed_loop(
                    echo, "page", maker("page", ids), args.clients, args.duration, {204}
                )
            )
        async with Server("toshi", args.core) as server:
            await seed(server.port)
            for phase in toshi:
                make = maker(phase, ids)
                await closed_loop(server, phase, make, args.clients, 2.0, {200})  # warm-up
                toshi[phase].append(
                    await closed_loop(server, phase, make, args.clients, args.duration, {200})
                )
    return report(echoes, toshi)


def report(echoes: list[Result], toshi: dict[str, list[Result]]) -> int:
    print(
        f"\n{'server':8} {'phase':9} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>7} "
        f"{'p99 ms':>7} {'srv cpu':>7}"
    )
    runs = [*echoes, *(r for results in toshi.values() for r in results)]
    for r in runs:
        print(
            f"{r.server:8} {r.phase:9} {r.requests:8d} {r.errors:6d} {r.rate:8.0f} "
            f"{r.percentile(50):7.2f} {r.percentile(99):7.2f} {r.server_cpu:7.0%}"
        )
    echo_rate = statistics.median(r.rate for r in echoes)
    print(f"\nSummary (medians over {len(echoes)} repeats; echo baseline {echo_rate:,.0f} req/s)")
    for phase, results in toshi.items():
        rate = statistics.median(r.rate for r in results)
        p99 = statistics.median(r.percentile(99) for r in results)
        verdict = "MEETS" if rate >= AIMS[phase] else "MISSES"
        print(
            f"{phase:9} {rate:7,.0f} req/s, p99 {p99:6.1f} ms, ratio to echo {rate / echo_rate:.3f}"
            f" (aim >= {AIMS[phase]:,.0f} req/s): {verdict}"
        )
    errors = sum(r.errors for r in runs)
    if errors:
        first = next(r.first_error for r in runs if r.errors)
        print(f"\n!!!! {errors} FAILED REQUESTS (first: {first}): the figures are not valid !!!!")
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=50, help="concurrent connections")
    parser.add_argument("--core", type=int, default=1, help="CPU core for the servers")
    parser.add_argument("--repeat", type=int, default=3, help="measure each phase K times")
    return parser.parse_args()


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main(parse_args())))
