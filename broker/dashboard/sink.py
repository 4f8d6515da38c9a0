"""The dashboard's streams and the feed that fills them: the engine's ``Feed``.

Theory of operation. A dashboard stream opens a ``SinkStream`` for its tenant, with the types
and attributes its page shows (``StreamView``) and, for a viewer who sees the tenant through
sharing grants, that viewer. It also holds a transient subscription to those types, which only
makes the tenant's writes of them reach the engine; the engine hands every committed change to
``Sinks.changed`` and does nothing else for it (no matching, rendering or dispatching).

``changed`` only notes the change under its entity: the first state before and the latest
after within the current window of ``window`` seconds, so what a window sends is the latest
state of each entity changed in it (the page only shows the latest). When the window ends, each
entity is rendered once in its compact form (``broker.dashboard.compact``) for all the streams
that show it alike, and every stream is given one event with its batch. A viewer through grants
is shown each entity as the grants that let it read now project it (``shared_view``), and an
entity it can no longer see as deleted; once the grants are revoked its stream is ended (the
page reconnects and is refused, as the API would refuse it).

A page that reads slower than events arrive falls behind; past ``capacity`` events the buffer
is emptied and the stream marked ``overflowed``, and the page is told to take a new snapshot
through the API (its state is then as new as the snapshot, nothing is lost for good).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence

import orjson

from broker.auth.grants import Grant, shared_view
from broker.auth.principal import Principal
from broker.clock import Clock, timestamp, utc_now
from broker.dashboard.compact import StreamView, compact_entity, deleted_entity
from broker.ngsild.entity import EntityDoc
from broker.ngsild.subscriptions.changes import Change

_log = logging.getLogger(__name__)
SCHEME = "sink"
ReadGrants = Callable[[str, Principal], Sequence[Grant]]
"""(owner tenant, viewer) → the grants that let the viewer read there now."""
States = dict[str, tuple[EntityDoc | None, EntityDoc | None]]
"""Entity id → (its state before the window, its latest state), in the order first changed."""


class SinkStream:
    """The buffer of one connected page.

    Args:
        stream_id: Unguessable; names the stream's transient subscription's endpoint.
        tenant: Whose changes it shows.
        view: What of them it shows.
        viewer: Who sees them through sharing grants (None: a member of the tenant).
        capacity: Events it may fall behind by.
        closed: Told the id when the stream closes.
    """

    def __init__(
        self,
        stream_id: str,
        tenant: str,
        view: StreamView,
        viewer: Principal | None,
        capacity: int,
        closed: Callable[[SinkStream], None],
    ) -> None:
        self.id = stream_id
        self.endpoint = f"{SCHEME}://{stream_id}:1/"
        self.tenant = tenant
        self.view = view
        self.viewer = viewer
        self._capacity = capacity
        self._closed = closed
        self._items: deque[bytes] = deque()
        self._ready = asyncio.Event()
        self.overflowed = False
        self.ended = False
        """Set when the page is let go: it reconnects (to whoever serves next, if the broker
        stopped) and is refused if it may no longer read."""

    def put(self, event: bytes) -> None:
        """Take one event's data (never waits)."""
        if len(self._items) >= self._capacity:
            self._items.clear()
            self.overflowed = True
        else:
            self._items.append(event)
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
        """Let the page go (the broker is stopping, or the viewer's grants were revoked)."""
        self.ended = True
        self._ready.set()

    def close(self) -> None:
        self._closed(self)


class Sinks:
    """The open streams by tenant, and the engine's ``Feed`` that fills them.

    Args:
        window: Seconds changes are gathered for before they are sent (0: at the next turn
            of the event loop).
        readable: The grants a viewer reads through; None when there are none (no auth).
        clock: The time deletions are stamped with.
    """

    def __init__(
        self, window: float = 0.1, readable: ReadGrants | None = None, clock: Clock = utc_now
    ) -> None:
        self._window = window
        self._readable = readable
        self._clock = clock
        self._streams: dict[str, dict[str, SinkStream]] = {}
        self._pending: dict[str, States] = {}

    def open(
        self, tenant: str, view: StreamView, viewer: Principal | None, capacity: int
    ) -> SinkStream:
        """A new stream with an unguessable id (its address is never shown to anyone)."""
        stream = SinkStream(secrets.token_hex(16), tenant, view, viewer, capacity, self._forget)
        self._streams.setdefault(tenant, {})[stream.id] = stream
        return stream

    @property
    def open_streams(self) -> int:
        """How many pages are connected."""
        return sum(len(streams) for streams in self._streams.values())

    def end_all(self) -> None:
        """End every stream now: uvicorn waits for open responses before it stops, and an
        event stream would never end by itself."""
        for streams in self._streams.values():
            for stream in list(streams.values()):
                stream.end()

    def _forget(self, stream: SinkStream) -> None:
        streams = self._streams.get(stream.tenant, {})
        streams.pop(stream.id, None)
        if not streams:
            self._streams.pop(stream.tenant, None)

    def changed(self, change: Change) -> None:
        """Note ``change`` for the streams of its tenant (the engine calls this per commit)."""
        tenant = change.tenant
        if tenant not in self._streams:
            return
        pending = self._pending.get(tenant)
        if pending is None:
            pending = self._pending[tenant] = {}
            asyncio.get_running_loop().call_later(self._window, self._flush, tenant)
        entity_id = change.entity_id
        earlier = pending.get(entity_id)
        pending[entity_id] = (change.before if earlier is None else earlier[0], change.after)

    def _flush(self, tenant: str) -> None:
        states = self._pending.pop(tenant, {})
        streams = self._streams.get(tenant)
        if not states or not streams:
            return
        rendered: dict[tuple[object, ...], bytes] = {}
        for stream in list(streams.values()):
            grants: Sequence[Grant] | None = None  # a member of the tenant: everything
            if stream.viewer is not None:
                grants = self._readable(tenant, stream.viewer) if self._readable else ()
                if not grants:  # revoked: the page is let go, and refused when it comes back
                    stream.end()
                    continue
            # Viewers through grants are each shown their own projection.
            key = stream.view.key if grants is None else (stream.id,)
            try:
                event = rendered.get(key)
                if event is None:
                    event = rendered[key] = self._render(stream.view, grants, states.values())
            except Exception:  # one stream's bug must not starve the others
                _log.exception("rendering changes for a dashboard stream failed")
                continue
            if event:
                stream.put(event)

    def _render(
        self,
        view: StreamView,
        grants: Sequence[Grant] | None,
        states: Iterable[tuple[EntityDoc | None, EntityDoc | None]],
    ) -> bytes:
        """The batch of a stream (JSON array), empty when it shows none of ``states``;
        projected through ``grants`` unless they are None."""
        docs = []
        now = ""
        for before, after in states:
            shown_after = after if view.shows(after) else None
            shown_before = before if view.shows(before) else None
            if grants is not None:
                shown_after = None if shown_after is None else shared_view(shown_after, grants)
                shown_before = None if shown_before is None else shared_view(shown_before, grants)
            if shown_after is not None:
                docs.append(compact_entity(shown_after, view))
            elif shown_before is not None:
                now = now or timestamp(self._clock)
                docs.append(deleted_entity(shown_before, view, now))
        return orjson.dumps(docs) if docs else b""
