"""Where audit lines go: gathered in memory, written in batches (issue 12).

Lines go to standard error, or to the file ``TOSHI_AUDIT_LOG_FILE`` names, gathered and written
every ``flush_every`` seconds in one write: at thousands of writes a second a logging record
and a system call per line cost a fifth of the broker's throughput, this costs a few percent.
A crash loses at most the lines of the last interval; a stop writes them all. The lines
themselves are made by ``broker.api.audit``.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TextIO


class AuditTrail:
    """Where audit lines go: gathered in memory, written in batches."""

    def __init__(self, path: str | None = None, flush_every: float = 0.2) -> None:
        self._path = path
        self._flush_every = flush_every
        self._lines: list[bytes] = []
        self._out: TextIO | None = None
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._path is not None:
            self._out = await asyncio.to_thread(open, self._path, "a", encoding="utf-8")
        self._flusher = asyncio.create_task(self._flush_loop(), name="audit-flush")

    async def close(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        self.flush()
        if self._out is not None:
            self._out.close()

    def add(self, line: bytes) -> None:
        self._lines.append(line)

    def flush(self) -> None:
        lines, self._lines = self._lines, []
        if lines:
            out = self._out or sys.stderr
            out.write(b"\n".join(lines).decode() + "\n")
            out.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_every)
            self.flush()
