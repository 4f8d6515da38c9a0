"""Keyset cursors behind ``rel="next"`` of ``GET /entities`` (issue 16).

Paging by ``offset`` makes a store step through every skipped match again on each page, so a
walk through a large result costs quadratic time. The next link of a page in the store's own
order therefore also carries ``cursor``: an opaque text holding the store's position of the
page's last entity, the offset that position stands for, and a fingerprint of the request. A
request presenting it is answered from that position on (``EntityQuery.resume``); the answer is
the one ``offset`` alone would give on unchanged data. The link keeps ``offset`` and ``limit``,
so a client that reads them, or drops ``cursor``, pages as before.

The fingerprint covers every query parameter but ``cursor``, ``offset`` and ``limit`` (a position
does not depend on the page size) and the headers that change what the parameters mean (tenant,
@context ``Link``): a cursor presented with anything else, or with another offset than the one it
stands for, is refused with BadRequestData rather than guessed at. It is not a secret: the
position is the last entity's place in the store (for MongoDB, with its id, which the client was
shown on that page).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import replace

import orjson
from fastapi import Request

from broker.ngsild.errors import BadRequestData
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.model import Position, Resume

CURSOR = "cursor"
_NOT_FINGERPRINTED = frozenset({CURSOR, "offset", "limit"})


def resumed(request: Request, query: EntityQuery, cursor: str | None) -> EntityQuery:
    """``query`` resuming where the cursor says, or unchanged without one; a cursor that was
    not made for this query and offset is a BadRequestData."""
    if cursor is None:
        return query
    offset, position, fingerprint = _decode(cursor)
    if fingerprint != _fingerprint(request):
        raise BadRequestData(
            "cursor belongs to a different query: send it only with the parameters of the "
            "link that carried it (or page with offset alone)"
        )
    if offset != query.offset:
        raise BadRequestData(f"cursor stands for offset {offset}, not {query.offset}")
    return replace(query, resume=Resume(offset, position))


def next_cursor(request: Request, offset: int, last: Position) -> str:
    """The cursor of the page starting at ``offset``, right after ``last``."""
    text = orjson.dumps([offset, last[0], last[1], _fingerprint(request)])
    return base64.urlsafe_b64encode(text).rstrip(b"=").decode("ascii")


def _decode(cursor: str) -> tuple[int, Position, str]:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        offset, number, entity_id, fingerprint = orjson.loads(text)
    except (ValueError, TypeError, binascii.Error):  # orjson.JSONDecodeError is a ValueError
        raise BadRequestData("cursor is not one this broker gave out") from None
    fields = (offset, number, entity_id, fingerprint)
    if not (_natural(offset) and _natural(number) and all(isinstance(f, str) for f in fields[2:])):
        raise BadRequestData("cursor is not one this broker gave out")
    return offset, (number, entity_id), fingerprint


def _natural(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _fingerprint(request: Request) -> str:
    params = sorted(
        (name, value)
        for name, value in request.query_params.multi_items()
        if name not in _NOT_FINGERPRINTED
    )
    headers = [request.headers.get("ngsild-tenant", ""), request.headers.get("link", "")]
    return hashlib.blake2b(orjson.dumps([params, headers]), digest_size=9).hexdigest()
