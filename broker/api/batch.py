"""``/entityOperations/{create,upsert,update,merge,delete}``: batch entity operations.

GS CIM 009 v1.8.1 §6.14-§6.18 (HTTP binding of §5.6.7-§5.6.10 and §5.6.20). The body is a JSON
array; with ``application/json`` the Link header gives the @context of every member, with
``application/ld+json`` each member carries its own (each distinct context is resolved once).
A member that cannot be understood fails on its own, like one the store refuses.

All members succeeded: 201 with the ids created (create; upsert when it created any), else 204.
Some failed: 207 with a ``BatchOperationResult``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, TypeVar

import orjson
from fastapi import APIRouter, Query, Request, Response

from broker.api.access import WRITE
from broker.api.federated import distributed
from broker.api.media import JSON, JSON_LD, content_type
from broker.api.requests import json_body, json_request, runtime, tenant_of
from broker.contexts import ContextLoader
from broker.ngsild.batch import (
    BatchResult,
    Entry,
    Refused,
    batch_ids,
    batch_members,
    member_context,
    member_id,
    target_id,
)
from broker.ngsild.entity import EntityDoc, Fragment, parse_entity, parse_fragment
from broker.ngsild.errors import BadRequestData, NgsiLdError
from broker.ngsild.params import parse_options
from broker.ngsild.registrations import operations as ops
from broker.ngsild.terms import TermTable
from broker.ngsild.values import MERGE_NULLS, NO_NULLS, Nulls
from broker.services.batch import BatchService

router = APIRouter(tags=["Batch entity operations"])

T = TypeVar("T")
Parser = Callable[[dict[str, Any], TermTable], tuple[str, T]]
Text = Annotated[str | None, Query()]


@router.post(
    "/entityOperations/create",
    status_code=201,
    summary="Batch Entity Creation (§5.6.7)",
    dependencies=[WRITE],
)
@distributed(ops.CREATE_BATCH)
async def batch_create(request: Request) -> Response:
    batch = await _read(request)
    members = await batch.entries(_entity)
    result = await _service(request).create(batch.tenant, members)
    return _answer(result, report_created=True)


@router.post(
    "/entityOperations/upsert",
    status_code=201,
    summary="Batch Entity Upsert (§5.6.8)",
    dependencies=[WRITE],
)
@distributed(ops.UPSERT_BATCH)
async def batch_upsert(request: Request, options: Text = None) -> Response:
    opts = parse_options(options)
    if {"replace", "update"} <= opts:
        raise BadRequestData("options may say replace or update, not both")
    batch = await _read(request)
    members = await batch.entries(_entity)
    result = await _service(request).upsert(batch.tenant, members, replace="update" not in opts)
    return _answer(result, report_created=True)


@router.post(
    "/entityOperations/update",
    status_code=204,
    summary="Batch Entity Update (§5.6.9)",
    dependencies=[WRITE],
)
@distributed(ops.UPDATE_BATCH)
async def batch_update(request: Request, options: Text = None) -> Response:
    no_overwrite = "noOverwrite" in parse_options(options)
    batch = await _read(request)
    members = await batch.entries(_fragment(NO_NULLS))
    result = await _service(request).update(batch.tenant, members, no_overwrite=no_overwrite)
    return _answer(result)


@router.post(
    "/entityOperations/merge",
    status_code=204,
    summary="Batch Entity Merge (§5.6.20)",
    dependencies=[WRITE],
)
@distributed(ops.MERGE_BATCH)
async def batch_merge(request: Request) -> Response:
    batch = await _read(request)
    members = await batch.entries(_fragment(MERGE_NULLS))
    result = await _service(request).merge(batch.tenant, members)
    return _answer(result)


@router.post(
    "/entityOperations/delete",
    status_code=204,
    summary="Batch Entity Delete (§5.6.10)",
    dependencies=[WRITE],
)
@distributed(ops.DELETE_BATCH)
async def batch_delete(request: Request) -> Response:
    content_type(request.headers.get("content-type"))
    members = batch_ids(await json_body(request))
    result = await _service(request).delete(tenant_of(request), members)
    return _answer(result)


@dataclass(slots=True)
class _Batch:
    """A batch body with what is needed to understand its members."""

    tenant: str
    body: Any
    contexts: ContextLoader
    terms: TermTable | None
    """The Link header's (or the core) term table; ``None`` when each member has its own."""

    async def entries(self, parse: Parser[T]) -> list[Entry[T] | Refused]:
        """Parse every member with its term table; a member that fails is ``Refused``."""
        members = batch_members(self.body)
        tables = _Tables(self.contexts)
        entries: list[Entry[T] | Refused] = []
        for member in members:
            try:
                context = member_context(member, in_body=self.terms is None)
                terms = self.terms if self.terms is not None else await tables.get(context)
                entity_id, payload = parse(member, terms)
                entries.append(Entry(entity_id, payload, terms))
            except NgsiLdError as error:
                entries.append(Refused(member_id(member), error))
        return entries


class _Tables:
    """Term tables of the members' @contexts, each distinct context resolved once per batch."""

    def __init__(self, contexts: ContextLoader) -> None:
        self._contexts = contexts
        self._known: dict[Any, TermTable | NgsiLdError] = {}

    async def get(self, context: Any) -> TermTable:
        key = context if isinstance(context, str) else orjson.dumps(context)
        known = self._known.get(key)
        if known is None:
            try:
                known = await self._contexts.from_body(context)
            except NgsiLdError as error:
                known = error  # every member naming this context fails the same way
            self._known[key] = known
        if isinstance(known, NgsiLdError):
            raise known
        return known


async def _read(request: Request) -> _Batch:
    media, body, link = await json_request(request)
    contexts = runtime(request).contexts
    if media == JSON_LD:
        return _Batch(tenant_of(request), body, contexts, None)
    terms = contexts.core if link is None else await contexts.from_link(link)
    return _Batch(tenant_of(request), body, contexts, terms)


def _entity(member: dict[str, Any], terms: TermTable) -> tuple[str, EntityDoc]:
    doc = parse_entity(member, terms)
    return doc["id"], doc


def _fragment(nulls: Nulls) -> Parser[Fragment]:
    def parse(member: dict[str, Any], terms: TermTable) -> tuple[str, Fragment]:
        entity_id = target_id(member)
        return entity_id, parse_fragment(member, terms, nulls=nulls, entity_id=entity_id)

    return parse


def _service(request: Request) -> BatchService:
    return BatchService(runtime(request).entities)


def _answer(result: BatchResult, *, report_created: bool = False) -> Response:
    if not result.complete:
        return Response(orjson.dumps(result.document()), 207, media_type=JSON)
    if report_created and result.created:
        return Response(orjson.dumps(result.created), 201, media_type=JSON)
    return Response(status_code=204)
