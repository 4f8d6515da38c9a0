"""What ``ingest.py`` prints: who was busy during a burst, and the summary table with the
verdicts against issue 5 and ``shared/PERFORMANCE.md``.

CPU shares say who limited a figure: Toshi near 100 % of its core means Toshi is the limit; the
ceiling subscriber well below 100 % means the publishers or Mosquitto (which is not pinned and
shares the other core with this process) limited the ceiling, and the ratio printed is then an
upper bound.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from harness import cpu_seconds
from ingest_publish import Burst

RATE_TARGET, RATE_STRETCH, LAG_P99_MS = 5_000.0, 10_000.0, 200.0
MOSQUITTO_PID_FILE = Path("/run/mosquitto/mosquitto.pid")  # Debian's service writes it

Metrics = dict[str, list[float]]
Row = dict[str, str]


def _mosquitto_pid() -> dict[str, int]:
    try:
        pid = int(MOSQUITTO_PID_FILE.read_text())
        cpu_seconds(pid)
    except (OSError, ValueError):
        return {}  # another broker, or not readable: its share is left out
    return {"Mosquitto": pid}


def _core_busy(core: int) -> tuple[int, int]:
    """Busy and total jiffies of one core so far (Linux ``/proc/stat``)."""
    for line in Path("/proc/stat").read_text().splitlines():
        name, *counts = line.split()
        if name == f"cpu{core}":
            user, nice, system, idle, iowait, irq, softirq, steal = map(int, counts[:8])
            busy = user + nice + system + irq + softirq + steal
            return busy, busy + idle + iowait
    return 0, 0


class CpuMeter:
    """CPU seconds per wall second, from now, of the named processes, this one and Mosquitto,
    and how busy ``core`` was in all: much busier than the process pinned to it means another
    job shared the core, and the figures of that phase are not Toshi's alone."""

    def __init__(self, pids: dict[str, int], core: int) -> None:
        self.pids = {**pids, **_mosquitto_pid()}
        self.core = core
        self.started = time.perf_counter()
        self.start = self._now()
        self.core_start = _core_busy(core)

    def shares(self) -> dict[str, float]:
        seconds = time.perf_counter() - self.started
        now = self._now()
        shares = {name: (now[name] - self.start[name]) / seconds for name in now}
        (busy, total), (busy0, total0) = _core_busy(self.core), self.core_start
        shares[f"core {self.core} in all"] = (busy - busy0) / max(1, total - total0)
        return shares

    def _now(self) -> dict[str, float]:
        now = {"generator": time.process_time()}
        for name, pid in self.pids.items():
            try:
                now[name] = cpu_seconds(pid)
            except OSError:
                continue  # gone
        return now


def describe(what: str, result: Burst, shares: dict[str, float]) -> None:
    lost = f", {result.messages - result.through} NOT THROUGH" * (result.through < result.messages)
    cpu = ", ".join(f"{name} {share:.0%}" for name, share in shares.items())
    print(
        f"  {what}: {result.through:,} in {result.seconds:.2f} s = {result.rate:,.0f} msg/s"
        f"{lost}; published at {result.publish_rate:,.0f}/s; CPU: {cpu}"
    )


def _median(metrics: Metrics, key: str) -> float:
    return statistics.median(metrics[key]) if metrics.get(key) else float("nan")


def _verdict(meets: bool) -> str:
    return "MEETS" if meets else "MISSES"


def _total(metrics: Metrics, key: str) -> int:
    return int(sum(metrics.get(key, [])))


def summary(metrics: Metrics, args: dict[str, float]) -> list[Row]:
    """Print the summary table (medians over the runs) and return its rows."""
    rate, ceiling = _median(metrics, "ingest_per_s"), _median(metrics, "ceiling_per_s")
    lost, wrong, dead = (_total(metrics, k) for k in ("lost", "wrong", "dead_letters"))
    p50, p90, p99 = (_median(metrics, f"mqtt_p{p}") for p in (50, 90, 99))
    base50, base99 = _median(metrics, "patch_p50"), _median(metrics, "patch_p99")
    unnotified = _total(metrics, "mqtt_unnotified")
    rows = [
        {
            "line": f"ingest, {args['messages']:,} msgs over {args['devices']:,} devices",
            "figure": f"{rate:,.0f} msg/s",
            "baseline": f"÷ Mosquitto pub->sub {ceiling:,.0f}/s = {rate / ceiling:.2f}",
            "target": f">= {RATE_TARGET:,.0f}/s (stretch {RATE_STRETCH:,.0f})",
            "verdict": _verdict(rate >= RATE_TARGET),
        },
        {
            "line": "loss at QoS 1, all runs",
            "figure": f"{lost} lost, {dead} dead letters",
            "baseline": f"{wrong} sampled entities wrong",
            "target": "0",
            "verdict": _verdict(lost == wrong == dead == 0),
        },
        {
            "line": f"publish -> notification lag, {args['rate']:,.0f} msg/s",
            "figure": f"p50 {p50:.1f} / p90 {p90:.1f} / p99 {p99:.1f} ms"
            + f", {unnotified} not notified" * bool(unnotified),
            "baseline": f"PATCH -> notif. at {args['baseline_rate']:,.0f}/s: p50 {base50:.1f}"
            f" / p99 {base99:.1f} ms",
            "target": f"p99 <= {LAG_P99_MS:.0f} ms",
            "verdict": _verdict(p99 <= LAG_P99_MS and not unnotified),
        },
    ]
    runs = len(metrics.get("ingest_per_s", []))
    print(f"\nSummary (medians over {runs} run(s); the ratio is to the same-run ceiling)")
    columns = ("line", "figure", "baseline", "target", "verdict")
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    for row in [{c: c for c in columns}, *rows]:
        print("  ".join(row[c].ljust(widths[c]) for c in columns).rstrip())
    return rows
