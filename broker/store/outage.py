"""Which failures mean "the store is away for now" rather than "this request is wrong".

A caller that can wait (device ingest holds its MQTT message unacknowledged) retries an outage
instead of giving up on the write; anything else is treated as the request's own fault. Only
failures of the environment count: a locked, full, read-only or unreadable SQLite file, an
unreachable MongoDB or one that labels the error transient. A SQL or programming error is not an
outage: retrying it would stall the caller forever.
"""

from __future__ import annotations

import sqlite3
from functools import cache
from typing import Final

_SQLITE_OUTAGES: Final = frozenset(
    {
        5,  # SQLITE_BUSY: another connection holds the write lock past the busy timeout
        6,  # SQLITE_LOCKED
        7,  # SQLITE_NOMEM
        8,  # SQLITE_READONLY: the file or its directory lost write permission
        10,  # SQLITE_IOERR
        13,  # SQLITE_FULL: the disk is full
        14,  # SQLITE_CANTOPEN
        15,  # SQLITE_PROTOCOL
    }
)
_MONGO_TRANSIENT_LABELS: Final = ("TransientTransactionError", "RetryableWriteError")


def store_errors() -> tuple[type[Exception], ...]:
    """The exception classes a store's driver raises (an outage is always one of them)."""
    mongo = _mongo_errors()
    return (sqlite3.Error,) if mongo is None else (sqlite3.Error, mongo[1])


def is_outage(error: BaseException) -> bool:
    """True when ``error`` says the store cannot be reached or written right now."""
    if isinstance(error, sqlite3.Error):
        code = getattr(error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in _SQLITE_OUTAGES
    mongo = _mongo_errors()
    if mongo is None:
        return False
    connection_failure, pymongo_error = mongo
    if isinstance(error, connection_failure):
        return True
    has_label = getattr(error, "has_error_label", None)
    return (
        isinstance(error, pymongo_error)
        and has_label is not None
        and any(has_label(label) for label in _MONGO_TRANSIENT_LABELS)
    )


@cache
def _mongo_errors() -> tuple[type[Exception], type[Exception]] | None:
    # PyMongo is an optional dependency (the "mongodb" extra): without it there is no MongoDB
    # error to recognise.
    try:
        from pymongo.errors import ConnectionFailure, PyMongoError
    except ImportError:
        return None
    return ConnectionFailure, PyMongoError
