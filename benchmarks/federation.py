"""Federated queries (issue 14): a prefecture and two towns, 10,000 entities each.

Method. Three ``toshi serve`` processes on loopback, each with its own SQLite store holding
10,000 ``RiverGauge`` entities (ids differ per broker). The towns are registered with the
prefecture (inclusive, ``management.timeout`` 500 ms). One client sends the same query, one
at a time, ``--requests`` times:

1. to each broker with ``local=true`` — that broker's own answer time (the baselines);
2. to the prefecture without ``local`` — the federated answer, from all three.

The four kinds are interleaved (one of each per round), so that a change in the machine's
load during the run weighs on the baselines and the federated answer alike; ``--repeat``
runs the whole measurement again on the same brokers and the median of the repeats' p50s
is quoted.

Target: federated p50 ≤ the slowest baseline p50 + 5 ms (the fan-out is concurrent, so it
should cost the slowest member plus forwarding, not the sum).

Then a fourth registration points at a black hole (a loopback socket that accepts and never
answers) with ``management.timeout`` 300 ms. The cooldown is set beyond the run so that every
request really waits for the black hole. Target: every federated answer arrives within
300 ms + 50 ms, with the reachable members' entities in it.

Run from the repository root: ``python benchmarks/federation.py`` (not a test; not in CI).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

API = "/ngsi-ld/v1"
JSON = {"Content-Type": "application/json"}
ENTITIES = 10_000
QUERY = {"type": "RiverGauge", "q": "level>=99.0", "limit": "20"}
TIMEOUT_MS, BLACK_HOLE_MS, SLACK_MS, MARGIN_MS = 500, 300, 50, 5.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Toshi:
    def __init__(self, name: str) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = Path(tempfile.mkdtemp(prefix=f"toshi-fed-{name}-"))
        env = {
            **os.environ,
            "TOSHI_FEDERATION__COOLDOWN": "3600",
            "TOSHI_FEDERATION__FAILURES": "1000000",
        }
        self.process = subprocess.Popen(
            [
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
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def wait(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def black_hole() -> int:
    """A loopback port that accepts connections and never answers."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(128)
    held: list[socket.socket] = []

    def accept() -> None:
        while True:
            connection, _ = server.accept()
            held.append(connection)

    threading.Thread(target=accept, daemon=True).start()
    return int(server.getsockname()[1])


def load(broker: Toshi, client: httpx.Client) -> None:
    for start in range(0, ENTITIES, 500):
        batch = [
            {
                "id": f"urn:ngsi-ld:RiverGauge:{broker.name}-{n}",
                "type": "RiverGauge",
                "level": {"type": "Property", "value": (n % 1000) / 10},
            }
            for n in range(start, start + 500)
        ]
        answer = client.post(f"{broker.url}{API}/entityOperations/create", json=batch, headers=JSON)
        assert answer.status_code == 201, answer.text


def register(at: Toshi, reg_id: str, endpoint: str, timeout_ms: int, client: httpx.Client) -> None:
    body = {
        "id": reg_id,
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "RiverGauge"}]}],
        "endpoint": endpoint,
        "management": {"timeout": timeout_ms},
    }
    answer = client.post(f"{at.url}{API}/csourceRegistrations", json=body, headers=JSON)
    assert answer.status_code == 201, answer.text


Call = tuple[str, dict[str, str]]


async def timed(calls: dict[str, Call], rounds: int) -> dict[str, tuple[list[float], int]]:
    """``rounds`` rounds of one request per call, in turn; per call its latencies in ms and
    the size of its last answer."""
    latencies: dict[str, list[float]] = {name: [] for name in calls}
    sizes = dict.fromkeys(calls, 0)
    async with httpx.AsyncClient(timeout=10) as client:
        for url, params in calls.values():  # warm up connections and caches
            for _ in range(5):
                await client.get(url, params=params)
        for _ in range(rounds):
            for name, (url, params) in calls.items():
                started = time.perf_counter()
                answer = await client.get(url, params=params)
                latencies[name].append((time.perf_counter() - started) * 1000)
                assert answer.status_code == 200, answer.text
                sizes[name] = len(answer.json())
    return {name: (latencies[name], sizes[name]) for name in calls}


def p99(values: list[float]) -> float:
    return sorted(values)[int(len(values) * 0.99) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=200, help="rounds per repeat")
    parser.add_argument("--repeat", type=int, default=3, help="measurements on the same brokers")
    args = parser.parse_args()
    brokers = [Toshi(name) for name in ("prefecture", "town-a", "town-b")]
    try:
        for broker in brokers:
            broker.wait()
        prefecture, town_a, town_b = brokers
        with httpx.Client(timeout=60) as client:
            for broker in brokers:
                load(broker, client)
            register(prefecture, "urn:reg:a", town_a.url, TIMEOUT_MS, client)
            register(prefecture, "urn:reg:b", town_b.url, TIMEOUT_MS, client)
        url = f"{prefecture.url}{API}/entities"
        calls = {
            broker.name: (f"{broker.url}{API}/entities", {**QUERY, "local": "true"})
            for broker in brokers
        }
        calls["federated"] = (url, QUERY)
        overheads, p50s = [], []
        for repeat in range(args.repeat):
            measured = asyncio.run(timed(calls, args.requests))
            baselines = {b.name: statistics.median(measured[b.name][0]) for b in brokers}
            federated, size = measured["federated"]
            p50, slowest = statistics.median(federated), max(baselines.values())
            overheads.append(p50 - slowest)
            p50s.append(p50)
            own = ", ".join(f"{name} {value:.2f}" for name, value in baselines.items())
            print(
                f"repeat {repeat + 1}: baselines p50 {own} ms; federated p50 {p50:.2f} ms "
                f"(p99 {p99(federated):.2f} ms, {size} entities); ratio {p50 / slowest:.2f}, "
                f"overhead {p50 - slowest:+.2f} ms"
            )
        overhead = statistics.median(overheads)
        print(
            f"median over {args.repeat}: federated p50 {statistics.median(p50s):.2f} ms, "
            f"overhead {overhead:+.2f} ms over the slowest baseline (target ≤ +{MARGIN_MS} ms): "
            f"{'PASS' if overhead <= MARGIN_MS else 'FAIL'}"
        )

        hole = black_hole()
        with httpx.Client(timeout=60) as client:
            register(prefecture, "urn:reg:hole", f"http://127.0.0.1:{hole}", BLACK_HOLE_MS, client)
        limit, worsts = BLACK_HOLE_MS + SLACK_MS, []
        for repeat in range(args.repeat):
            holed, size = asyncio.run(timed({"holed": (url, QUERY)}, max(20, args.requests // 4)))[
                "holed"
            ]
            worsts.append(max(holed))
            print(
                f"repeat {repeat + 1}: black-holed source: p50 {statistics.median(holed):.1f} ms, "
                f"worst {max(holed):.1f} ms ({size} entities)"
            )
        print(
            f"black-holed: worst of all {max(worsts):.1f} ms (limit {limit} ms every time): "
            f"{'PASS' if max(worsts) <= limit else 'FAIL'}"
        )
    finally:
        for broker in brokers:
            broker.stop()


if __name__ == "__main__":
    main()
