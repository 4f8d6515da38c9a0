"""``GET /dashboard/events``: the changes of a tenant's entities, pushed to a page as
server-sent events (WHATWG HTML §9.2).

Each connection opens a stream (``broker.dashboard.sink``) for the ``type``s it asks for and the
``attrs`` its page uses (all attributes without ``attrs``), and holds a transient subscription
to those types so that their writes reach the engine's feed. A caller who sees the tenant
through sharing grants is sent only what the grants that let it read share, as the API would
show it, and nothing once they are revoked.

Events: ``ready`` once the stream is in place (the page then takes its snapshot through the
API, so no change falls between the two), ``changes`` with a JSON array of the entities changed
in the last window, each in the compact form of ``broker.dashboard.compact`` (the latest state
of each), and ``resync`` when the page fell too far behind and must take a new snapshot. After a
network drop the browser reconnects and takes a snapshot again: the latest state is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from broker.api.access import READ, access_of
from broker.api.requests import runtime, terms_of
from broker.dashboard.compact import StreamView
from broker.dashboard.sink import SinkStream
from broker.ngsild.errors import BadRequestData, NotAcceptable
from broker.ngsild.names import check_name
from broker.ngsild.params import split_list
from broker.ngsild.subscriptions.subscription import parse_subscription
from broker.services.subscriptions import SubscriptionService

router = APIRouter(tags=["Dashboard"])
EVENT_STREAM = "text/event-stream"
RETRY_MS = 2000
"""How soon the browser reconnects after a drop (the ``retry`` field)."""
MAX_TYPES = 50
MAX_ATTRS = 100
PLACEHOLDER = "http://dashboard.invalid/"


@router.get("/dashboard/events", summary="Live changes for the dashboard", dependencies=[READ])
async def events(
    request: Request,
    type: Annotated[str, Query()],
    attrs: Annotated[str | None, Query()] = None,
) -> StreamingResponse:
    if EVENT_STREAM not in (request.headers.get("accept") or ""):
        raise NotAcceptable(f"this resource is only offered as {EVENT_STREAM}")
    types = [name for name in type.split(",") if name]
    if not types or len(types) > MAX_TYPES:
        raise BadRequestData(f"type must name 1..{MAX_TYPES} entity types")
    names = split_list(attrs)
    if names is not None and len(names) > MAX_ATTRS:
        raise BadRequestData(f"attrs may name at most {MAX_ATTRS} attributes")
    access = access_of(request)
    parts = runtime(request)
    terms = await terms_of(request)
    service = parts.subscriptions
    settings = parts.settings.dashboard
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": name} for name in types],
        # Clients may not name a sink (the parser refuses the scheme): the sink is put in after.
        "notification": {"endpoint": {"uri": PLACEHOLDER}},
    }
    sub = parse_subscription(body, terms, now=service.now(), context=terms.source)
    shown = None
    if names is not None:
        shown = {terms.expand(check_name(name, "attribute name")): name for name in names}
    view = StreamView(frozenset(terms.expand(name) for name in types), shown, terms)
    viewer = access.principal if access.shared else None
    stream = parts.sinks.open(access.tenant, view, viewer, settings.stream_queue)
    endpoint = replace(sub.notification.endpoint, uri=stream.endpoint)
    sub = replace(sub, notification=replace(sub.notification, endpoint=endpoint), owner=access.who)
    try:
        await service.hold_transient(access.tenant, sub)
    except Exception:
        stream.close()
        raise
    frames = _frames(service, access.tenant, sub.id, stream, settings.heartbeat)
    headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    return StreamingResponse(frames, media_type=EVENT_STREAM, headers=headers)


async def _frames(
    service: SubscriptionService,
    tenant: str,
    subscription_id: str,
    stream: SinkStream,
    heartbeat: float,
) -> AsyncIterator[bytes]:
    """The event stream; ends (and forgets the subscription) when the page goes away."""
    serial = 0
    try:
        yield f"retry: {RETRY_MS}\nevent: ready\ndata: {{}}\n\n".encode()
        while True:
            bodies = await stream.take(heartbeat)
            if stream.ended:
                return
            if bodies is None:
                yield b": keep-alive\n\n"
                continue
            if stream.overflowed:
                stream.overflowed = False
                yield b"event: resync\ndata: {}\n\n"
                continue
            chunk = bytearray()
            for batch in bodies:
                serial += 1
                chunk += b"id: %d\nevent: changes\ndata: %s\n\n" % (serial, batch)
            yield bytes(chunk)
    finally:
        service.release_transient(tenant, subscription_id)
        stream.close()
