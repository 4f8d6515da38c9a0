"""Hourly summaries of numeric history in the SQLite store, so long aggregations read 1/60th.

``history_hours`` keeps, per series ``key`` and UTC hour of ``t``, the count, sum, min, max and
sum of squares of the numeric, non-deleted instances (``WITHOUT ROWID``, about one byte per
instance of 1-minute data). It is maintained in the writer's transaction: a trigger adds each
inserted instance to its hour (inside the INSERT's own step, so an appended instance costs the
writer one statement, not two, and one release of the GIL); anything that removes or edits
instances recomputes the hours it touched from the instances themselves, so the summaries can
never drift from what they summarise. An instant's hour is ``floor(t / HOUR)`` everywhere
(``_HOUR_OF`` in SQL, whose ``/`` truncates), so instants before 1970 land in the same hour for
the trigger, the recomputation and the readers.

An aggregation uses them only when they give the same answer as the instances: numeric methods
only (``distinctCount``/``totalCount`` need every value), ``timeproperty=observedAt``, a period
that is a whole number of hours, and an origin and window bounds on the hour. Anything else
reads the instances (``sqlite_history``).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from broker.ngsild.temporal.aggregate import PeriodStats
from broker.ngsild.temporal.query import HistorySelection

HOUR = 3_600_000_000
_HOUR_OF = "(CASE WHEN {t} >= 0 THEN {t} / 3600000000 ELSE ({t} + 1) / 3600000000 - 1 END)"
HOURS_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS history_hours (
    key     INTEGER NOT NULL,
    hour    INTEGER NOT NULL,
    n       INTEGER NOT NULL,
    total   REAL NOT NULL,
    low     REAL NOT NULL,
    high    REAL NOT NULL,
    squares REAL NOT NULL,
    PRIMARY KEY (key, hour)
) WITHOUT ROWID;
CREATE TRIGGER IF NOT EXISTS instances_into_hours AFTER INSERT ON instances
WHEN NOT NEW.flags & 2 AND typeof(NEW.val) IN ('integer', 'real')
BEGIN
    INSERT INTO history_hours (key, hour, n, total, low, high, squares)
    VALUES (NEW.key, {_HOUR_OF.format(t="NEW.t")}, 1, NEW.val, NEW.val, NEW.val, NEW.val * NEW.val)
    ON CONFLICT (key, hour) DO UPDATE SET
        n = n + 1, total = total + excluded.total, low = min(low, excluded.low),
        high = max(high, excluded.high), squares = squares + excluded.squares;
END;
"""
_NUMERIC_METHODS = frozenset({"sum", "avg", "min", "max", "stddev", "sumsq"})
_SUMMARY = (
    "INSERT INTO history_hours (key, hour, n, total, low, high, squares) "
    f"SELECT key, {_HOUR_OF.format(t='t')} AS h, count(*), sum(val), min(val), max(val), "
    "sum(val * val) FROM instances WHERE NOT flags & 2 AND typeof(val) IN ('integer', 'real')"
)


def recompute(db: sqlite3.Connection, touched: Iterable[tuple[int, int]]) -> None:
    """Rebuild the hours of ``(key, t)`` from the instances (after a removal or an edit)."""
    for key, hour in {(key, t // HOUR) for key, t in touched}:
        db.execute("DELETE FROM history_hours WHERE key = ? AND hour = ?", (key, hour))
        start = hour * HOUR
        db.execute(
            f"{_SUMMARY} AND key = ? AND t >= ? AND t < ? GROUP BY key, h",
            (key, start, start + HOUR),
        )


def forget(db: sqlite3.Connection, key: int) -> None:
    """Drop a series' hours (its history was deleted)."""
    db.execute("DELETE FROM history_hours WHERE key = ?", (key,))


def build_if_missing(db: sqlite3.Connection) -> None:
    """Summarise a file whose instances predate the summaries (once, on open)."""
    if db.execute("SELECT 1 FROM history_hours LIMIT 1").fetchone() is not None:
        return
    if db.execute("SELECT 1 FROM instances LIMIT 1").fetchone() is None:
        return
    db.execute("BEGIN IMMEDIATE")
    db.execute(f"{_SUMMARY} GROUP BY key, h")
    db.execute("COMMIT")


def usable(selection: HistorySelection, origin: int) -> bool:
    """Whether the hours answer this aggregation exactly as the instances would."""
    query, aggregation = selection.query, selection.query.aggregation
    if aggregation is None or not set(aggregation.methods) <= _NUMERIC_METHODS:
        return False
    period = aggregation.period
    if query.timeproperty != "observedAt" or period.months or period.zero:
        return False
    bounds = [b for b in (query.start, query.end) if b is not None]
    return period.micros % HOUR == 0 and all(b % HOUR == 0 for b in (origin, *bounds))


def periods(
    db: sqlite3.Connection, key: int, origin: int, step: int, selection: HistorySelection
) -> list[PeriodStats]:
    """The non-empty periods of ``step`` from ``origin``, from the hourly summaries. SQL
    computes each period's bounds, so each row becomes its ``PeriodStats`` as it is (a long
    aggregation makes thousands)."""
    query = selection.query
    low = (query.start if query.start is not None else origin) // HOUR
    high = query.end // HOUR if query.end is not None else 2**62
    # b: the period of an hour; its bounds are origin + b * step and origin + (b + 1) * step.
    bucket = f"((hour * {HOUR} - :origin) / :step)"
    bounds = f":origin + {bucket} * :step, :origin + ({bucket} + 1) * :step"
    if step == HOUR:  # one summary per period: read them in key order, nothing to group
        sql = (
            f"SELECT {bounds}, n, 0, n, total, low, high, squares FROM history_hours "
            "WHERE key = :key AND hour >= :low AND hour < :high ORDER BY hour"
        )
    else:
        sql = (
            f"SELECT {bounds}, sum(n), 0, sum(n), sum(total), min(low), max(high), sum(squares) "
            "FROM history_hours WHERE key = :key AND hour >= :low AND hour < :high "
            f"GROUP BY {bucket} ORDER BY {bucket}"
        )
    named = {"origin": origin, "step": step, "key": key, "low": low, "high": high}
    return list(map(PeriodStats._make, db.execute(sql, named)))
