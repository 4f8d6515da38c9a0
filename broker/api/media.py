"""Media types on the wire: which body a client sent, which one it accepts, which @context Link.

GS CIM 009 v1.8.1 §6.3.4 (Content-Type), §6.3.5 (JSON-LD @context in the Link header), §6.3.6
(Accept). Pure string handling; no framework types.
"""

from __future__ import annotations

import re
from typing import Final

from broker.ngsild.errors import NotAcceptable, UnsupportedMediaType

JSON: Final = "application/json"
JSON_LD: Final = "application/ld+json"
GEO_JSON: Final = "application/geo+json"
MERGE_PATCH: Final = "application/merge-patch+json"
CONTEXT_REL: Final = "http://www.w3.org/ns/json-ld#context"

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
    """The offered media type the ``Accept`` header prefers (JSON when it has no preference)."""
    if not accept:
        return offered[0]
    best: tuple[float, int, str] | None = None
    for position, item in enumerate(accept.split(",")):
        media, _, params = item.strip().partition(";")
        media = media.strip().lower()
        quality = _quality(params)
        if quality <= 0:
            continue
        for choice in _candidates(media, offered):
            rank = (quality, -position, choice)
            if best is None or rank[:2] > best[:2]:
                best = rank
    if best is None:
        raise NotAcceptable(f"none of {', '.join(offered)} is acceptable to Accept: {accept}")
    return best[2]


def context_link(header: str | None) -> str | None:
    """The @context URL of a ``Link`` header, if it has a JSON-LD context link."""
    if not header:
        return None
    for match in _LINK.finditer(header):
        params = match.group(2).replace(" ", "")
        if f'rel="{CONTEXT_REL}"' in params or f"rel={CONTEXT_REL}" in params:
            return match.group(1).strip()
    return None


def link_header(url: str) -> str:
    """A ``Link`` header value that points at an @context."""
    return f'<{url}>; rel="{CONTEXT_REL}"; type="{JSON_LD}"'


def _quality(params: str) -> float:
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def _candidates(media: str, offered: tuple[str, ...]) -> tuple[str, ...]:
    if media in offered:
        return (media,)
    if media in ("*/*", "application/*"):
        return (offered[0],)
    return ()
