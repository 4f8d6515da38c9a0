"""``GET /dashboard/events``: the changes of a tenant's entities, pushed to a page as
server-sent events (WHATWG HTML §9.2), fed by the subscription engine.

Each connection holds a transient subscription (``SubscriptionService.hold_transient``) to the
types it asks for, made with the caller's identity like one created through the API: a caller
who sees the tenant through sharing grants is sent only what those grants share, and nothing
once they are revoked. Its notifications (normalized, with system attributes so the page can
order them by ``modifiedAt``) arrive through an in-process ``SinkStream``.

Events: ``ready`` once the subscription is held (the page then takes its snapshot through the
API, so no change falls between the two), ``notification`` with a Notification body (§5.3.1),
``resync`` when the page fell too far behind and must take a new snapshot. After a network drop
the browser reconnects and takes a snapshot again: the latest state is never lost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse

from broker.api.access import READ, access_of
from broker.api.requests import runtime, terms_of
from broker.auth.principal import principal_doc
from broker.dashboard.sink import SinkStream
from broker.ngsild.errors import BadRequestData, NotAcceptable
from broker.ngsild.subscriptions.subscription import parse_subscription
from broker.services.subscriptions import SubscriptionService

router = APIRouter(tags=["Dashboard"])
EVENT_STREAM = "text/event-stream"
RETRY_MS = 2000
"""How soon the browser reconnects after a drop (the ``retry`` field)."""
MAX_TYPES = 50
PLACEHOLDER = "http://dashboard.invalid/"
TRIGGERS = [
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
]


@router.get("/dashboard/events", summary="Live changes for the dashboard", dependencies=[READ])
async def events(request: Request, type: Annotated[str, Query()]) -> StreamingResponse:
    if EVENT_STREAM not in (request.headers.get("accept") or ""):
        raise NotAcceptable(f"this resource is only offered as {EVENT_STREAM}")
    types = [name for name in type.split(",") if name]
    if not types or len(types) > MAX_TYPES:
        raise BadRequestData(f"type must name 1..{MAX_TYPES} entity types")
    access = access_of(request)
    parts = runtime(request)
    terms = await terms_of(request)
    service = parts.subscriptions
    settings = parts.settings.dashboard
    stream = parts.sinks.open(settings.stream_queue)
    body: dict[str, Any] = {
        "type": "Subscription",
        "entities": [{"type": name} for name in types],
        # Clients may not name a sink (the parser refuses the scheme): the sink is put in after.
        "notification": {"endpoint": {"uri": PLACEHOLDER}, "sysAttrs": True},
        # Deletions too (not among the default triggers, §5.2.12): the page removes the marker.
        "notificationTrigger": TRIGGERS,
    }
    if settings.throttling:
        body["throttling"] = settings.throttling
    try:
        sub = parse_subscription(body, terms, now=service.now(), context=terms.source)
        shared = access.shared and access.principal is not None
        shared_by = principal_doc(access.principal) if shared and access.principal else None
        endpoint = replace(sub.notification.endpoint, uri=stream.endpoint)
        notification = replace(sub.notification, endpoint=endpoint)
        sub = replace(sub, notification=notification, owner=access.who, shared_by=shared_by)
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
            for body in bodies:
                serial += 1
                chunk += b"id: %d\nevent: notification\ndata: %s\n\n" % (serial, body)
            yield bytes(chunk)
    finally:
        service.release_transient(tenant, subscription_id)
        stream.close()
