"""Batch upsert: entities per second through ``POST /entityOperations/upsert``, 100 per request.

Method. ``toshi serve`` with a fresh SQLite store, pinned to one core (``taskset``).
``--clients`` keep-alive connections (default 8) in a closed loop from the other core each post
batches of 100 realistic weather-station entities (six properties, a relationship, a location):

(a) ``insert`` — every batch holds new ids (201 expected);
(b) ``update`` — batches cycle over the ids written in (a), so every entity exists and is
                 replaced (204 expected), the steady state of a gateway pushing readings.

Aim: ≥ 10,000 entities/s (issue 16). Baseline: the bare ASGI echo app receiving the same bodies
on the same core in the same run, reported as entities/s it could accept. Every status is checked;
after the run the number of stored entities must equal the number inserted (nothing lost).
``--repeat K`` alternates echo and Toshi K times; medians are reported.

Run from the repository root: ``pip install -e '.[bench]' && python benchmarks/batch_upsert.py``.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import sys
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from harness import API, HOST, Request, Result, Server, closed_loop

BATCH = 100
AIM = 10_000.0


def station(n: int, rng: random.Random) -> dict[str, Any]:
    at = f"2026-12-03T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"
    reading = lambda low, high: round(rng.uniform(low, high), 1)  # noqa: E731
    return {
        "id": f"urn:ngsi-ld:WeatherObserved:{n}",
        "type": "WeatherObserved",
        "temperature": {"type": "Property", "value": reading(-5, 35), "observedAt": at},
        "relativeHumidity": {"type": "Property", "value": reading(0, 1), "observedAt": at},
        "precipitation": {"type": "Property", "value": reading(0, 50), "unitCode": "MMT"},
        "windSpeed": {"type": "Property", "value": reading(0, 20), "unitCode": "MTS"},
        "atmosphericPressure": {"type": "Property", "value": reading(980, 1030)},
        "status": {"type": "Property", "value": rng.choice(["ok", "ok", "warning"])},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{n}"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [139 + n % 997 / 1e3, 35 + n % 991 / 1e3]},
        },
    }


def batches(first_id: Callable[[int], int], seed: int) -> Callable[[int], Request]:
    rng = random.Random(seed)
    path = f"{API}/entityOperations/upsert"

    def make(n: int) -> Request:
        start = first_id(n)
        body = orjson.dumps([station(start + i, rng) for i in range(BATCH)])
        return "POST", path, body

    return make


async def stored(port: int) -> int:
    url = f"http://{HOST}:{port}{API}/entities?type=WeatherObserved&count=true&limit=0"
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return int(response.headers["NGSILD-Results-Count"])


async def measure(server: Server, args: argparse.Namespace) -> tuple[Result, Result, str]:
    inserted = itertools.count()
    insert_ids: list[int] = []

    def insert_first(_n: int) -> int:
        first = next(inserted) * BATCH
        insert_ids.append(first)
        return first

    created, replaced = ({201, 204}, {204}) if server.name == "toshi" else ({201}, {201})
    make_insert = batches(insert_first, args.seed)
    insert = await closed_loop(server, "insert", make_insert, args.clients, args.duration, created)
    known = max(1, insert.requests)
    make_update = batches(lambda n: n % known * BATCH, args.seed + 1)
    update = await closed_loop(server, "update", make_update, args.clients, args.duration, replaced)
    problem = ""
    if server.name == "toshi":
        count = await stored(server.port)
        if count != insert.requests * BATCH:
            problem = f"{count} entities stored, {insert.requests * BATCH} acknowledged"
    return insert, update, problem


async def main(args: argparse.Namespace) -> int:
    others = os.sched_getaffinity(0) - {args.core}
    if others:
        os.sched_setaffinity(0, others)
    runs: dict[str, dict[str, list[Result]]] = {
        "echo": {"insert": [], "update": []},
        "toshi": {"insert": [], "update": []},
    }
    problems: list[str] = []
    for _ in range(args.repeat):
        for name in ("echo", "toshi"):
            async with Server(name, args.core) as server:
                insert, update, problem = await measure(server, args)
            runs[name]["insert"].append(insert)
            runs[name]["update"].append(update)
            problems += [problem] if problem else []
    return report(runs, problems)


def report(runs: dict[str, dict[str, list[Result]]], problems: list[str]) -> int:
    print(
        f"\n{'server':7} {'phase':7} {'batches':>8} {'errors':>6} {'entities/s':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'srv cpu':>7}"
    )
    for name, phases in runs.items():
        for phase, results in phases.items():
            for r in results:
                print(
                    f"{name:7} {phase:7} {r.requests:8d} {r.errors:6d} {r.rate * BATCH:10,.0f} "
                    f"{r.percentile(50):7.1f} {r.percentile(99):7.1f} {r.server_cpu:7.0%}"
                )
                if r.errors:
                    problems.append(f"{r.errors} failed requests, first: {r.first_error}")
    repeats = len(runs["toshi"]["insert"])
    print(f"\nSummary (medians over {repeats} repeats, {BATCH} entities per request)")
    for phase in ("insert", "update"):
        toshi = statistics.median(r.rate * BATCH for r in runs["toshi"][phase])
        echo = statistics.median(r.rate * BATCH for r in runs["echo"][phase])
        p99 = statistics.median(r.percentile(99) for r in runs["toshi"][phase])
        verdict = "MEETS" if toshi >= AIM else "MISSES"
        print(
            f"{phase:7} {toshi:9,.0f} entities/s, p99 {p99:6.1f} ms per batch; echo {echo:,.0f}/s, "
            f"ratio {toshi / echo:.3f} (aim >= {AIM:,.0f}/s): {verdict}"
        )
    if problems:
        print(f"\n!!!! {len(problems)} PROBLEMS: the figures above are not valid !!!!")
        for problem in problems:
            print(f"!!!! {problem}")
        return 1
    return 0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections")
    parser.add_argument("--core", type=int, default=1, help="CPU core for the servers")
    parser.add_argument("--repeat", type=int, default=3, help="measure each phase K times")
    parser.add_argument("--seed", type=int, default=2026, help="random seed of the readings")
    return parser.parse_args()


if __name__ == "__main__":
    import uvloop

    sys.exit(uvloop.run(main(parse_args())))
