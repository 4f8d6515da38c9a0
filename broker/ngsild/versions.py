"""Answering consumers that only understand an earlier NGSI-LD version (v1.9 §4.3.6.8).

A client says ``Prefer: ngsi-ld=1.5`` (RFC 7240); attribute types the preferred version did not
have yet are reformatted as the nearest older type, and the API answers 203 to flag that the
payload was altered. Only normalized and concise attributes carry a ``type`` to rewrite.
"""

from __future__ import annotations

import re
from typing import Any, Final

from broker.ngsild.names import (
    JSON_PROPERTY,
    LIST_PROPERTY,
    LIST_RELATIONSHIP,
    PROPERTY,
    RELATIONSHIP,
    VALUE_MEMBER,
    VOCAB_PROPERTY,
)

CURRENT: Final = (1, 9)
_VERSION = re.compile(r"(\d+)\.(\d+)")

_INTRODUCED: Final = {
    VOCAB_PROPERTY: ((1, 8), PROPERTY),
    JSON_PROPERTY: ((1, 8), PROPERTY),
    LIST_PROPERTY: ((1, 8), PROPERTY),
    LIST_RELATIONSHIP: ((1, 8), RELATIONSHIP),
}
"""Attribute type → (version that introduced it, type it falls back to before that)."""


def preferred_version(prefer: str | None) -> tuple[int, int] | None:
    """The version asked for in a ``Prefer`` header, if any (later than ours means ours)."""
    if not prefer:
        return None
    # RFC 7240: a comma-separated list of `token [= value] *(; parameter)`, where the token is
    # case-insensitive and the value a token or a quoted string.
    for preference in prefer.split(","):
        name, _, value = preference.split(";", 1)[0].partition("=")
        if name.strip().lower() != "ngsi-ld":
            continue
        match = _VERSION.fullmatch(value.strip().strip('"'))
        if match is not None:
            return min((int(match.group(1)), int(match.group(2))), CURRENT)
    return None


def preference_applied(version: tuple[int, int]) -> str:
    """The ``Preference-Applied`` header value that acknowledges ``version``."""
    return f"ngsi-ld={version[0]}.{version[1]}"


def downgrade(entity: dict[str, Any], version: tuple[int, int]) -> tuple[dict[str, Any], bool]:
    """``entity`` (as rendered) reformatted for ``version``; and whether anything changed."""
    changed = False
    out: dict[str, Any] = {}
    for key, value in entity.items():
        items = value if isinstance(value, list) else [value]
        converted = [_attribute(item, version) for item in items]
        if any(new is not old for new, old in zip(converted, items, strict=True)):
            changed = True
            value = converted if isinstance(value, list) else converted[0]
        out[key] = value
    return out, changed


def _attribute(item: Any, version: tuple[int, int]) -> Any:
    if not isinstance(item, dict) or item.get("type") not in _INTRODUCED:
        return item
    introduced, fallback = _INTRODUCED[item["type"]]
    if version >= introduced:
        return item
    member = VALUE_MEMBER[item["type"]]
    old = {k: v for k, v in item.items() if k not in ("type", member)}
    if item["type"] == LIST_RELATIONSHIP:
        old["object"] = [
            entry["object"] if isinstance(entry, dict) else entry for entry in item[member]
        ]
    else:
        old["value"] = item[member]
    return {"type": fallback, **old}
