"""The Prometheus text exposition format (version 0.0.4), written by hand.

Pure: ``Family`` objects in, text out. Only what the broker exports is supported (counters,
gauges and one histogram, with string labels); the official client library would bring a global
registry and a process-wide collector model that the broker's per-component counters do not need.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]


@dataclass(slots=True)
class Family:
    """One metric family: its name, type, help text and samples."""

    name: str
    kind: str  # "counter", "gauge" or "histogram"
    help: str
    samples: list[tuple[str, Labels, float]] = field(default_factory=list)

    def add(self, value: float, labels: Labels = (), *, suffix: str = "") -> Family:
        """Add a sample (``suffix`` is ``_bucket``/``_sum``/``_count`` for histograms)."""
        self.samples.append((self.name + suffix, labels, value))
        return self

    def histogram(
        self, bounds: Sequence[float], cumulative: Sequence[int], total: float, labels: Labels = ()
    ) -> Family:
        """Add buckets: ``cumulative[i]`` counts samples ≤ ``bounds[i]``; the last one, all."""
        for bound, count in zip([*bounds, math.inf], cumulative, strict=True):
            self.add(count, (*labels, ("le", _number(bound))), suffix="_bucket")
        self.add(total, labels, suffix="_sum")
        return self.add(cumulative[-1], labels, suffix="_count")


def render(families: Iterable[Family]) -> str:
    """The exposition text for ``families``."""
    lines: list[str] = []
    for family in families:
        lines.append(f"# HELP {family.name} {_escape_help(family.help)}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for name, labels, value in family.samples:
            lines.append(f"{name}{_labels(labels)} {_number(value)}")
    return "\n".join(lines) + "\n"


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape_value(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return str(int(value)) if float(value).is_integer() else repr(float(value))
