"""Which store failures ingest waits out, and which it sets aside as the message's own fault."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from broker.store.outage import is_outage
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError


def test_a_locked_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN EXCLUSIVE")
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        with pytest.raises(sqlite3.OperationalError) as locked:
            writer.execute("BEGIN IMMEDIATE")
    finally:
        holder.close()
        writer.close()
    assert is_outage(locked.value)


def test_a_sql_mistake_is_not_an_outage() -> None:
    db = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as mistake:
        db.execute("SELECT * FROM no_such_table")
    assert not is_outage(mistake.value)  # retrying would stall ingest forever
    db.execute("CREATE TABLE t (k PRIMARY KEY)")
    with pytest.raises(sqlite3.IntegrityError) as duplicate:
        db.execute("INSERT INTO t VALUES (1), (1)")
    assert not is_outage(duplicate.value)


def test_an_unreachable_mongodb_is_an_outage_and_a_refused_command_is_not() -> None:
    assert is_outage(ServerSelectionTimeoutError("no primary"))
    assert is_outage(AutoReconnect("connection reset"))
    transient = OperationFailure(
        "write conflict", 112, {"errorLabels": ["TransientTransactionError"]}
    )
    assert is_outage(transient)
    assert not is_outage(OperationFailure("bad query", 2))
    assert not is_outage(ValueError("a bug"))
