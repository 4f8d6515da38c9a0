"""Entity-write benchmark: create, update attrs, partial attribute update, vs a bare ASGI echo.

Method. Each server runs as its own process pinned to one core (``taskset -c CORE``); this load
generator pins itself to the other core(s) and drives ``--clients`` concurrent keep-alive
connections in a closed loop (each client sends its next request as soon as the previous one is
answered). Phases, against the same entities:

1. ``create``  — ``POST /ngsi-ld/v1/entities`` of a realistic sensor entity (6 properties,
   1 relationship, 1 GeoProperty, as in the FIWARE/Stellio load tests), for duration/3;
2. ``update``  — ``PATCH …/entities/{id}/attrs`` with a new temperature and observedAt;
3. ``partial`` — ``PATCH …/entities/{id}/attrs/temperature`` with ``{"value", "observedAt"}``
   (partial attribute update, the issue's target: ≥ 0.10 × echo, p99 ≤ 25 ms; stretch 0.15 ×).

Every response status is checked (201 for create, 204 for the PATCHes); a request that fails or
answers anything else is counted as an error, not as a latency sample, and a run with errors says
so loudly and exits with status 1.

Baseline. ``benchmarks/echo_app.py`` (a bare ASGI app on the same uvicorn + uvloop + httptools
stack, reading the body and answering 201/204 with an empty body) receives the same requests,
from the same number of clients, for the same time, in the same run, on the same core. Absolute
numbers on these shared machines move by 2× between runs; the ratio toshi/echo does not, so it is
the figure to compare. ``--repeat K`` measures the pair K times, alternating (echo, toshi, echo,
toshi …), and reports the median ratio.

Caveats.

* The load generator is one Python process on one core. The default client (``--client raw``:
  minimal HTTP/1.1 over asyncio protocols on uvloop) is about twice as fast as aiohttp
  (``--client aiohttp``, kept as a cross-check), but it can still be the bottleneck against the
  echo app. The ``srv cpu`` column (server process CPU time / wall time) shows it: an echo run
  below ~90 % means the generator, not the server, set the echo figure, so the ratio printed is an
  upper bound for Toshi.
* Closed-loop latency at saturation is mostly queueing (about clients / rate), so p50 follows from
  the throughput; p99 additionally shows stalls (GC, SQLite commits/checkpoints, event-loop
  blocking). It is not an open-loop latency at a fixed offered rate.
* Every Toshi write is acknowledged after it is committed to SQLite (WAL, synchronous=normal
  unless ``TOSHI_SQLITE__SYNCHRONOUS`` says otherwise): the figures are for acknowledged writes.

Run from the repository root: ``pip install -e '.[bench]' && python benchmarks/entity_write.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiohttp

from harness import (
    API,
    HOST,
    Request,
    Result,
    Send,
    Server,
    cpu_seconds,
    raw_clients,
)

EXPECTED_STATUS = {"create": 201, "update": 204, "partial": 204}
TARGET_RATIO, STRETCH_RATIO, TARGET_P99_MS = 0.10, 0.15, 25.0


# --------------------------------------------------------------------------- request shapes


def sensor(entity_id: str, n: int) -> dict[str, Any]:
    """A realistic river-side sensor: 6 properties, 1 relationship, 1 GeoProperty (~0.6 KB)."""
    at = "2026-11-23T01:00:00Z"
    return {
        "id": entity_id,
        "type": "Sensor",
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


def request_for(phase: str, client: int, n: int) -> Request:
    """The n-th request of one client in one phase."""
    entity_id = f"urn:ngsi-ld:Sensor:{client}-{n}"
    if phase == "create":
        return "POST", f"{API}/entities", json.dumps(sensor(entity_id, n)).encode()
    at = f"2026-11-23T02:{n % 60:02d}:{n // 60 % 60:02d}Z"
    if phase == "update":
        body: dict[str, Any] = {
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


# --------------------------------------------------------------------------- HTTP clients


async def aiohttp_clients(port: int, clients: int) -> tuple[list[Send], Callable[[], None]]:
    """One aiohttp session (keep-alive pool of ``clients`` connections) shared by all clients."""
    session = aiohttp.ClientSession(
        f"http://{HOST}:{port}", connector=aiohttp.TCPConnector(limit=clients)
    )
    headers = {"Content-Type": "application/json"}

    async def send(request: Request) -> int:
        method, path, body = request
        async with session.request(method, path, data=body, headers=headers) as response:
            await response.read()
            return response.status

    def close() -> None:
        asyncio.get_running_loop().create_task(session.close())

    return [send] * clients, close


CLIENTS = {"raw": raw_clients, "aiohttp": aiohttp_clients}


# --------------------------------------------------------------------------- servers


# --------------------------------------------------------------------------- measurement


async def run_client(
    send: Send, result: Result, index: int, deadline: float, numbers: Iterator[int]
) -> int:
    """One closed-loop client; returns how many requests it sent."""
    expected = EXPECTED_STATUS[result.phase]
    sent = 0
    for n in numbers:
        if time.perf_counter() >= deadline:
            break
        request = request_for(result.phase, index, n)
        started = time.perf_counter()
        sent += 1
        try:
            status = await send(request)
        except (OSError, aiohttp.ClientError) as error:
            result.note_error(f"{type(error).__name__}: {error} on {request[0]} {request[1]}")
            break  # the connection is gone; this client stops
        if status != expected:
            result.note_error(f"{status} on {request[0]} {request[1]}")
            continue
        result.latencies_ms.append((time.perf_counter() - started) * 1000)
    return sent


async def run_phase(
    server: Server,
    phase: str,
    clients: int,
    seconds: float,
    created: list[int],
    client: str,
    headers: Callable[[int], dict[str, str]] | None = None,
) -> Result:
    """``clients`` closed-loop clients for ``seconds``; PATCHes cycle over created entities.
    Client ``n`` sends ``headers(n)`` with its requests (raw client only)."""
    result = Result(server.name, phase, seconds)
    if headers is None:
        senders, close = await CLIENTS[client](server.port, clients)
    else:
        senders, close = await raw_clients(server.port, clients, headers)

    def numbers(index: int) -> Iterator[int]:
        if phase == "create":
            return itertools.count(created[index])
        return itertools.cycle(range(max(1, created[index])))

    cpu_before, wall_before = cpu_seconds(server.pid), time.perf_counter()
    own_before = time.process_time()
    deadline = wall_before + seconds
    sent = await asyncio.gather(
        *[run_client(senders[i], result, i, deadline, numbers(i)) for i in range(clients)]
    )
    result.seconds = time.perf_counter() - wall_before
    result.server_cpu = (cpu_seconds(server.pid) - cpu_before) / result.seconds
    result.generator_cpu = (time.process_time() - own_before) / result.seconds
    close()
    if phase == "create":
        for i, count in enumerate(sent):
            created[i] += count
    return result


async def measure(
    name: str, core: int, phases: list[str], clients: int, duration: float, client: str
) -> dict[str, Result]:
    """Start one server, run every phase against it, stop it."""
    created = [0] * clients
    results: dict[str, Result] = {}
    async with Server(name, core) as server:
        if "create" not in phases:  # the PATCH phases need entities: create some, unmeasured
            await run_phase(server, "create", clients, duration / 3, created, client)
        for phase in phases:
            seconds = duration / 3 if phase == "create" else duration
            results[phase] = await run_phase(server, phase, clients, seconds, created, client)
            await asyncio.sleep(0.5)  # let the server settle (close connections, checkpoint)
    return results


# --------------------------------------------------------------------------- reporting

Run = tuple[dict[str, Result], dict[str, Result]]  # (toshi, echo)


def print_row(r: Result, ratio: str) -> None:
    print(
        f"{r.phase:8} {r.server:6} {r.requests:9d} {r.errors:6d} {r.rate:9.0f} "
        f"{r.percentile(50):7.2f} {r.percentile(90):7.2f} {r.percentile(99):7.2f} "
        f"{r.server_cpu:7.0%} {r.generator_cpu:7.0%} {ratio:>6}"
    )
    if r.errors:
        print(f"  !! {r.errors} FAILED REQUESTS against {r.server}, first: {r.first_error}")


def summarise_phase(runs: list[Run], phase: str) -> dict[str, Any]:
    ratios = [t[phase].rate / e[phase].rate if e[phase].rate else 0.0 for t, e in runs]
    return {
        "median_ratio": statistics.median(ratios),
        "ratios": ratios,
        "median_toshi_rate": statistics.median(t[phase].rate for t, _ in runs),
        "median_echo_rate": statistics.median(e[phase].rate for _, e in runs),
        "median_toshi_p50_ms": statistics.median(t[phase].percentile(50) for t, _ in runs),
        "median_toshi_p99_ms": statistics.median(t[phase].percentile(99) for t, _ in runs),
        "median_echo_server_cpu": statistics.median(e[phase].server_cpu for _, e in runs),
        "toshi_errors": sum(t[phase].errors for t, _ in runs),
        "echo_errors": sum(e[phase].errors for _, e in runs),
    }


def report(runs: list[Run], phases: list[str]) -> dict[str, Any]:
    """Print every measurement, the medians and the verdict; return the summary."""
    print(
        f"{'phase':8} {'server':6} {'requests':>9} {'errors':>6} {'req/s':>9} {'p50 ms':>7} "
        f"{'p90 ms':>7} {'p99 ms':>7} {'srv cpu':>7} {'gen cpu':>7} {'ratio':>6}"
    )
    summary: dict[str, Any] = {}
    for phase in phases:
        for toshi, echo in runs:
            t, e = toshi[phase], echo[phase]
            print_row(e, "")
            print_row(t, f"{t.rate / e.rate:.3f}" if e.rate else "n/a")
        s = summary[phase] = summarise_phase(runs, phase)
        print(
            f"{phase:8} median over {len(runs)} run(s): toshi {s['median_toshi_rate']:.0f} req/s, "
            f"echo {s['median_echo_rate']:.0f} req/s, ratio {s['median_ratio']:.3f}, "
            f"toshi p99 {s['median_toshi_p99_ms']:.1f} ms"
        )
        if s["median_echo_server_cpu"] < 0.9:
            print(
                f"  note: echo server used {s['median_echo_server_cpu']:.0%} of its core; the "
                "load generator limited the echo figure, so this ratio is an upper bound"
            )
    if "partial" in summary:
        s = summary["partial"]
        meets = s["median_ratio"] >= TARGET_RATIO and s["median_toshi_p99_ms"] <= TARGET_P99_MS
        stretch = s["median_ratio"] >= STRETCH_RATIO
        s["verdict"] = "MEETS" if meets else "MISSES"
        print(
            f"partial attribute update: {s['verdict']} target (ratio {s['median_ratio']:.3f} "
            f"vs >= {TARGET_RATIO:.2f}, p99 {s['median_toshi_p99_ms']:.1f} ms vs <= "
            f"{TARGET_P99_MS:.0f} ms); stretch {STRETCH_RATIO:.2f} x "
            f"{'met' if stretch else 'not met'}"
        )
    return summary


# --------------------------------------------------------------------------- main


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--duration", type=float, default=30, help="seconds per PATCH phase (create: 1/3)"
    )
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--core", type=int, default=1, help="CPU core for the servers")
    parser.add_argument("--phases", default="create,update,partial", help="comma-separated")
    parser.add_argument("--repeat", type=int, default=1, help="alternate echo/toshi K times")
    parser.add_argument("--client", choices=sorted(CLIENTS), default="raw", help="HTTP client")
    parser.add_argument("--json", help="write the summary to this file")
    args = parser.parse_args()
    unknown = set(args.phases.split(",")) - set(EXPECTED_STATUS)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {sorted(EXPECTED_STATUS)}")
    return args


async def main(args: argparse.Namespace) -> int:
    phases = args.phases.split(",")
    cores = os.sched_getaffinity(0)
    others = cores - {args.core}
    if others:
        os.sched_setaffinity(0, others)  # keep the load generator off the servers' core
    else:
        print(f"!! core {args.core} is the only one available: generator and server share it")
    print(
        f"servers on core {args.core}; load generator ({args.client}) on {sorted(others or cores)}"
        f"; {args.clients} clients; {args.duration:g} s per PATCH phase, {args.duration / 3:g} s"
        f" create; {args.repeat} run(s)"
    )
    runs: list[Run] = []
    for _ in range(args.repeat):
        echo = await measure("echo", args.core, phases, args.clients, args.duration, args.client)
        toshi = await measure("toshi", args.core, phases, args.clients, args.duration, args.client)
        runs.append((toshi, echo))
    summary = report(runs, phases)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))
    errors = sum(s["toshi_errors"] + s["echo_errors"] for s in summary.values())
    if errors:
        print(f"\n!!!! {errors} FAILED REQUESTS IN THIS RUN: the figures above are not valid !!!!")
        return 1
    return 0


def run() -> int:
    args = parse_args()
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main(args))
    return uvloop.run(main(args))


if __name__ == "__main__":
    sys.exit(run())
