"""A thread that owns one SQLite connection and runs jobs for the event loop in batches.

Theory of operation. SQLite calls block, so they never run on the event loop. Each connection
lives in its own thread; coroutines put ``(job, future)`` pairs on a queue and await the future.
The thread takes everything queued at once and, for a writer, runs the whole batch in one
transaction — each job inside its own SAVEPOINT so that one failing job does not undo the others —
then commits once and resolves all the futures with a single wake-up of the event loop. Under
concurrent load this is group commit: one WAL append and one loop wake-up serve many requests.

A future is resolved only after COMMIT returned, so an acknowledged write is in the WAL file.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, TypeVar

R = TypeVar("R")
Job = Callable[[sqlite3.Connection], Any]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]

_MAX_BATCH = 512
_log = logging.getLogger(__name__)


class SqliteWorker:
    """One connection, one thread, a queue of jobs.

    Args:
        connect: opens the connection; called in the worker thread.
        name: thread name, for logs and debuggers.
        transactional: run each batch in a single write transaction (the writer); readers run
            jobs one by one in autocommit mode.
        on_rollback: called in the worker thread after any write was undone (a failed job's
            savepoint or a whole batch), so caches of what was written can be dropped.
    """

    def __init__(
        self,
        connect: Callable[[], sqlite3.Connection],
        name: str,
        *,
        transactional: bool,
        on_rollback: Callable[[], None] = lambda: None,
    ) -> None:
        self._connect = connect
        self._transactional = transactional
        self._on_rollback = on_rollback
        self._queue: queue.SimpleQueue[tuple[Job, asyncio.Future[Any]] | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread and wait until its connection is open (or failed to open)."""
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            raise self._failure

    def submit(self, job: Callable[[sqlite3.Connection], R]) -> asyncio.Future[R]:
        """Queue ``job``; the returned future resolves on the calling event loop."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.put((job, future))
        return future

    def stop(self) -> None:
        """Finish the queued jobs, close the connection and end the thread (blocking)."""
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        try:
            connection = self._connect()
        except BaseException as exc:  # reported to start(), which re-raises it
            self._failure = exc
            self._ready.set()
            return
        self._ready.set()
        try:
            while (batch := self._next_batch()) is not None:
                outcomes = self._run_batch(connection, batch)
                _deliver_all(outcomes)
        finally:
            connection.close()

    def _next_batch(self) -> list[tuple[Job, asyncio.Future[Any]]] | None:
        first = self._queue.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < _MAX_BATCH:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:
                self._queue.put(None)  # stop after this batch
                break
            batch.append(item)
        return batch

    def _run_batch(
        self, connection: sqlite3.Connection, batch: list[tuple[Job, asyncio.Future[Any]]]
    ) -> list[_Outcome]:
        if not self._transactional:
            return [_attempt(connection, job, future) for job, future in batch]
        try:
            connection.execute("BEGIN IMMEDIATE")
            outcomes = [self._in_savepoint(connection, job, future) for job, future in batch]
            connection.execute("COMMIT")
        except sqlite3.Error as exc:
            _log.exception("SQLite transaction failed; %d writes not acknowledged", len(batch))
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            self._on_rollback()
            return [(future, None, exc) for _, future in batch]
        return outcomes

    def _in_savepoint(
        self, connection: sqlite3.Connection, job: Job, future: asyncio.Future[Any]
    ) -> _Outcome:
        connection.execute("SAVEPOINT job")
        outcome = _attempt(connection, job, future)
        if outcome[2] is not None:
            connection.execute("ROLLBACK TO job")
            self._on_rollback()
        connection.execute("RELEASE job")
        return outcome


def _attempt(connection: sqlite3.Connection, job: Job, future: asyncio.Future[Any]) -> _Outcome:
    try:
        return future, job(connection), None
    except Exception as exc:
        return future, None, exc


def _deliver_all(outcomes: list[_Outcome]) -> None:
    by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].get_loop(), []).append(outcome)
    for loop, items in by_loop.items():
        try:
            loop.call_soon_threadsafe(_deliver, items)
        except RuntimeError:  # the loop is closed; nobody is waiting any more
            _log.debug("dropping %d results for a closed event loop", len(items))


def _deliver(outcomes: list[_Outcome]) -> None:
    for future, result, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)
