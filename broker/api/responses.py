"""Writing entity responses: serialised once with orjson, @context by media type.

GS CIM 009 v1.8.1 §6.3.5/§6.3.6: ``application/json`` bodies carry no @context and get a ``Link``
header to it; ``application/ld+json`` bodies carry it as ``@context``. GeoJSON (§4.5.16,
v1.9 §6.3.6) carries it at the top of the body too, of the Feature or of the FeatureCollection
(not in each of its Features), unless the request's ``Prefer`` asks for ``body=json``; the
``Link`` header names it either way.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any
from urllib.parse import quote

import orjson
from fastapi import Request, Response

from broker.api.media import GEO_JSON, JSON, JSON_LD
from broker.doc_cache import SHARED as DOCS
from broker.ngsild.entity import EntityDoc
from broker.ngsild.render import View, render_entity
from broker.ngsild.terms import TermTable, body_context, context_link_header
from broker.store.base import QueryPage


def json_response(
    payload: Any,
    media: str,
    terms: TermTable,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
    geo_context: bool = True,
) -> Response:
    """An entity, entity list or Feature(Collection) response in ``media``; ``geo_context``
    false leaves the @context out of a GeoJSON body (``Prefer: body=json``)."""
    extra = dict(headers or {})
    if media == GEO_JSON and geo_context:
        payload = _with_geo_context(payload, body_context(terms))
    if media == JSON_LD:
        context = body_context(terms)
        if isinstance(payload, list):
            payload = [{"@context": context, **item} for item in payload]
        else:
            payload = {"@context": context, **payload}
    else:
        context_link = context_link_header(terms.link_url)
        extra["Link"] = f"{context_link}, {extra['Link']}" if "Link" in extra else context_link
    return Response(orjson.dumps(payload), status, headers=extra, media_type=media)


def entity_json(doc: EntityDoc, terms: TermTable, view: View) -> bytes:
    """``render_entity(doc, terms, view)`` as JSON bytes, kept with a cached stored document
    (``broker.doc_cache``) so that the next read of the same version does not render it again."""
    return entities_json([doc], terms, view)[0]


def entities_json(docs: list[EntityDoc], terms: TermTable, view: View) -> list[bytes]:
    """``entity_json`` of each of ``docs`` (the cache key is made once for the page)."""
    if view.linked:  # nested views: rare, and a dict inside the view is no key
        return [orjson.dumps(render_entity(doc, terms, view)) for doc in docs]
    key = (
        terms,
        view.format,
        view.sys_attrs,
        view.attrs,
        view.omitted,
        view.members,
        view.lang,
        view.dataset_ids,
    )
    fragment = DOCS.fragment
    return [fragment(doc, key, partial(_rendered, doc, terms, view)) for doc in docs]


def _rendered(doc: EntityDoc, terms: TermTable, view: View) -> bytes:
    return orjson.dumps(render_entity(doc, terms, view))


def entities_response(
    entities: list[bytes] | bytes,
    media: str,
    terms: TermTable,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """``json_response`` for entities already rendered to JSON (``entity_json``): a list of
    them, or one; the same bytes ``json_response`` writes for their rendered dicts."""
    extra = dict(headers or {})
    if media == JSON_LD:
        opening = b'{"@context":' + orjson.dumps(body_context(terms))
        if isinstance(entities, bytes):
            entities = _with_context(opening, entities)
        else:
            entities = [_with_context(opening, item) for item in entities]
    else:
        context_link = context_link_header(terms.link_url)
        extra["Link"] = f"{context_link}, {extra['Link']}" if "Link" in extra else context_link
    body = entities if isinstance(entities, bytes) else b"[" + b",".join(entities) + b"]"
    return Response(body, status, headers=extra, media_type=media)


def _with_context(opening: bytes, entity: bytes) -> bytes:
    # {"@context": ..., **entity}: the context first, then the entity's members.
    return opening + (b"}" if entity == b"{}" else b"," + entity[1:])


def _with_geo_context(payload: dict[str, Any], context: Any) -> dict[str, Any]:
    # §4.5.16.3: a FeatureCollection carries the @context once, at its top; its Features
    # are §4.5.16.2 Feature objects without one.
    return {**payload, "@context": context}


def count_headers(page: QueryPage) -> dict[str, str]:
    """``NGSILD-Results-Count`` when the count was asked for."""
    return {} if page.total is None else {"NGSILD-Results-Count": str(page.total)}


_SAFE = ":/.*,;()|!~[]@$'"


def page_links(
    request: Request,
    offset: int,
    limit: int,
    *,
    returned: int,
    total: int | None,
    media: str,
    cursor: Callable[[int], str] | None = None,
) -> dict[str, str]:
    """A ``Link`` header with ``rel="prev"``/``rel="next"`` (§4.12, v1.9 §6.3.23), if any.

    Without a total, a full page is taken to mean there may be more. ``cursor`` makes the
    ``cursor`` parameter of the next link from its offset (``broker.api.cursors``); no other
    link carries one.
    """
    if limit == 0:
        return {}
    more = returned == limit if total is None else total > offset + limit
    links = []
    if offset > 0:
        links.append(_link(request, max(0, offset - limit), limit, "prev", media))
    if more:
        after = None if cursor is None else cursor(offset + limit)
        links.append(_link(request, offset + limit, limit, "next", media, after))
    return {"Link": ", ".join(links)} if links else {}


def _link(
    request: Request, offset: int, limit: int, rel: str, media: str, cursor: str | None = None
) -> str:
    params = {name: value for name, value in request.query_params.items() if name != "cursor"}
    params |= {"offset": str(offset), "limit": str(limit)}
    if cursor is not None:
        params["cursor"] = cursor
    query = "&".join(f"{key}={quote(value, safe=_SAFE)}" for key, value in sorted(params.items()))
    # The path as Starlette's ``request.url.path`` spells it, without building the whole URL.
    path = request.scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    return f'<{path}?{query}>; rel="{rel}";type="{media}"'


def feature_collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    """GeoJSON FeatureCollection of rendered features."""
    return {"type": "FeatureCollection", "features": features}


__all__ = [
    "GEO_JSON",
    "JSON",
    "JSON_LD",
    "count_headers",
    "entities_json",
    "entities_response",
    "entity_json",
    "feature_collection",
    "json_response",
    "page_links",
]
