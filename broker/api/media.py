"""Media types on the wire: which body a client sent, which one it accepts, which @context Link.

GS CIM 009 v1.8.1 §6.3.4 (Content-Type), §6.3.5 (JSON-LD @context in the Link header), §6.3.6
(Accept). Pure string handling; no framework types.
"""

from __future__ import annotations

import re
from typing import Final

from broker.ngsild.errors import NotAcceptable, UnsupportedMediaType
from broker.ngsild.terms import CONTEXT_REL

JSON: Final = "application/json"
JSON_LD: Final = "application/ld+json"
GEO_JSON: Final = "application/geo+json"
MERGE_PATCH: Final = "application/merge-patch+json"

_LINK = re.compile(r"<([^>]*)>\s*((?:;\s*[^;,]+)*)")


def content_type(header: str | None, *, merge_patch: bool = False) -> str:
    """The request's media type: JSON or JSON-LD (or merge-patch JSON where allowed); else 415."""
    media = (header or "").split(";", 1)[0].strip().lower()
    if media in (JSON, JSON_LD):
        return media
    if merge_patch and media == MERGE_PATCH:
        return JSON
    allowed = f"{JSON} or {JSON_LD}" + (f" or {MERGE_PATCH}" if merge_patch else "")
    raise UnsupportedMediaType(
        f"Content-Type {header or '(none)'!r} is not supported; send {allowed}"
    )


def negotiate(accept: str | None, offered: tuple[str, ...] = (JSON, JSON_LD)) -> str:
    """The offered media type the ``Accept`` header prefers.

    Highest weight wins; at equal weight the order of ``offered`` (the broker's preference, JSON
    first) decides, not the order the client listed them in (§6.3.4). A type weighted ``q=0`` is
    refused even where a wildcard would match it; a weight that does not parse counts as 1.
    """
    if not accept:
        return offered[0]
    items = []
    for item in accept.split(","):
        media, _, params = item.strip().partition(";")
        items.append((media.strip().lower(), _quality(params)))
    refused = {m for media, q in items if q <= 0 for m in _candidates(media, offered, set())}
    weights: dict[str, float] = {}
    for media, quality in items:
        if quality <= 0:
            continue
        for choice in _candidates(media, offered, refused):
            weights[choice] = max(weights.get(choice, 0.0), quality)
    ranked = [(-weights[m], offered.index(m), m) for m in weights if m not in refused]
    if not ranked:
        raise NotAcceptable(f"none of {', '.join(offered)} is acceptable to Accept: {accept}")
    return min(ranked)[2]


def prefers_plain_body(prefer: str | None) -> bool:
    """Whether a ``Prefer`` header asks for ``body=json`` (v1.9 §6.3.6): a GeoJSON body then
    carries no ``@context``, only the ``Link`` header names it."""
    if not prefer:
        return False
    # RFC 7240: comma-separated `token [= value] *(; parameter)`, the token case-insensitive.
    for preference in prefer.split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() == "body" and value.strip().strip('"').lower() == "json":
            return True
    return False


def context_link(header: str | None) -> str | None:
    """The @context URL of a ``Link`` header, if it has a JSON-LD context link."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        params = match.group(2).replace(" ", "")
        if f'rel="{CONTEXT_REL}"' in params or f"rel={CONTEXT_REL}" in params:
            return match.group(1).strip()
    return None


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip() == "q":
            try:
                return min(max(float(value), 0.0), 1.0)
            except ValueError:
                return 1.0  # an unparseable weight must not decide the outcome
    return 1.0


def _candidates(
    media: str, offered: tuple[str, ...], refused: frozenset[str] | set[str]
) -> tuple[str, ...]:
    if media in offered:
        return (media,)
    if media in ("*/*", "application/*"):
        # A wildcard stands for the broker's first choice that the client has not refused.
        remaining = [choice for choice in offered if choice not in refused]
        return tuple(remaining[:1])
    return ()
