"""Writing entity responses: serialised once with orjson, @context by media type.

GS CIM 009 v1.8.1 §6.3.5/§6.3.6: ``application/json`` bodies carry no @context and get a ``Link``
header to it; ``application/ld+json`` bodies carry it as ``@context``; GeoJSON (§6.3.15) puts it
in each Feature when JSON-LD is wanted, else in the Link header.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response

from broker.api.media import GEO_JSON, JSON, JSON_LD
from broker.ngsild.terms import TermTable, body_context, context_link_header
from broker.store.base import QueryPage


def json_response(
    payload: Any,
    media: str,
    terms: TermTable,
    *,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    """An entity, entity list or Feature(Collection) response in ``media``."""
    extra = dict(headers or {})
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


def count_headers(page: QueryPage) -> dict[str, str]:
    """``NGSILD-Results-Count`` when the count was asked for."""
    return {} if page.total is None else {"NGSILD-Results-Count": str(page.total)}


def feature_collection(features: list[dict[str, Any]]) -> dict[str, Any]:
    """GeoJSON FeatureCollection of rendered features."""
    return {"type": "FeatureCollection", "features": features}


__all__ = ["GEO_JSON", "JSON", "JSON_LD", "count_headers", "feature_collection", "json_response"]
