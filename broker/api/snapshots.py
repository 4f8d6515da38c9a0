"""``/snapshots``: Snapshots (GS CIM 009 v1.9.1 §5.16, §6.36-§6.38) and the ``NGSILD-Snapshot``
header that points entity operations at one (§6.3.22)."""

from __future__ import annotations

from urllib.parse import quote

import orjson
from fastapi import APIRouter, Request, Response

from broker.api.access import READ, WRITE
from broker.api.query_params import query_of_body
from broker.api.requests import json_body, lasting_reads, read_json, runtime, tenant_of
from broker.ngsild import snapshots as rules
from broker.ngsild.query.params import Paging
from broker.services.snapshots import SnapshotService

router = APIRouter(tags=["Snapshots"])


def _snapshots(request: Request) -> SnapshotService:
    service = runtime(request).snapshots
    assert service is not None  # open_runtime always builds one
    return service


def _location(snapshot_id: str) -> dict[str, str]:
    return {"Location": "/ngsi-ld/v1/snapshots/" + quote(snapshot_id, safe=":")}


def _json(payload: object, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status, media_type="application/json")


@router.post(
    "/snapshots", status_code=201, summary="Create Snapshot (§5.16.1)", dependencies=[WRITE]
)
async def create_snapshot(request: Request) -> Response:
    incoming = await read_json(request)
    raw, priority = rules.parse_snapshot(incoming.body)
    limits = runtime(request).settings.limits
    paging = Paging(None, None, False, limits.default_page_size, limits.max_page_size)
    queries = [query_of_body(query, incoming.terms, paging) for query in raw]
    reads = await lasting_reads(request)
    created = await _snapshots(request).create(incoming.tenant, raw, queries, priority, reads)
    return Response(status_code=201, headers=_location(created["id"]))


@router.get("/snapshots", summary="Query Snapshots (§5.16.6)", dependencies=[READ])
async def query_snapshots(request: Request) -> Response:
    return _json(await _snapshots(request).query(tenant_of(request)))


@router.delete(
    "/snapshots", status_code=204, summary="Purge Snapshots (§5.16.7)", dependencies=[WRITE]
)
async def purge_snapshots(request: Request, q: str | None = None) -> Response:
    await _snapshots(request).purge(tenant_of(request), q)
    return Response(status_code=204)


@router.get("/snapshots/{snapshotId}", summary="Retrieve Snapshot (§5.16.3)", dependencies=[READ])
async def retrieve_snapshot(request: Request, snapshotId: str) -> Response:
    return _json(await _snapshots(request).retrieve(tenant_of(request), snapshotId))


@router.patch("/snapshots/{snapshotId}", summary="Update Snapshot (§5.16.4)", dependencies=[WRITE])
async def update_snapshot(request: Request, snapshotId: str) -> Response:
    body = await json_body(request)
    return _json(await _snapshots(request).update(tenant_of(request), snapshotId, body))


@router.delete(
    "/snapshots/{snapshotId}",
    status_code=204,
    summary="Delete Snapshot (§5.16.5)",
    dependencies=[WRITE],
)
async def delete_snapshot(request: Request, snapshotId: str) -> Response:
    await _snapshots(request).delete(tenant_of(request), snapshotId)
    return Response(status_code=204)


@router.post(
    "/snapshots/{snapshotId}/clone",
    status_code=201,
    summary="Clone Snapshot (§5.16.2)",
    dependencies=[WRITE],
)
async def clone_snapshot(request: Request, snapshotId: str) -> Response:
    body = await json_body(request) if await request.body() else None
    cloned = await _snapshots(request).clone(tenant_of(request), snapshotId, body)
    return Response(status_code=201, headers=_location(cloned["id"]))
