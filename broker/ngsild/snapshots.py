"""Snapshots (GS CIM 009 v1.9.1 §5.16, §5.2.41): the rules, without I/O.

A Snapshot freezes what its ``snapshotQueries`` select when it is created: the broker copies
the matching entities into a store of their own and serves them to requests that carry the
``NGSILD-Snapshot`` header (§6.3.22), whatever happens to the live entities afterwards. This
module validates Snapshot bodies, keeps the record (what the store files under kind
``snapshot``), applies Update Snapshot and decides which snapshots a Purge ``q`` selects.
"""

from __future__ import annotations

from typing import Any, Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.query.qeval import evaluate_q
from broker.ngsild.query.qlang import QExpr, QSyntaxError, attributes_of, parse_q

KIND: Final = "snapshot"
"""Record kind of Snapshot records in their tenant's store."""
DEFAULT_PRIORITY: Final = 5
PREPARING: Final = "preparing"
SUCCESS: Final = "success"
FAILED: Final = "failed"

_READ_ONLY: Final = frozenset(
    {
        "id",
        "snapshotQueries",
        "snapshotStatus",
        "snapshotQueriesDetails",
        "createdAt",
        "modifiedAt",
        "lastUsedAt",
    }
)
_UPDATABLE: Final = frozenset({"snapshotPriority"})
_QUERYABLE: Final = frozenset(
    {"snapshotPriority", "snapshotStatus", "createdAt", "modifiedAt", "lastUsedAt"}
)
"""The Snapshot members a Purge Snapshots ``q`` may name (§5.16.7.4)."""
_INTERNAL: Final = "store"
"""Record member naming the store tenant that holds the frozen entities (never shown)."""


def parse_snapshot(body: Any) -> tuple[list[dict[str, Any]], int]:
    """A Create Snapshot body → (its Query objects, its priority); §5.2.41, §5.16.1.4."""
    if not isinstance(body, dict):
        raise BadRequestData("a Snapshot must be a JSON object")
    if body.get("type", "Snapshot") != "Snapshot":
        raise BadRequestData('a Snapshot has "type": "Snapshot"')
    queries = body.get("snapshotQueries")
    if not isinstance(queries, list) or not queries:
        raise BadRequestData("a Snapshot needs snapshotQueries: a non-empty array of Query")
    for query in queries:
        if not isinstance(query, dict) or query.get("type") != "Query":
            raise BadRequestData('each of snapshotQueries is a Query object ("type": "Query")')
        if "temporalQ" in query:
            raise BadRequestData("snapshotQueries select entities; temporalQ is not allowed")
    return queries, _priority(body.get("snapshotPriority", DEFAULT_PRIORITY))


def _priority(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadRequestData(f"snapshotPriority must be a non-negative integer, got {value!r}")
    return value


def new_record(
    snapshot_id: str, queries: list[dict[str, Any]], priority: int, *, store: str, now: str
) -> dict[str, Any]:
    """The record of a Snapshot being prepared, its entities to go into tenant ``store``."""
    return {
        "id": snapshot_id,
        "type": "Snapshot",
        "snapshotQueries": queries,
        "snapshotPriority": priority,
        "snapshotStatus": PREPARING,
        "createdAt": now,
        "modifiedAt": now,
        "lastUsedAt": now,
        _INTERNAL: store,
    }


def store_of(record: dict[str, Any]) -> str:
    """The store tenant holding a Snapshot's frozen entities."""
    return str(record[_INTERNAL])


def filled(record: dict[str, Any], counts: list[int | None], *, now: str) -> dict[str, Any]:
    """The record once every query ran: per query an ExecutionResult (``success``, ``empty``,
    or ``failure`` where ``None``), and the status."""
    details = [
        {"resultStatus": "failure" if n is None else ("success" if n else "empty")} for n in counts
    ]
    status = FAILED if any(n is None for n in counts) else SUCCESS
    return {
        **record,
        "snapshotStatus": status,
        "snapshotQueriesDetails": details,
        "modifiedAt": now,
    }


def update_snapshot(record: dict[str, Any], body: Any, *, now: str) -> dict[str, Any]:
    """Update Snapshot (§5.16.4): only ``snapshotPriority`` changes; read-only members are
    BadRequestData."""
    if not isinstance(body, dict) or not body:
        raise BadRequestData("an update of a Snapshot is a non-empty JSON object")
    members = set(body) - {"type", "@context"}
    read_only = sorted(members & _READ_ONLY)
    if read_only:
        raise BadRequestData(f"{', '.join(read_only)} cannot be changed")
    unknown = sorted(members - _UPDATABLE)
    if unknown:
        raise BadRequestData(f"a Snapshot has no updatable member {', '.join(unknown)}")
    updated = dict(record)
    if "snapshotPriority" in body:
        updated["snapshotPriority"] = _priority(body["snapshotPriority"])
    updated["modifiedAt"] = now
    return updated


def clone_priority(record: dict[str, Any], body: Any) -> int:
    """The priority of a clone (§5.16.2): the body's, else the original's."""
    if body is None:
        return int(record["snapshotPriority"])
    if not isinstance(body, dict):
        raise BadRequestData("a Clone Snapshot body is a JSON object")
    return _priority(body.get("snapshotPriority", record["snapshotPriority"]))


def render(record: dict[str, Any]) -> dict[str, Any]:
    """The Snapshot as clients see it."""
    return {key: value for key, value in record.items() if key != _INTERNAL}


def purge_filter(q: str | None) -> QExpr | None:
    """A Purge Snapshots ``q`` (§5.16.7.4), restricted to Snapshot members."""
    if q is None:
        return None
    try:
        expr = parse_q(q, lambda name: name)
    except QSyntaxError as exc:
        raise BadRequestData(f"invalid q: {exc}") from None
    foreign = sorted(attributes_of(expr) - _QUERYABLE)
    if foreign:
        raise BadRequestData(
            f"a Purge Snapshots q may name only {', '.join(sorted(_QUERYABLE))}, "
            f"not {', '.join(foreign)}"
        )
    return expr


def selected(expr: QExpr | None, record: dict[str, Any]) -> bool:
    """Whether Purge Snapshots with ``expr`` (``None``: all) removes ``record``."""
    if expr is None:
        return True
    attrs = {
        name: [{"type": "Property", "value": record[name]}] for name in _QUERYABLE if name in record
    }
    return evaluate_q(expr, {"id": record["id"], "type": ["Snapshot"], "attrs": attrs})
