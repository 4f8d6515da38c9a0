"""``/jsonldContexts`` and ``/jsonldContexts/{contextId}``: the @context store (GS CIM 009 §5.13).

Adding and deleting need ``WRITE`` and listing and serving ``READ`` in the tenant the request
names: hosted @contexts are the tenant's own (§5.5.10). A ``{contextId}`` may be a URL (that is
how Cached @contexts are named), percent-encoded, so the route takes the rest of the path.
"""

from __future__ import annotations

from typing import Annotated

import orjson
from fastapi import APIRouter, Query, Request, Response

from broker.api.access import READ, WRITE
from broker.api.media import JSON, content_type
from broker.api.requests import json_body, runtime, tenant_of
from broker.ngsild.jsonld_contexts import HOSTED_PATH, parse_kind
from broker.services.contexts import ContextService

router = APIRouter(tags=["@contexts"])
Flag = Annotated[bool, Query()]


def _service(request: Request) -> ContextService:
    return runtime(request).jsonld_contexts


def _base(request: Request) -> str:
    """The broker's URL as this client reached it: hosted @contexts are served below it."""
    return str(request.base_url)


@router.post(
    "/jsonldContexts", status_code=201, summary="Add @context (§5.13.2)", dependencies=[WRITE]
)
async def add_context(request: Request) -> Response:
    content_type(request.headers.get("content-type"))
    hosted = await _service(request).add(tenant_of(request), await json_body(request))
    return Response(status_code=201, headers={"Location": HOSTED_PATH + hosted.local_id})


@router.get("/jsonldContexts", summary="List @contexts (§5.13.3)", dependencies=[READ])
async def list_contexts(
    request: Request,
    details: Flag = False,
    kind: Annotated[str | None, Query()] = None,
) -> Response:
    infos = _service(request).list(tenant_of(request), parse_kind(kind), _base(request))
    shown = [info.details() for info in infos] if details else [info.url for info in infos]
    return Response(orjson.dumps(shown), media_type=JSON)


@router.get(
    "/jsonldContexts/{contextId:path}",
    summary="Serve @context (§5.13.4)",
    dependencies=[READ],
)
async def serve_context(request: Request, contextId: str, details: Flag = False) -> Response:
    entry = _service(request).serve(tenant_of(request), contextId, _base(request))
    return Response(
        orjson.dumps(entry.info.details() if details else entry.document), media_type=JSON
    )


@router.delete(
    "/jsonldContexts/{contextId:path}",
    status_code=204,
    summary="Delete @context (§5.13.5)",
    dependencies=[WRITE],
)
async def delete_context(request: Request, contextId: str, reload: Flag = False) -> Response:
    await _service(request).delete(tenant_of(request), contextId, reload=reload)
    return Response(status_code=204)
