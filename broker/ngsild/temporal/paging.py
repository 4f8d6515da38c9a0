"""Temporal pagination (GS CIM 009 v1.8.1 §6.3.10): a response lists at most a set number of
instances; past it, the time range is cut and the answer is 206 with a ``Content-Range``.

The cut is one instant for the whole response, so every attribute of every entity is shown
over the same time range: forwards (without ``lastN``) the range ends at the time of the last
instance that fits; backwards (with ``lastN``, most recent first) it ends at the time of the
oldest that fits. ``Content-Range: date-time <start>-<end>/<size>`` names the range covered
(``start`` is the query's own bound where it has one) and ``size`` is ``lastN`` or ``*``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from broker.ngsild.entity import Instance
from broker.ngsild.temporal.query import TemporalQuery
from broker.ngsild.temporal.render import AttributeHistory
from broker.ngsild.temporal.times import from_micros, to_micros


@dataclass(frozen=True, slots=True)
class Cut:
    """Where a capped response stopped: the ``Content-Range`` header value it needs."""

    start: int
    end: int
    size: int | None

    def header(self) -> str:
        """The ``Content-Range`` value."""
        size = "*" if self.size is None else str(self.size)
        return f"date-time {from_micros(self.start)}-{from_micros(self.end)}/{size}"


def instant(instance: Instance, timeproperty: str) -> int:
    """The instant an instance is placed at for ``timeproperty`` (its recording otherwise)."""
    text = instance.get(timeproperty) or instance.get("deletedAt") or instance["createdAt"]
    return to_micros(text)


def cap(
    series: dict[str, list[AttributeHistory]], query: TemporalQuery, limit: int
) -> tuple[dict[str, list[AttributeHistory]], Cut | None]:
    """Keep at most ``limit`` instances over all ``series``, cutting the time range once."""
    times = sorted(
        (
            instant(i, query.timeproperty)
            for items in series.values()
            for s in items
            for i in s.instances
        ),
        reverse=query.last_n is not None,
    )
    if len(times) <= limit:
        return series, None
    backwards = query.last_n is not None
    edge = times[limit - 1]

    def kept(instance: Instance) -> bool:
        moment = instant(instance, query.timeproperty)
        return moment >= edge if backwards else moment <= edge

    cut_series = {
        entity: [replace(s, instances=[i for i in s.instances if kept(i)]) for s in items]
        for entity, items in series.items()
    }
    if backwards:
        start = query.end if query.end is not None else times[0]
    else:
        start = query.start if query.start is not None else times[0]
    return cut_series, Cut(start, edge, query.last_n)
