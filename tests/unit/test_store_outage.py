"""Which store failures ingest waits out, and which it sets aside as the message's own fault."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from broker.store.outage import is_outage
from pymongo.errors import AutoReconnect, OperationFailure, ServerSelectionTimeoutError


def test_a_locked_sqlite_file_is_an_outage(tmp_path: Path) -> None:
    path = tmp_path / "locked.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA journal_mode=WAL")
    holder.execute("BEGIN EXCLUSIVE")
    writer = sqlite3.connect(path, isolation_level=None, timeout=0.05)
    try:
        writer.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        assert is_outage(error)
    else:
        raise AssertionError("the second writer got the lock")
    finally:
        holder.close()
        writer.close()


def test_a_sql_mistake_is_not_an_outage() -> None:
    db = sqlite3.connect(":memory:")
    try:
        db.execute("SELECT * FROM no_such_table")
    except sqlite3.OperationalError as error:
        assert not is_outage(error)  # retrying would stall ingest forever
    else:
        raise AssertionError("the query ran")
    try:
        db.execute("CREATE TABLE t (k PRIMARY KEY)")
        db.execute("INSERT INTO t VALUES (1), (1)")
    except sqlite3.IntegrityError as error:
        assert not is_outage(error)


def test_an_unreachable_mongodb_is_an_outage_and_a_refused_command_is_not() -> None:
    assert is_outage(ServerSelectionTimeoutError("no primary"))
    assert is_outage(AutoReconnect("connection reset"))
    transient = OperationFailure(
        "write conflict", 112, {"errorLabels": ["TransientTransactionError"]}
    )
    assert is_outage(transient)
    assert not is_outage(OperationFailure("bad query", 2))
    assert not is_outage(ValueError("a bug"))
