"""The dashboard's streams and the feed that fills them: the engine's ``Feed``.

Theory of operation. A dashboard stream opens a ``SinkStream`` for its tenant, with the types
and attributes its page shows (``StreamView``) and, for a viewer who sees the tenant through
sharing grants, that viewer. It also holds a transient subscription to those types, which only
makes the tenant's writes of them reach the engine; the engine hands every committed change to
``Sinks.changed`` and does nothing else for it (no matching, rendering or dispatching).

Streams that are shown alike (same view, no viewer through grants) form one ``_Group``; each
viewer through grants is a group of its own. ``changed`` renders the change once per group, in
the compact form (``broker.dashboard.compact``), straight to JSON bytes kept under the entity's
id: a later change of the entity in the same window of ``window`` seconds replaces it, so what
a window sends is the latest state of each entity changed in it (the page only shows the
latest). Nothing else of the change is kept: holding the documents themselves for a window kept
thousands of dicts alive across garbage collections, which then promoted them into the full
collections that cost more than all the rendering. When the window ends, every stream of a
group is given the same event: a JSON array of those entities.

A viewer through grants is shown each entity as the grants that let it read project it
(``shared_view``, the grants read once per window), and an entity it can no longer see as
deleted; once the grants are revoked its stream is ended (the page reconnects and is refused,
as the API would refuse it).

A page that reads slower than events arrive falls behind; past ``capacity`` events the buffer
is emptied and the stream marked ``overflowed``, and the page is told to take a new snapshot
through the API (its state is then as new as the snapshot, nothing is lost for good).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Sequence

import orjson

from broker.auth.grants import Grant, shared_view
from broker.auth.principal import Principal
from broker.clock import Clock, timestamp, utc_now
from broker.dashboard.compact import StreamView, compact_entity, deleted_entity
from broker.ngsild.subscriptions.changes import Change

_log = logging.getLogger(__name__)
SCHEME = "sink"
ReadGrants = Callable[[str, Principal], Sequence[Grant]]
"""(owner tenant, viewer) → the grants that let the viewer read there now."""


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


class _Group:
    """Streams shown alike, and what the current window has for them."""

    def __init__(self, view: StreamView, viewer: Principal | None) -> None:
        self.view = view
        self.viewer = viewer
        self.streams: list[SinkStream] = []
        self.pending: dict[str, bytes] = {}
        """Entity id → its latest compact form in the window, in the order first changed."""
        self.grants: Sequence[Grant] | None = None
        """The viewer's grants, read at the window's first change (None: not yet, or no
        viewer)."""


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
        self._groups: dict[str, dict[tuple[object, ...], _Group]] = {}
        self._due: set[str] = set()
        """Tenants whose window is open (a flush is scheduled)."""

    def open(
        self, tenant: str, view: StreamView, viewer: Principal | None, capacity: int
    ) -> SinkStream:
        """A new stream with an unguessable id (its address is never shown to anyone)."""
        stream = SinkStream(secrets.token_hex(16), tenant, view, viewer, capacity, self._forget)
        self._streams.setdefault(tenant, {})[stream.id] = stream
        groups = self._groups.setdefault(tenant, {})
        key = view.key if viewer is None else (stream.id,)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(view, viewer)
        group.streams.append(stream)
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
        tenant = stream.tenant
        streams = self._streams.get(tenant, {})
        if streams.pop(stream.id, None) is None:
            return
        groups = self._groups[tenant]
        for key, group in list(groups.items()):
            if stream in group.streams:
                group.streams.remove(stream)
                if not group.streams:
                    del groups[key]
        if not streams:
            del self._streams[tenant]
            del self._groups[tenant]

    def changed(self, change: Change) -> None:
        """Render ``change`` for the streams of its tenant (the engine calls this per commit)."""
        tenant = change.tenant
        groups = self._groups.get(tenant)
        if not groups:
            return
        if tenant not in self._due:
            self._due.add(tenant)
            asyncio.get_running_loop().call_later(self._window, self._flush, tenant)
        entity_id = change.entity_id
        for group in groups.values():
            try:
                shown = self._render(group, change)
            except Exception:  # one stream's bug must not starve the others
                _log.exception("rendering a change of %s for a dashboard failed", entity_id)
                continue
            if shown is not None:
                group.pending[entity_id] = shown

    def _render(self, group: _Group, change: Change) -> bytes | None:
        """``change`` as ``group`` is shown it; None when it sees nothing of it."""
        view = group.view
        after = change.after if view.shows(change.after) else None
        before = change.before if view.shows(change.before) else None
        if group.viewer is not None:
            grants = group.grants
            if grants is None:
                grants = group.grants = self._grants(change.tenant, group.viewer)
            after = None if after is None else shared_view(after, grants)
            before = None if before is None else shared_view(before, grants)
        if after is not None:
            return orjson.dumps(compact_entity(after, view))
        if before is not None:
            return orjson.dumps(deleted_entity(before, view, timestamp(self._clock)))
        return None

    def _grants(self, tenant: str, viewer: Principal) -> Sequence[Grant]:
        return self._readable(tenant, viewer) if self._readable is not None else ()

    def _flush(self, tenant: str) -> None:
        self._due.discard(tenant)
        for group in list(self._groups.get(tenant, {}).values()):
            pending, group.pending = group.pending, {}
            if group.viewer is not None:
                grants, group.grants = group.grants, None
                if grants is not None and not grants:  # revoked: the page is let go, and
                    for stream in list(group.streams):  # refused when it comes back
                        stream.end()
                    continue
            if not pending:
                continue
            event = b"[" + b",".join(pending.values()) + b"]"
            for stream in group.streams:
                stream.put(event)
