"""In-process notification receivers: the ``sink`` sender of the dispatcher.

Theory of operation. A dashboard stream opens a ``SinkStream`` and holds a transient
subscription whose endpoint is the stream's address, ``sink://<stream id>:1/``. The
subscription engine matches, projects (grants) and renders its notifications exactly as for any
other subscription; the dispatcher hands each to ``Sinks.hand_over`` the moment it is submitted
(``ImmediateSender``: no queue, worker or retry), which appends the body to the stream's buffer
instead of sending it anywhere. No HTTP over loopback, no socket, no serialising twice.

A page that reads slower than changes arrive falls behind; past ``capacity`` notifications the
buffer is emptied and the stream marked ``overflowed``, and the page is told to take a new
snapshot through the API (its state is then as new as the snapshot, nothing is lost for good).
"""

from __future__ import annotations

import asyncio
import secrets
from collections import deque
from collections.abc import Callable

from broker.notify.http_sender import PeerCheck

SCHEME = "sink"
_HOST_AT = len(SCHEME) + 3
"""Where the stream id starts in ``sink://<id>:1/``."""
GONE = 410
"""Status for a stream that has closed: not retried (4xx), the delivery ends."""


class SinkStream:
    """The buffer of one connected page."""

    def __init__(self, stream_id: str, capacity: int, closed: Callable[[str], None]) -> None:
        self.id = stream_id
        self.endpoint = f"{SCHEME}://{stream_id}:1/"
        self._capacity = capacity
        self._closed = closed
        self._items: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.ended = False
        """Set when the broker stops: the page is let go (it reconnects to whoever serves next)."""

    def put(self, body: bytes) -> None:
        """Take one notification body (never waits)."""
        if len(self._items) >= self._capacity:
            self._items.clear()
            self.overflowed = True
        else:
            self._items.append(body)
        self._ready.set()

    async def take(self, timeout: float) -> list[bytes] | None:  # noqa: ASYNC109
        """Everything buffered, waiting up to ``timeout`` seconds for something; None when
        nothing came. After an overflow, an empty list and ``overflowed`` set."""
        if not self._items and not self.overflowed and not self.ended:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        taken = list(self._items)
        self._items.clear()
        return taken

    def end(self) -> None:
        """Let the page go (the broker is stopping)."""
        self.ended = True
        self._ready.set()

    def close(self) -> None:
        self._closed(self.id)


class Sinks:
    """The open streams, and the dispatcher's ``Sender`` for the ``sink`` scheme."""

    def __init__(self) -> None:
        self._streams: dict[str, SinkStream] = {}

    def open(self, capacity: int) -> SinkStream:
        """A new stream with an unguessable id (its address is never shown to anyone)."""
        stream = SinkStream(secrets.token_hex(16), capacity, self._forget)
        self._streams[stream.id] = stream
        return stream

    @property
    def open_streams(self) -> int:
        """How many pages are connected."""
        return len(self._streams)

    def end_all(self) -> None:
        """End every stream now: uvicorn waits for open responses before it stops, and an
        event stream would never end by itself."""
        for stream in list(self._streams.values()):
            stream.end()

    def _forget(self, stream_id: str) -> None:
        self._streams.pop(stream_id, None)

    def hand_over(self, url: str, body: bytes) -> bool:
        """Give ``body`` to the stream ``url`` names (the dispatcher's ``ImmediateSender``):
        False when it has closed."""
        stream = self._streams.get(url[_HOST_AT : url.find(":", _HOST_AT)])
        if stream is None:
            return False
        stream.put(body)
        return True

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109 - the Sender protocol
        check: PeerCheck | None = None,
    ) -> int:
        """The ``Sender`` way of ``hand_over``: 200, or 410 when the stream has closed."""
        return 200 if self.hand_over(url, body) else GONE

    async def close(self) -> None:
        """Nothing to release: streams end with their connections."""
