"""``/info/sourceIdentity`` (GS CIM 009 v1.9.1 §5.15.2, ContextSourceIdentity §5.2.37): who this
broker is as a context source — the alias it puts in ``Via`` (loop detection), how long it has
been up and its time now. Reading it needs READ, like the data it is the source of."""

from __future__ import annotations

import time

import orjson
from fastapi import APIRouter, Request, Response

from broker.api.access import READ
from broker.api.requests import runtime
from broker.clock import timestamp

router = APIRouter(tags=["Context Source Identity"])
_STARTED = time.monotonic()


@router.get(
    "/info/sourceIdentity", summary="Context Source Identity (§5.15.2)", dependencies=[READ]
)
async def source_identity(request: Request) -> Response:
    alias = runtime(request).federation.pseudonym
    body = {
        "id": f"urn:ngsi-ld:ContextSourceIdentity:{alias}",
        "type": "ContextSourceIdentity",
        "contextSourceExtras": {"software": "Toshi"},
        "contextSourceUptime": f"PT{int(time.monotonic() - _STARTED)}S",
        "contextSourceTimeAt": timestamp(),
        "contextSourceAlias": alias,
    }
    return Response(orjson.dumps(body), media_type="application/json")
