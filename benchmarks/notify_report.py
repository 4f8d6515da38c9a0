"""The summary table of ``notify.py``: medians over repeats, same-run baseline ratios, and the
verdict of each line against the targets of issue 4 and ``shared/PERFORMANCE.md``."""

from __future__ import annotations

import statistics

from notify_match import MATCH_TARGETS_US

Metrics = dict[str, list[float]]
Row = dict[str, str]

FANOUT_TARGET, FANOUT_STRETCH = 5_000.0, 10_000.0
LAG_P50_MS, LAG_P99_MS = 20.0, 100.0
INDEXING_RATIO = 0.90
ISOLATION_RATIO = 1.10
RSS_TARGET_MB, RSS_STRETCH_MB = 150.0, 100.0


def _median(metrics: Metrics, key: str) -> float:
    return statistics.median(metrics[key])


def _verdict(meets: bool) -> str:
    return "MEETS" if meets else "MISSES"


def _fanout(metrics: Metrics) -> list[Row]:
    rows = []
    if "a_fanout_per_s" in metrics:
        rate, ceiling = _median(metrics, "a_fanout_per_s"), _median(metrics, "a_ceiling_per_s")
        rows.append(
            {
                "line": "(a) notifications/s, updates matching 1,000 subs",
                "figure": f"{rate:,.0f}/s",
                "baseline": f"÷ dispatcher ceiling {ceiling:,.0f}/s = {rate / ceiling:.2f}",
                "target": f">= {FANOUT_TARGET:,.0f}/s (stretch {FANOUT_STRETCH:,.0f})",
                "verdict": _verdict(rate >= FANOUT_TARGET),
            }
        )
    for shape, verdict in (("steady", True), ("burst", False)):
        if f"{shape}_p50" not in metrics:
            continue
        p50, p99 = _median(metrics, f"{shape}_p50"), _median(metrics, f"{shape}_p99")
        how = "100 subs x 10 upd/s" if shape == "steady" else "1,000 subs x 1 upd/s"
        rows.append(
            {
                "line": f"(a) lag at 1,000 notif/s, {how}",
                "figure": f"p50 {p50:.1f} / p99 {p99:.1f} ms",
                "baseline": "",
                "target": f"p50 <= {LAG_P50_MS:.0f}, p99 <= {LAG_P99_MS:.0f} ms" if verdict else "",
                "verdict": _verdict(p50 <= LAG_P50_MS and p99 <= LAG_P99_MS) if verdict else "info",
            }
        )
    return rows


def _indexing(metrics: Metrics) -> list[Row]:
    rows = []
    if "b_rate_10000" in metrics:
        none, some, many = (_median(metrics, f"b_rate_{n}") for n in (0, 1_000, 10_000))
        rows.append(
            {
                "line": "(b) updates/s, 10,000 non-matching subs",
                "figure": f"{many:,.0f}/s",
                "baseline": f"÷ 0 subs {none:,.0f}/s = {many / none:.2f}; ÷ 1k = {many / some:.2f}",
                "target": f">= {INDEXING_RATIO:.2f} x 0 subs",
                "verdict": _verdict(many / none >= INDEXING_RATIO),
            }
        )
    for total, target in MATCH_TARGETS_US.items():
        key = f"b_match_{total}_10"
        if key in metrics:
            cost, idle = _median(metrics, key), _median(metrics, f"b_match_{total}_0")
            rows.append(
                {
                    "line": f"(b) matching per event, {total:,} subs, 10 matches",
                    "figure": f"{cost:.1f} µs",
                    "baseline": f"with 0 matches {idle:.1f} µs",
                    "target": f"<= {target:.0f} µs",
                    "verdict": _verdict(cost <= target),
                }
            )
    return rows


def _isolation_and_memory(metrics: Metrics) -> list[Row]:
    rows = []
    if "c_dead_p99" in metrics and "c_base_p99" in metrics:
        dead, base = _median(metrics, "c_dead_p99"), _median(metrics, "c_base_p99")
        rows.append(
            {
                "line": "(c) healthy p99 lag, 1 dead receiver in 101",
                "figure": f"{dead:.1f} ms",
                "baseline": f"÷ without it {base:.1f} ms = {dead / base:.2f}",
                "target": f"<= {ISOLATION_RATIO:.2f} x",
                "verdict": _verdict(dead / base <= ISOLATION_RATIO),
            }
        )
    if "d_rss_mb" in metrics:
        rss, base = _median(metrics, "d_rss_mb"), _median(metrics, "d_rss_base_mb")
        entities = int(_median(metrics, "d_entities"))
        rows.append(
            {
                "line": f"(d) broker RSS, {entities:,} entities + 10,000 subs",
                "figure": f"{rss:.0f} MB",
                "baseline": f"fresh broker {base:.0f} MB, x {rss / base:.1f}",
                "target": f"<= {RSS_TARGET_MB:.0f} MB (stretch {RSS_STRETCH_MB:.0f})",
                "verdict": _verdict(rss <= RSS_TARGET_MB),
            }
        )
    return rows


def report(metrics: Metrics) -> list[Row]:
    """Print the summary table and return its rows."""
    rows = _fanout(metrics) + _indexing(metrics) + _isolation_and_memory(metrics)
    runs = max((len(v) for v in metrics.values()), default=0)
    print(f"\nSummary (medians over up to {runs} run(s); ratios are to same-run baselines)")
    columns = ("line", "figure", "baseline", "target", "verdict")
    widths = {c: max([len(c), *(len(r[c]) for r in rows)]) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for r in rows:
        print("  ".join(r[c].ljust(widths[c]) for c in columns))
    return rows
