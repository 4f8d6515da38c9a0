"""Notification benchmark: fan-out, lag, matching cost, a dead receiver, memory (issue 4).

Method. ``toshi serve`` runs as a subprocess on a fresh temporary SQLite store, pinned to one core
(``taskset -c --core``); this process pins itself to the other core(s) and runs, on uvloop, both
the load generator and the notification receivers (``notify_sink``: raw asyncio HTTP/1.1,
keep-alive, ``204``; one port per receiver, because the dispatcher queues per origin).
Entities and subscriptions are created over HTTP before anything is measured; subscriptions ask
for ``keyValues`` with only ``seq``, the attribute every update stamps with its send time.

(a) fan-out: 1,000 subscriptions on one BenchSensor, spread over 10 receivers. A closed loop of
    ``PATCH …/attrs/seq`` keeps at most ``A_WINDOW`` updates undelivered (the dispatcher holds 1,000
    per origin and drops the oldest beyond that); notifications/s received over the phase, then
    the tail drained. Baseline: ``notify_ceiling.py``, the broker's own dispatcher and sender on
    the same core sending pre-built notifications to the same receivers. Lag at 1,000
    notifications/s offered, open loop, two shapes: *steady*, 100 subscriptions × 10 updates/s
    (the verdict: p50 ≤ 20 ms, p99 ≤ 100 ms), and *burst*, 1,000 subscriptions × 1 update/s
    (each burst queues behind itself; shown for information).
(b) indexing: closed-loop PATCHes from 16 clients on 16 BenchSensors while 0, then 1,000, then
    10,000 subscriptions on ``OtherType`` exist (same broker, added between runs; none may
    notify). Target: the rate with 10,000 ≥ 0.90 × the rate with 0. With 0 the broker skips
    change analysis entirely, so 10k ÷ 1k shows the growth alone. Then the matcher in-process
    (``notify_match``): µs per event at 1k/10k/100k subscriptions with 10 and with 0 matches.
(c) isolation: 100 healthy receivers, each subscribed to its own BenchSensor, updated in turn
    at ``C_RATE`` updates/s open loop; run 1 as is, run 2 with one more receiver that accepts
    connections and never answers, subscribed to all 100 (so it is offered as many
    notifications as all the healthy ones together). Target: healthy p99 ratio ≤ 1.10.
(d) memory: VmRSS of a fresh broker, then of one serving 100,000 entities (query.py's
    generator, written in-process) after 10,000 subscriptions were created. Target ≤ 150 MB.

Lag is receipt time minus the time the PATCH was written, both ``time.time()`` in this
process: an upper bound of commit-to-receipt. A lost notification, a failed request or an
unexpected notification is printed loudly and makes the exit status 1.

Run from the repository root: ``pip install -e '.[bench]' && python benchmarks/notify.py``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from pathlib import Path

import uvloop

from harness import Request, Result, Server, cpu_seconds, finish
from notify_ceiling import run_ceiling
from notify_load import (
    BENCH_TYPE,
    closed_loop,
    create_entity,
    open_loop,
    rss_mb,
    send_all,
    subscription,
    typed_subscriptions,
    windowed_loop,
)
from notify_match import SubscriptionSet, measure_matching
from notify_report import Metrics, report
from notify_sink import Recorder, Sink, close_sinks, start_sinks
from query import load

A_RECEIVERS, A_SUBSCRIPTIONS, A_WINDOW = 10, 1_000, 3
STEADY_SUBSCRIPTIONS, STEADY_RATE, BURST_RATE = 100, 10.0, 1.0
B_CLIENTS, B_LEVELS = 16, (0, 1_000, 10_000)
C_RECEIVERS, C_RATE = 100, 300.0
D_SUBSCRIPTIONS = 10_000
DRAIN_SECONDS = 30.0
PHASES = ("a", "b", "c", "d")


def sub_id(tag: str, n: int) -> str:
    return f"urn:ngsi-ld:Subscription:{tag}-{n}"


def bench_id(tag: str) -> str:
    return f"urn:ngsi-ld:{BENCH_TYPE}:{tag}"


class Bench:
    """One run of the script: its receivers' recorder, figures and problems."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.recorder = Recorder()
        self.metrics: Metrics = defaultdict(list)
        self.problems: list[str] = []
        self.match_sets: dict[int, SubscriptionSet] = {}

    def check(self, result: Result, what: str) -> None:
        if result.errors:
            self.problems.append(
                f"{what}: {result.errors} failed requests, first {result.first_error}"
            )

    async def setup(self, port: int, requests: list[Request], status: int = 201) -> None:
        result = Result("toshi", "setup", 0)
        await send_all(port, requests, status, result)
        self.check(result, "setup")

    async def watched_entity(self, port: int, tag: str, sinks: list[Sink], count: int) -> str:
        """One BenchSensor and ``count`` subscriptions to it, spread over ``sinks``."""
        entity_id = bench_id(tag)
        await self.setup(port, [create_entity(entity_id, 0)])
        selector = {"id": entity_id, "type": BENCH_TYPE}
        urls = [sinks[n % len(sinks)].url for n in range(count)]
        await self.setup(
            port, [subscription(sub_id(tag, n), u, selector) for n, u in enumerate(urls)]
        )
        return entity_id

    async def drain(self, expected: int, what: str) -> float:
        """Wait for ``expected`` notifications in all; the seconds it took. Loss is a problem."""
        started = time.perf_counter()
        await self.recorder.wait_for(expected, DRAIN_SECONDS)
        got, malformed = self.recorder.count, self.recorder.malformed
        if got != expected or malformed:
            self.problems.append(
                f"{what}: expected {expected} notifications, received {got}"
                f" ({expected - got} lost, {malformed} without a stamp)"
            )
        return time.perf_counter() - started

    async def fanout(self, server: Server, entity_id: str, duration: float) -> int:
        """Updates notified ``A_SUBSCRIPTIONS`` times each, at most ``A_WINDOW`` undelivered;
        returns how many were answered 204."""
        result = Result("toshi", "fan-out", duration)
        cpu, process = cpu_seconds(server.pid), time.process_time()
        updates = await windowed_loop(
            server.port, entity_id, self.recorder, A_SUBSCRIPTIONS, A_WINDOW, result
        )
        self.check(result, "(a) fan-out")
        print(
            f"  {duration:g} s of fan-out: broker CPU "
            f"{(cpu_seconds(server.pid) - cpu) / result.seconds:.0%}, generator and receivers "
            f"{(time.process_time() - process) / result.seconds:.0%}"
        )
        return updates

    def lags(self, name: str) -> None:
        lags = Result("toshi", name, 0, latencies_ms=self.recorder.lags_ms)
        for p in (50, 90, 99):
            self.metrics[f"{name}_p{p}"].append(lags.percentile(p))
        print(
            f"  {name}: {lags.requests} lags, p50 {lags.percentile(50):.1f} ms, "
            f"p90 {lags.percentile(90):.1f} ms, p99 {lags.percentile(99):.1f} ms"
        )


async def ceiling(bench: Bench, sinks: list[Sink], count: int) -> None:
    """The dispatcher alone on the broker's core (``notify_ceiling.py``)."""
    figures = await run_ceiling(bench.args.core, [s.url for s in sinks], count)
    await bench.drain(count, "(a) ceiling")
    rate = figures["ok"] / figures["seconds"]
    bench.metrics["a_ceiling_per_s"].append(rate)
    print(
        f"  ceiling: {figures['ok']:.0f} delivered in {figures['seconds']:.2f} s = {rate:,.0f}/s"
        f" ({figures['failed']:.0f} failed), its CPU {figures['cpu']:.0%}"
    )


async def phase_a(bench: Bench) -> None:
    args, recorder = bench.args, bench.recorder
    sinks = await start_sinks(recorder, A_RECEIVERS)
    try:
        async with Server("toshi", args.core) as server:
            entity_id = await bench.watched_entity(server.port, "a", sinks, A_SUBSCRIPTIONS)
            warm = await bench.fanout(server, entity_id, 1.0)
            await bench.drain(warm * A_SUBSCRIPTIONS, "(a) warm-up")
            recorder.reset()
            started = time.perf_counter()
            updates = await bench.fanout(server, entity_id, args.duration)
            in_phase, seconds = recorder.count, time.perf_counter() - started
            drain = await bench.drain(updates * A_SUBSCRIPTIONS, "(a) fan-out")
            bench.metrics["a_fanout_per_s"].append(in_phase / seconds)
            print(
                f"  fan-out: {updates} updates, {in_phase} notifications in {seconds:.1f} s = "
                f"{in_phase / seconds:,.0f}/s; tail of {recorder.count - in_phase} drained in "
                f"{drain:.2f} s"
            )
            recorder.reset()
            await lag_run(bench, server.port, [entity_id], BURST_RATE, A_SUBSCRIPTIONS, "burst")
        async with Server("toshi", args.core) as server:
            entity_id = await bench.watched_entity(server.port, "s", sinks, STEADY_SUBSCRIPTIONS)
            await lag_run(bench, server.port, [entity_id], 5.0, STEADY_SUBSCRIPTIONS, "warm-up")
            await lag_run(
                bench, server.port, [entity_id], STEADY_RATE, STEADY_SUBSCRIPTIONS, "steady"
            )
        await ceiling(bench, sinks, int(min(200_000, 10_000 * args.duration)))
        recorder.reset()
    finally:
        close_sinks(sinks)


async def lag_run(
    bench: Bench, port: int, entity_ids: list[str], rate: float, fan: int, name: str
) -> None:
    """Open-loop updates at ``rate``/s, each notified ``fan`` times; lags recorded as ``name``."""
    duration = 1.0 if name == "warm-up" else bench.args.duration
    bench.recorder.reset()
    result = Result("toshi", name, duration)
    answered = await open_loop(port, entity_ids, rate, duration, result)
    bench.check(result, f"{name} updates")
    await bench.drain(answered * fan, name)
    if name != "warm-up":
        bench.lags(name)
    bench.recorder.reset()


async def phase_b(bench: Bench) -> None:
    args = bench.args
    sinks = await start_sinks(bench.recorder, 1)
    try:
        async with Server("toshi", args.core) as server:
            ids = [bench_id(f"b{n}") for n in range(B_CLIENTS)]
            await bench.setup(server.port, [create_entity(e, n) for n, e in enumerate(ids)])
            # Long enough for the first stalls (WAL checkpoint after the creates) to pass.
            warm_up = min(3.0, args.duration)
            await closed_loop(server.port, ids, warm_up, Result("toshi", "warm-up", warm_up))
            selector = {"type": "OtherType"}
            for previous, level in zip((0, *B_LEVELS), B_LEVELS, strict=False):
                subs = [
                    subscription(sub_id("b", n), sinks[0].url, selector)
                    for n in range(previous, level)
                ]
                await bench.setup(server.port, subs)
                result = Result("toshi", f"{level} subs", args.duration)
                cpu = cpu_seconds(server.pid)
                await closed_loop(server.port, ids, args.duration, result)
                bench.check(result, f"(b) with {level} subscriptions")
                busy = (cpu_seconds(server.pid) - cpu) / result.seconds
                bench.metrics[f"b_rate_{level}"].append(result.rate)
                print(
                    f"  {level:>6} subscriptions: {result.rate:,.0f} updates/s, p99 "
                    f"{result.percentile(99):.1f} ms, server CPU {busy:.0%}"
                )
    finally:
        close_sinks(sinks)
    if bench.recorder.count:
        bench.problems.append(f"(b) {bench.recorder.count} notifications for non-matching subs")
    bench.recorder.reset()
    measure_matching(bench.match_sets, bench.metrics)


async def phase_c(bench: Bench) -> None:
    for dead in (False, True):
        name = "c_dead" if dead else "c_base"
        sinks = await start_sinks(bench.recorder, C_RECEIVERS, dead=dead)
        if not dead:
            # The same 101st subscription, to a receiver that answers (and is not measured):
            # both runs then do the same work, and the ratio shows isolation, not extra load.
            sinks.append(await Sink(Recorder()).start())
        try:
            async with Server("toshi", bench.args.core) as server:
                ids = [bench_id(f"c{n}") for n in range(C_RECEIVERS)]
                await bench.setup(server.port, [create_entity(e, n) for n, e in enumerate(ids)])
                subs = [
                    subscription(sub_id("c", n), sinks[n].url, {"id": e, "type": BENCH_TYPE})
                    for n, e in enumerate(ids)
                ]
                subs.append(subscription(sub_id("c", -1), sinks[-1].url, {"type": BENCH_TYPE}))
                await bench.setup(server.port, subs)
                await lag_run(bench, server.port, ids, C_RATE, 1, "warm-up")
                await lag_run(bench, server.port, ids, C_RATE, 1, name)
            if dead:
                print(
                    f"  dead receiver: {sinks[-1].connections} connections, "
                    f"{sinks[-1].received} requests never answered"
                )
        finally:
            close_sinks(sinks)


async def phase_d(bench: Bench) -> None:
    async with Server("toshi", bench.args.core) as server:
        await asyncio.sleep(1.0)
        base, _ = rss_mb(server.pid)
    bench.metrics["d_rss_base_mb"].append(base)
    sinks = await start_sinks(bench.recorder, 1)
    try:
        with tempfile.TemporaryDirectory(prefix="toshi-notify-bench-") as scratch:
            rate = await load(Path(scratch), bench.args.entities, seed=2026)
            print(f"  loaded {bench.args.entities:,} entities in-process at {rate:,.0f}/s")
            async with Server("toshi", bench.args.core, Path(scratch)) as server:
                loaded, _ = rss_mb(server.pid)
                await bench.setup(server.port, typed_subscriptions(sinks[0].url, D_SUBSCRIPTIONS))
                await asyncio.sleep(2.0)  # the status saver's first rounds
                rss, peak = rss_mb(server.pid)
    finally:
        close_sinks(sinks)
    bench.metrics["d_rss_mb"].append(rss)
    bench.metrics["d_entities"].append(bench.args.entities)
    print(
        f"  RSS: fresh broker {base:.1f} MB; with the entities {loaded:.1f} MB; with "
        f"{D_SUBSCRIPTIONS:,} subscriptions too {rss:.1f} MB (peak {peak:.1f} MB)"
    )


RUNNERS: dict[str, Callable[[Bench], Awaitable[None]]] = {
    "a": phase_a,
    "b": phase_b,
    "c": phase_c,
    "d": phase_d,
}


async def main(args: argparse.Namespace) -> int:
    others = os.sched_getaffinity(0) - {args.core}
    if others:
        os.sched_setaffinity(0, others)
    else:
        print(f"!! core {args.core} is the only one available: generator and broker share it")
    bench = Bench(args)
    print(
        f"broker on core {args.core}; generator and receivers on {sorted(others)}; "
        f"{args.duration:g} s per measurement; {args.repeat} repeat(s); phases {args.phases}"
    )
    print("lag = receipt time - time the PATCH was written: an upper bound of commit-to-receipt")
    for repeat in range(args.repeat):
        for phase in args.phases.split(","):
            if phase == "d" and repeat:
                continue  # memory does not move between runs; loading 100k takes a while
            print(f"\n({phase}) run {repeat + 1}")
            await RUNNERS[phase](bench)
    summary = report(bench.metrics)
    figures = {"args": vars(args), "metrics": bench.metrics, "summary": summary}
    return finish(args.json, figures, bench.problems)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        epilog="\n\n".join((__doc__ or "").split("\n\n")[1:3]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--phases", default=",".join(PHASES), help="comma-separated: a,b,c,d")
    parser.add_argument("--duration", type=float, default=10, help="seconds per measurement")
    parser.add_argument("--repeat", type=int, default=2, help="measure a, b, c K times (median)")
    parser.add_argument("--core", type=int, default=1, help="CPU core for the broker")
    parser.add_argument("--entities", type=int, default=100_000, help="entities in phase (d)")
    parser.add_argument("--json", help="write figures and summary to this file")
    args = parser.parse_args()
    unknown = set(args.phases.split(",")) - set(PHASES)
    if unknown:
        parser.error(f"unknown phases {sorted(unknown)}; choose from {','.join(PHASES)}")
    return args


if __name__ == "__main__":
    sys.exit(uvloop.run(main(parse_args())))
