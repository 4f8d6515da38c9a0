"""Following other replicas' record changes through a MongoDB change stream (pure decisions).

Theory of operation. Each replica holds subscriptions, registrations, provisioning and grants in
memory, loaded from the records of every tenant (``broker.store.everywhere``). When replicas
share one MongoDB, each one opens a single deployment-wide change stream filtered by
``record_pipeline`` and turns each event into a ``RecordChange`` with ``record_change``:
an insert, replace or update carries the record as it now is (the stream is opened with
``fullDocument: "updateLookup"``), a delete only its ``documentKey``, which is enough because a
record's ``_id`` is ``{k: kind, n: key}``. A saved record names the replica that saved it
(``by``), so each replica can skip what it wrote itself. Events of databases that are not the
installation's tenants are ignored; the tenant of a database comes from the tenant registry,
not from the name (hashed names cannot be read back, ``mongo_names``).

A replica remembers the resume token of the last event it applied and resumes from it after a
reconnect, so it misses nothing; when the server no longer has that point of its oplog
(``ChangeStreamHistoryLost``), or the stream is invalidated (a database dropped), the only safe
course is to reload everything (``after_error``, ``Reload``). The adapter that opens the stream
and the services' hooks that apply changes are what only a server can verify (``tests/replicas``).
"""

from __future__ import annotations

from typing import Any, Final, Literal

import orjson

from broker.store.base import RecordChange, Reload

__all__ = ["RecordChange", "Reload", "after_error", "record_change", "record_pipeline"]

RECORDS: Final = "records"
_CHANGES: Final = ("insert", "replace", "update")
_RELOAD: Final = ("drop", "dropDatabase", "rename", "invalidate")
_HISTORY_LOST: Final = 286  # ChangeStreamHistoryLost
_FATAL: Final = frozenset({_HISTORY_LOST, 280})  # 280: ChangeStreamFatalError


def record_pipeline(kinds: list[str]) -> list[dict[str, Any]]:
    """The change-stream pipeline: record events of ``kinds``, and events that force a reload."""
    return [
        {
            "$match": {
                "$or": [
                    {
                        "ns.coll": RECORDS,
                        "operationType": {"$in": [*_CHANGES, "delete"]},
                        "documentKey._id.k": {"$in": kinds},
                    },
                    {"operationType": {"$in": list(_RELOAD)}},
                ]
            }
        }
    ]


def record_change(event: dict[str, Any], tenants: dict[str, str]) -> RecordChange | Reload | None:
    """What a change event means for the caches; ``tenants`` maps database names to tenants."""
    namespace = event.get("ns") or {}
    operation = event.get("operationType")
    tenant = tenants.get(str(namespace.get("db")))
    if operation in _RELOAD:
        if operation == "invalidate" or tenant is not None:
            return Reload(tenant)
        return None
    if tenant is None or namespace.get("coll") != RECORDS:
        return None
    key = (event.get("documentKey") or {}).get("_id")
    if not isinstance(key, dict) or not {"k", "n"} <= key.keys():
        return None
    if operation == "delete":
        return RecordChange(tenant, str(key["k"]), str(key["n"]), None)
    if operation not in _CHANGES:
        return None
    full = event.get("fullDocument")
    if full is None:  # deleted again before the lookup: a later delete event follows
        return None
    doc: dict[str, Any] = orjson.loads(full["doc"])
    origin = full.get("by")
    return RecordChange(
        tenant, str(key["k"]), str(key["n"]), doc, None if origin is None else str(origin)
    )


def after_error(code: int | None) -> Literal["resume", "reload"]:
    """After the stream failed with server error ``code``: resume from the last token, or
    reload everything because the server cannot replay what happened since."""
    return "reload" if code in _FATAL else "resume"
