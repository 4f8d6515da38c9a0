"""The Temporal API on SQLite: a town's history questions against 14 million instances.

Method. A fresh SQLite store is filled through the store port (``EntityStore.create`` with the
history it appends, the path every write takes; HTTP would only slow the seeding down) with

* 1,000 ``RiverGauge`` entities, each with 10,000 ``level`` readings (Property, number,
  ``unitCode``, ``observedAt`` one minute apart): 10 million instances;
* 100 ``TideGauge`` entities, each with 30 days of 1-minute readings (43,200 instances).

Then ``toshi serve`` is started on that store, pinned to one core, and one keep-alive client
on the other core measures, sequentially (latency, not throughput):

(a) ``lastN``    — ``GET /temporal/entities/{id}?attrs=level&lastN=100``, random gauges
                   (aim p99 ≤ 10 ms);
(b) ``one30d``   — one 30-day gauge, ``aggrMethods=avg,max``, ``aggrPeriodDuration=PT1H``
                   over its 30 days (720 periods; aim p99 ≤ 100 ms);
(c) ``type30d``  — the same for the 100 30-day gauges of one type in one request
                   (``type=TideGauge&limit=100``; aim p99 ≤ 1 s);
(d) ``update``   — partial-update throughput (``PATCH …/attrs/level``, 20 clients, closed
                   loop) in a tenant with history on, against a tenant with history off in the
                   same server and run (aim ≥ 0.85×);
(e) ``bytes``    — bytes on disk per instance: the pages of the instances table, its index and
                   the series keys (``dbstat``), divided by the instances (aim ≤ 80).

Baseline for (a)-(c): ``GET /entities/{id}`` of the same entity in the same run (the cheapest
read the broker has). ``--repeat K`` repeats the measurements K times; medians are reported.
``--scale`` shrinks the data set for a quick try (the figures then say nothing);
``--updates-only`` measures (d) alone on a fresh, empty store (it does not depend on the data set).

Run from the repository root: ``pip install -e '.[bench]' && python benchmarks/temporal.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker.ngsild import patch
from broker.ngsild.temporal.history import HistoryRow, given
from broker.ngsild.temporal.times import from_micros, to_micros
from broker.store.sqlite import SqliteStore

from harness import API, HOST, Server, cpu_seconds, finish, raw_clients

LEVEL = "https://uri.etsi.org/ngsi-ld/default-context/level"
START = to_micros("2026-01-01T00:00:00Z")
MINUTE = 60_000_000
AIMS = {"lastN_p99_ms": 10.0, "one30d_p99_ms": 100.0, "type30d_p99_ms": 1000.0}


def gauge(entity_id: str, kind: str, value: float, at: int) -> dict[str, Any]:
    return {
        "id": entity_id,
        "type": [f"https://uri.etsi.org/ngsi-ld/default-context/{kind}"],
        "attrs": {
            LEVEL: [
                {
                    "type": "Property",
                    "value": value,
                    "unitCode": "MTR",
                    "observedAt": from_micros(at),
                }
            ],
            "https://uri.etsi.org/ngsi-ld/location": [
                {
                    "type": "GeoProperty",
                    "value": {"type": "Point", "coordinates": [135.7, 35.0]},
                }
            ],
        },
    }


def readings(n: int, seed: int) -> list[HistoryRow]:
    rng = random.Random(seed)
    level, rows = 1.0, []
    for i in range(n):
        level = max(0.0, level + rng.uniform(-0.05, 0.05))
        instance = {
            "type": "Property",
            "value": round(level, 3),
            "unitCode": "MTR",
            "observedAt": from_micros(START + i * MINUTE),
        }
        rows.append(HistoryRow(LEVEL, None, instance, from_micros(START + i * MINUTE)))
    return rows


async def seed(directory: Path, gauges: int, readings_each: int, long_gauges: int) -> int:
    """Fill the store through the port; returns the number of instances written."""
    store = SqliteStore(directory)
    await store.start()
    tenant = await store.tenant("")
    total = 0
    plan = [(f"urn:ngsi-ld:RiverGauge:{g:04d}", "RiverGauge", readings_each) for g in range(gauges)]
    plan += [(f"urn:ngsi-ld:TideGauge:{g:03d}", "TideGauge", 43_200) for g in range(long_gauges)]
    started = time.perf_counter()
    for n, (entity_id, kind, count) in enumerate(plan):
        rows = readings(count, n)
        last = rows[-1].instance
        doc = patch.new_entity(
            gauge(entity_id, kind, last["value"], to_micros(last["observedAt"])),
            now=from_micros(START + count * MINUTE),
        )
        await tenant.create(doc, history=given(rows))
        total += count
        if n % 100 == 99:
            rate = total / (time.perf_counter() - started)
            print(f"  seeded {n + 1}/{len(plan)} entities, {total:,} instances ({rate:,.0f}/s)")
    await store.close()
    return total


def bytes_per_instance(path: Path) -> tuple[float, int]:
    db = sqlite3.connect(path)
    try:
        instances = db.execute("SELECT count(*) FROM instances").fetchone()[0]
        size = db.execute(
            "SELECT sum(pgsize) FROM dbstat "
            "WHERE name IN ('instances', 'instances_by_time', 'history_keys', "
            "'sqlite_autoindex_history_keys_1', 'history_docs', "
            "'sqlite_autoindex_history_docs_1', 'history_hours')"
        ).fetchone()[0]
    finally:
        db.close()
    return size / instances, instances


async def latencies(
    http: aiohttp.ClientSession, urls: list[str], check: Any = None
) -> tuple[list[float], list[str]]:
    """Each URL once, one after another; ms per answer, and what went wrong."""
    found: list[float] = []
    problems: list[str] = []
    for url in urls:
        started = time.perf_counter()
        async with http.get(url) as response:
            body = await response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                problems.append(f"{response.status} on {url}: {body[:200]!r}")
                continue
            if check is not None:
                problem = check(json.loads(body))
                if problem:
                    problems.append(f"{problem} on {url}")
        found.append(elapsed)
    return found, problems


def p(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))] if ordered else 0.0


def last_n_ok(body: dict[str, Any]) -> str | None:
    return None if len(body.get("level", [])) == 100 else "lastN=100 did not give 100 instances"


def one_ok(body: dict[str, Any]) -> str | None:
    periods = len(body.get("level", {}).get("avg", []))
    return None if periods == 720 else f"{periods} periods instead of 720"


def type_ok(long_gauges: int) -> Any:
    def check(body: list[dict[str, Any]]) -> str | None:
        if len(body) != long_gauges:
            return f"{len(body)} entities instead of {long_gauges}"
        periods = {len(e.get("level", {}).get("max", [])) for e in body}
        return None if periods == {720} else f"periods per entity {periods}"

    return check


async def prepare_update_tenants(port: int) -> None:
    base = f"http://{HOST}:{port}"
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession() as http:
        for tenant, history in (("hist", True), ("quiet", False)):
            async with http.delete(f"{base}/admin/tenants/{tenant}"):
                pass  # left by an earlier run on the same --data
            body = json.dumps({"name": tenant, "history": {"enabled": history}})
            async with http.post(f"{base}/admin/tenants", data=body, headers=headers) as r:
                if r.status != 201:
                    raise RuntimeError(f"tenant {tenant}: {r.status} {await r.text()}")
            for n in range(100):
                entity = {
                    "id": f"urn:ngsi-ld:RiverGauge:u{n:03d}",
                    "type": "RiverGauge",
                    "level": {"type": "Property", "value": 1.0, "unitCode": "MTR"},
                }
                async with http.post(
                    f"{base}{API}/entities",
                    data=json.dumps(entity),
                    headers={**headers, "NGSILD-Tenant": tenant},
                ) as r:
                    if r.status != 201:
                        raise RuntimeError(f"seeding {tenant}: {r.status} {await r.text()}")


async def update_rate(server: Server, tenant: str, duration: float) -> tuple[float, int, float]:
    """Partial updates per second from 20 keep-alive clients in a closed loop, in ``tenant``;
    errors; and the server's CPU time per update in µs (steadier than the rate on a shared
    machine)."""
    senders, close = await raw_clients(server.port, 20, lambda n: {"NGSILD-Tenant": tenant})
    counter = _READINGS  # shared by every phase: each update is a new observation
    done, errors = 0, 0

    async def client(send: Any) -> None:
        nonlocal done, errors
        while time.perf_counter() < deadline:
            status = await send(_patch(next(counter)))
            if status == 204:
                done += 1
            else:
                errors += 1

    started, cpu = time.perf_counter(), cpu_seconds(server.pid)
    deadline = started + duration
    await asyncio.gather(*(client(send) for send in senders))
    close()
    used = (cpu_seconds(server.pid) - cpu) / max(done, 1) * 1e6
    return done / (time.perf_counter() - started), errors, used


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the data set")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per update phase")
    parser.add_argument("--json", help="write the figures to this file")
    parser.add_argument("--data", help="reuse (or keep) the seeded store in this directory")
    parser.add_argument("--updates-only", action="store_true", help="measure (d) alone")
    args = parser.parse_args()
    if args.updates_only:
        return await updates_only(args.repeat, args.duration, args.json)
    gauges = max(2, int(1000 * args.scale))
    each = max(100, int(10_000 * args.scale))
    long_gauges = max(2, int(100 * args.scale))
    data = Path(args.data) if args.data else Path(tempfile.mkdtemp(prefix="toshi-temporal-"))
    problems: list[str] = []
    if not (data / "default.sqlite3").exists():
        print(f"seeding {gauges} x {each} + {long_gauges} x 43,200 instances into {data}")
        started = time.perf_counter()
        await seed(data, gauges, each, long_gauges)
        print(f"seeded in {time.perf_counter() - started:.0f} s")
    per_instance, instances = bytes_per_instance(data / "default.sqlite3")
    print(f"(e) {instances:,} instances, {per_instance:.1f} bytes each on disk (aim <= 80)")
    rng = random.Random(7)
    figures: dict[str, Any] = {"instances": instances, "bytes_per_instance": per_instance}
    runs: dict[str, list[float]] = {}
    async with Server("toshi", core=0, data=data) as server:
        await prepare_update_tenants(server.port)
        base = f"http://{HOST}:{server.port}{API}"
        end = from_micros(START + 43_200 * MINUTE)
        timespan = f"timerel=between&timeAt={from_micros(START)}&endTimeAt={end}"
        aggr = "options=aggregatedValues&aggrMethods=avg,max&aggrPeriodDuration=PT1H"
        async with aiohttp.ClientSession() as http:
            for _ in range(args.repeat):
                ids = [f"urn:ngsi-ld:RiverGauge:{rng.randrange(gauges):04d}" for _ in range(200)]
                phases = {
                    "baseline": ([f"{base}/entities/{i}" for i in ids], None),
                    "lastN": (
                        [f"{base}/temporal/entities/{i}?attrs=level&lastN=100" for i in ids],
                        last_n_ok,
                    ),
                    "one30d": (
                        [
                            f"{base}/temporal/entities/urn:ngsi-ld:TideGauge:"
                            f"{rng.randrange(long_gauges):03d}?attrs=level&{aggr}&{timespan}"
                            for _ in range(40)
                        ],
                        one_ok,
                    ),
                    "type30d": (
                        [
                            f"{base}/temporal/entities?type=TideGauge&attrs=level&limit=100&"
                            f"{aggr}&{timespan}"
                        ]
                        * 8,
                        type_ok(long_gauges),
                    ),
                }
                for name, (urls, check) in phases.items():
                    found, wrong = await latencies(http, urls, check)
                    problems.extend(wrong[:3])
                    runs.setdefault(f"{name}_p50_ms", []).append(p(found, 50))
                    runs.setdefault(f"{name}_p99_ms", []).append(p(found, 99))
                for tenant in ("quiet", "hist"):
                    rate, errors, used = await update_rate(server, tenant, args.duration)
                    if errors:
                        problems.append(f"{errors} errors updating tenant {tenant}")
                    runs.setdefault(f"update_{tenant}_per_s", []).append(rate)
                    runs.setdefault(f"update_{tenant}_cpu_us", []).append(used)
    medians = {key: statistics.median(values) for key, values in runs.items()}
    figures.update(medians)
    ratio = medians["update_hist_per_s"] / medians["update_quiet_per_s"]
    figures["update_ratio"] = ratio
    print(f"\nmedians over {args.repeat} repeats (baseline: GET /entities/{{id}} in the same run)")
    print(
        f"    baseline retrieve  p50 {medians['baseline_p50_ms']:7.2f} ms  "
        f"p99 {medians['baseline_p99_ms']:7.2f} ms"
    )
    for name, label in (
        ("lastN", "(a) lastN=100"),
        ("one30d", "(b) one 30-day"),
        ("type30d", "(c) 100 x 30-day"),
    ):
        p50, p99 = medians[f"{name}_p50_ms"], medians[f"{name}_p99_ms"]
        aim = AIMS[f"{name}_p99_ms"]
        verdict = "MET" if p99 <= aim else "MISSED"
        print(
            f"{label:18s} p50 {p50:7.2f} ms  p99 {p99:7.2f} ms  "
            f"({p99 / medians['baseline_p99_ms']:.1f}x baseline p99; "
            f"aim p99 <= {aim:g} ms: {verdict})"
        )
    print(
        f"(d) partial updates: history on {medians['update_hist_per_s']:,.0f}/s, off "
        f"{medians['update_quiet_per_s']:,.0f}/s: {ratio:.2f}x (aim >= 0.85: "
        f"{'MET' if ratio >= 0.85 else 'MISSED'}); server CPU per update "
        f"{medians['update_hist_cpu_us']:.0f} µs on, {medians['update_quiet_cpu_us']:.0f} µs off"
    )
    print(
        f"(e) {per_instance:.1f} bytes per instance (aim <= 80: "
        f"{'MET' if per_instance <= 80 else 'MISSED'})"
    )
    return finish(args.json, figures, problems)


async def updates_only(repeat: int, duration: float, json_path: str | None) -> int:
    """(d) alone: history on against off, alternating, in one server on an empty store."""
    problems: list[str] = []
    runs: dict[str, list[float]] = {}
    async with Server("toshi", core=0) as server:
        await prepare_update_tenants(server.port)
        for _ in range(repeat):
            for tenant in ("quiet", "hist"):
                rate, errors, used = await update_rate(server, tenant, duration)
                if errors:
                    problems.append(f"{errors} errors updating tenant {tenant}")
                runs.setdefault(f"update_{tenant}_per_s", []).append(rate)
                runs.setdefault(f"update_{tenant}_cpu_us", []).append(used)
    figures: dict[str, Any] = {key: statistics.median(v) for key, v in runs.items()}
    figures["update_ratio"] = ratio = figures["update_hist_per_s"] / figures["update_quiet_per_s"]
    hist_cpu, quiet_cpu = figures["update_hist_cpu_us"], figures["update_quiet_cpu_us"]
    for tenant in ("quiet", "hist"):
        rates = " ".join(f"{r:,.0f}/s" for r in runs[f"update_{tenant}_per_s"])
        cpu = " ".join(f"{c:.0f}" for c in runs[f"update_{tenant}_cpu_us"])
        print(f"    {tenant:5s} {rates}; server CPU µs per update {cpu}")
    print(
        f"(d) partial updates, medians over {repeat}: history on "
        f"{figures['update_hist_per_s']:,.0f}/s, off {figures['update_quiet_per_s']:,.0f}/s: "
        f"{ratio:.2f}x (aim >= 0.85: {'MET' if ratio >= 0.85 else 'MISSED'}); server CPU per "
        f"update {hist_cpu:.0f} µs on, {quiet_cpu:.0f} µs off ({quiet_cpu / hist_cpu:.2f}x)"
    )
    return finish(json_path, figures, problems)


_READINGS = iter(range(10**9))


def _patch(n: int) -> tuple[str, str, bytes]:
    at = from_micros(START + (50_000 + n) * MINUTE)
    body = json.dumps({"value": n % 500 / 100, "observedAt": at}).encode()
    return ("PATCH", f"{API}/entities/urn:ngsi-ld:RiverGauge:u{n % 100:03d}/attrs/level", body)


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
