"""Choosing one text from a LanguageProperty for the ``lang`` parameter (GS CIM 009 §4.15).

``lang`` is a list in the style of HTTP ``Accept-Language``: ``fr,en;q=0.8,*``.
"""

from __future__ import annotations

from typing import Any

from broker.ngsild.errors import BadRequestData


def parse_lang(lang: str) -> list[str]:
    """Language tags in order of preference (highest ``q`` first; ``*`` means any)."""
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(lang.split(",")):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                raise BadRequestData(f"invalid quality value in lang={lang!r}") from None
        if not tag:
            raise BadRequestData(f"empty language tag in lang={lang!r}")
        ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def pick_language(language_map: dict[str, Any], lang: str) -> tuple[str, Any] | None:
    """The (tag, text) best matching ``lang``; falls back to ``@none``, then to any entry."""
    if not language_map:
        return None
    lowered = {tag.lower(): tag for tag in language_map}
    for wanted in parse_lang(lang):
        if wanted == "*":
            tag = next(iter(language_map))
            return tag, language_map[tag]
        found = _lookup(lowered, wanted.lower())
        if found is not None:
            return found, language_map[found]
    if "@none" in language_map:
        return "@none", language_map["@none"]
    tag = next(iter(language_map))
    return tag, language_map[tag]


def _lookup(lowered: dict[str, str], wanted: str) -> str | None:
    # RFC 4647 §3.4 lookup: "nl-BE" tries "nl-be", then "nl"; a more specific stored tag
    # ("en-GB" for "en") is the last resort before moving to the next preference.
    parts = wanted.split("-")
    while parts:
        tag = lowered.get("-".join(parts))
        if tag is not None:
            return tag
        parts.pop()
        if parts and len(parts[-1]) == 1:
            parts.pop()  # never end on a singleton such as "x" in "de-x-..."
    for key, tag in lowered.items():
        if key.startswith(wanted + "-"):
            return tag
    return None
