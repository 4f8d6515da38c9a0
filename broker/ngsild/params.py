"""Query parameters that shape a response → a ``render.View`` (GS CIM 009 v1.8.1 §6.3.7-§6.3.12).

``options`` (sysAttrs, keyValues, concise), ``format`` (normalized, concise, simplified, which
wins over ``options``), ``attrs``, ``pick``/``omit`` (entity members and attributes) and ``lang``.
Names are compact in the request and expanded here with the request's term table.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from broker.ngsild.errors import BadRequestData, InvalidRequest
from broker.ngsild.names import check_name
from broker.ngsild.render import CONCISE, FORMATS, NORMALIZED, SHOWN_MEMBERS, SIMPLIFIED, View
from broker.ngsild.terms import TermTable

KNOWN_OPTIONS = frozenset(
    {
        "sysAttrs",
        "keyValues",
        "concise",
        "normalized",
        "simplified",
        "noOverwrite",
        "count",
        "replace",
        "update",
    }
)
_FORMAT_OPTIONS = {
    "keyValues": SIMPLIFIED,
    "simplified": SIMPLIFIED,
    "concise": CONCISE,
    "normalized": NORMALIZED,
}


def split_list(value: str | None) -> list[str] | None:
    """A comma-separated parameter as a list (``None`` when absent, error when empty)."""
    if value is None:
        return None
    items = [item.strip() for item in value.split(",")]
    if not all(items):
        raise BadRequestData(f"empty item in list parameter {value!r}")
    return items


def parse_options(value: str | None) -> frozenset[str]:
    """The ``options`` parameter as a set, rejecting unknown options."""
    options = frozenset(split_list(value) or ())
    unknown = options - KNOWN_OPTIONS
    if unknown:
        raise InvalidRequest(f"unknown option(s): {', '.join(sorted(unknown))}")
    return options


def representation(options: frozenset[str], format_: str | None) -> str:
    """The representation asked for: ``format`` if given, else from ``options``."""
    if format_ is not None:
        if format_ == "keyValues":
            return SIMPLIFIED
        if format_ not in FORMATS:
            raise InvalidRequest(f"unknown format {format_!r}; use one of {', '.join(FORMATS)}")
        return format_
    chosen = {_FORMAT_OPTIONS[o] for o in options if o in _FORMAT_OPTIONS}
    if len(chosen) > 1:
        raise InvalidRequest("options ask for more than one representation")
    return chosen.pop() if chosen else NORMALIZED


def expand_names(names: Iterable[str], terms: TermTable) -> frozenset[str]:
    """Attribute names as IRIs."""
    return frozenset(terms.expand(check_name(name, "attribute name")) for name in names)


Projection = list[tuple[str, "Projection | None"]]
"""A parsed ``pick``/``omit`` value: names, each with the projection of its linked entities."""


def parse_projection(text: str) -> Projection:
    """``id,locatedAt{id,name}`` → names with nested projections (§4.21; ``|`` = ``,``)."""
    projection, position = _projection(text, 0, 0)
    if position != len(text):
        raise BadRequestData(f"unexpected {text[position]!r} at position {position} in {text!r}")
    return projection


_MAX_DEPTH = 8


def _projection(text: str, position: int, depth: int) -> tuple[Projection, int]:
    if depth > _MAX_DEPTH:
        raise BadRequestData(f"projection {text!r} is nested too deeply")
    items: Projection = []
    while True:
        start = position
        while position < len(text) and text[position] not in ",|{}":
            position += 1
        name = text[start:position].strip()
        if not name:
            raise BadRequestData(f"empty name at position {start} in {text!r}")
        nested = None
        if position < len(text) and text[position] == "{":
            nested, position = _projection(text, position + 1, depth + 1)
            if position >= len(text) or text[position] != "}":
                raise BadRequestData(f"missing '}}' in {text!r}")
            position += 1
        items.append((name, nested))
        if position < len(text) and text[position] in ",|":
            position += 1
            continue
        return items, position


def build_view(
    terms: TermTable,
    *,
    options: frozenset[str] = frozenset(),
    format_: str | None = None,
    attrs: str | None = None,
    pick: str | None = None,
    omit: str | None = None,
    lang: str | None = None,
    dataset_id: str | None = None,
) -> View:
    """The ``View`` the parameters describe."""
    if pick is not None and omit is not None:
        raise BadRequestData("pick and omit cannot be used together")
    if attrs is not None and (pick is not None or omit is not None):
        raise BadRequestData("attrs cannot be combined with pick or omit; use pick alone")
    if lang is not None and not lang.strip():
        raise BadRequestData("lang must not be empty")
    dataset_ids = split_list(dataset_id)
    base = View(
        format=representation(options, format_),
        sys_attrs="sysAttrs" in options,
        lang=lang,
        dataset_ids=None if dataset_ids is None else frozenset(dataset_ids),
    )
    attr_list = split_list(attrs)
    if attr_list is not None:
        return replace(base, attrs=expand_names(attr_list, terms))
    if pick is not None:
        return _projected(base, parse_projection(pick), terms, picking=True)
    if omit is not None:
        return _projected(base, parse_projection(omit), terms, picking=False)
    return base


def _projected(base: View, projection: Projection, terms: TermTable, *, picking: bool) -> View:
    plain = [name for name, nested in projection if nested is None or picking]
    linked = {
        terms.expand(check_name(name, "attribute name")): _projected(
            replace(base, linked={}), nested, terms, picking=picking
        )
        for name, nested in projection
        if nested is not None
    }
    names = frozenset(n for n in plain if n not in SHOWN_MEMBERS)
    if picking:
        return replace(
            base,
            members=SHOWN_MEMBERS.intersection(plain),
            attrs=expand_names(names, terms),
            linked=linked,
        )
    return replace(
        base,
        members=SHOWN_MEMBERS.difference(plain),
        omitted=expand_names(names, terms),
        linked=linked,
    )
