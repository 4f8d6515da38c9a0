"""Entity-write benchmark: create, update attrs, partial attribute update, vs a bare ASGI echo.

Method. Each server runs as its own process pinned to one core (``taskset``); this load generator
pins itself to the other core and drives ``--clients`` concurrent keep-alive connections (aiohttp;
httpx is far too slow to generate load here) in a closed loop for ``--duration`` seconds per
phase. Phases, against the same entities:

1. ``create``  — ``POST /ngsi-ld/v1/entities`` of a realistic sensor entity (6 properties,
   1 relationship, 1 GeoProperty);
2. ``update``  — ``PATCH …/entities/{id}/attrs`` with a new temperature and observedAt;
3. ``partial`` — ``PATCH …/entities/{id}/attrs/temperature`` (partial attribute update, the
   issue's target: ≥ 0.10 × echo, p99 ≤ 25 ms).

The echo app (``benchmarks/echo_app.py``) receives the same requests in the same run on the same
core; the ratio toshi/echo is the figure to compare across machines, since absolute numbers here
move by 2× between runs. With ``--repeat K`` the pair is measured K times, alternating, and the
median ratio is reported. Every Toshi write is acknowledged (committed to SQLite's WAL) before
its 201/204 — the figure is for durable writes.

Run: ``pip install -e '.[bench]' && python benchmarks/entity_write.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
API = "/ngsi-ld/v1"
JSON_HEADERS = {"Content-Type": "application/json"}


def sensor(entity_id: str, n: int) -> dict[str, Any]:
    """A realistic river-side sensor: 6 properties, 1 relationship, 1 GeoProperty."""
    at = "2026-11-23T01:00:00Z"
    return {
        "id": entity_id,
        "type": "WeatherObserved",
        "temperature": {
            "type": "Property",
            "value": 12.5 + n % 10,
            "unitCode": "CEL",
            "observedAt": at,
        },
        "relativeHumidity": {"type": "Property", "value": 0.61, "observedAt": at},
        "precipitation": {"type": "Property", "value": 3.2, "unitCode": "MMT"},
        "windSpeed": {"type": "Property", "value": 4.1, "unitCode": "MTS"},
        "riverLevel": {"type": "Property", "value": 1.52, "unitCode": "MTR"},
        "status": {"type": "Property", "value": "ok"},
        "refDevice": {"type": "Relationship", "object": f"urn:ngsi-ld:Device:{n}"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [135.77, 35.01]},
        },
    }


@dataclass
class Result:
    """One phase against one server."""

    server: str
    phase: str
    seconds: float
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def rate(self) -> float:
        return len(self.latencies_ms) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server process pinned to one core."""

    def __init__(self, name: str, core: int) -> None:
        self.name = name
        self.core = core
        self.port = free_port()
        self.data = Path(tempfile.mkdtemp(prefix="toshi-bench-"))
        self.process: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        if self.name == "toshi":
            return [
                sys.executable,
                "-m",
                "broker",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--store",
                f"sqlite:///{self.data}",
                "--log-level",
                "warning",
            ]
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "benchmarks.echo_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
            "--log-level",
            "warning",
        ]

    async def __aenter__(self) -> Server:
        taskset = ["taskset", "-c", str(self.core)] if shutil.which("taskset") else []
        self.process = subprocess.Popen([*taskset, *self.command()], cwd=ROOT)
        async with aiohttp.ClientSession() as http:
            for _ in range(300):
                try:
                    async with http.get(f"http://127.0.0.1:{self.port}/health") as response:
                        if response.status == 200:
                            return self
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    async def __aexit__(self, *exc: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        shutil.rmtree(self.data, ignore_errors=True)


def request_for(phase: str, client: int, n: int) -> tuple[str, str, bytes]:
    entity_id = f"urn:ngsi-ld:WeatherObserved:{client}-{n}"
    if phase == "create":
        return "POST", f"{API}/entities", json.dumps(sensor(entity_id, n)).encode()
    at = f"2026-11-23T02:{n % 60:02d}:00Z"
    if phase == "update":
        body = {
            "temperature": {
                "type": "Property",
                "value": n % 40,
                "unitCode": "CEL",
                "observedAt": at,
            }
        }
        return "PATCH", f"{API}/entities/{entity_id}/attrs", json.dumps(body).encode()
    body = {"value": n % 40, "observedAt": at}
    return "PATCH", f"{API}/entities/{entity_id}/attrs/temperature", json.dumps(body).encode()


async def run_phase(
    server: Server, phase: str, clients: int, duration: float, created: list[int]
) -> Result:
    """Closed loop: each client sends its next request as soon as the previous one answered."""
    result = Result(server.name, phase, duration)
    expected = 201 if phase == "create" else 204
    base = f"http://127.0.0.1:{server.port}"
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(base, connector=connector) as http:
        deadline = time.perf_counter() + duration

        async def client(index: int) -> None:
            # Updates cycle over the entities this client created in the create phase.
            numbers = (
                itertools.count()
                if phase == "create"
                else itertools.cycle(range(max(1, created[index])))
            )
            for n in numbers:
                if time.perf_counter() >= deadline:
                    break
                method, path, body = request_for(phase, index, n)
                started = time.perf_counter()
                async with http.request(method, path, data=body, headers=JSON_HEADERS) as r:
                    await r.read()
                    if r.status != expected:
                        result.errors += 1
                        result.first_error = result.first_error or f"{r.status} {path}"
                        continue
                result.latencies_ms.append((time.perf_counter() - started) * 1000)
                if phase == "create":
                    created[index] = n + 1

        started = time.perf_counter()
        await asyncio.gather(*[client(i) for i in range(clients)])
        result.seconds = time.perf_counter() - started
    return result


async def measure(
    name: str, core: int, phases: list[str], clients: int, duration: float
) -> dict[str, Result]:
    created = [0] * clients
    results: dict[str, Result] = {}
    async with Server(name, core) as server:
        for phase in phases:
            results[phase] = await run_phase(server, phase, clients, duration, created)
    return results


def report(runs: list[tuple[dict[str, Result], dict[str, Result]]], phases: list[str]) -> dict:
    summary: dict[str, Any] = {}
    print(
        f"{'phase':8} {'server':6} {'req/s':>9} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} "
        f"{'errors':>6} {'ratio':>6}"
    )
    for phase in phases:
        ratios = []
        for toshi, echo in runs:
            t, e = toshi[phase], echo[phase]
            ratio = t.rate / e.rate if e.rate else 0.0
            ratios.append(ratio)
            for r in (e, t):
                tail = f"{ratio:6.3f}" if r is t else ""
                print(
                    f"{phase:8} {r.server:6} {r.rate:9.0f} {r.percentile(50):7.2f} "
                    f"{r.percentile(90):7.2f} {r.percentile(99):7.2f} {r.errors:6d} {tail}"
                )
                if r.errors:
                    print(f"  !! {r.errors} failed requests, first: {r.first_error}")
        toshi_p99 = statistics.median(t[phase].percentile(99) for t, _ in runs)
        summary[phase] = {
            "median_ratio": statistics.median(ratios),
            "median_toshi_rate": statistics.median(t[phase].rate for t, _ in runs),
            "median_echo_rate": statistics.median(e[phase].rate for _, e in runs),
            "median_toshi_p99_ms": toshi_p99,
            "errors": sum(t[phase].errors for t, _ in runs),
        }
        print(
            f"{phase:8} median ratio toshi/echo = {statistics.median(ratios):.3f} "
            f"over {len(runs)} run(s); toshi p99 {toshi_p99:.1f} ms"
        )
    if "partial" in summary:
        s = summary["partial"]
        verdict = (
            "MEETS" if s["median_ratio"] >= 0.10 and s["median_toshi_p99_ms"] <= 25 else "MISSES"
        )
        print(
            f"partial attribute update: {verdict} target (>= 0.10 x echo, p99 <= 25 ms); "
            f"stretch 0.15 x {'met' if s['median_ratio'] >= 0.15 else 'not met'}"
        )
    return summary


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30, help="seconds per phase")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--core", type=int, default=1, help="CPU core for the servers")
    parser.add_argument("--phases", default="create,update,partial")
    parser.add_argument("--repeat", type=int, default=1, help="alternate echo/toshi K times")
    parser.add_argument("--json", help="write the summary here")
    args = parser.parse_args()
    phases = args.phases.split(",")
    cores = os.sched_getaffinity(0)
    others = cores - {args.core}
    if others:
        os.sched_setaffinity(0, others)  # keep the load generator off the servers' core
    print(
        f"servers on core {args.core}; load generator on {sorted(others or cores)}; "
        f"{args.clients} clients; {args.duration:g} s per phase; {args.repeat} run(s)"
    )
    runs = []
    for _ in range(args.repeat):
        echo = await measure("echo", args.core, phases, args.clients, args.duration)
        toshi = await measure("toshi", args.core, phases, args.clients, args.duration)
        runs.append((toshi, echo))
    summary = report(runs, phases)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
