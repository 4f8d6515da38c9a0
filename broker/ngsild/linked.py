"""Linked entity retrieval (GS CIM 009 v1.8.1 §4.5.23): ``join=inline|flat`` and ``joinLevel``.

The service fetches, level by level, the entities that the visible Relationships point at; these
pure functions decide which ids to fetch and how to show them:

* ``inline`` puts each target under ``entity`` inside its Relationship (in the simplified
  representation the target replaces the object id);
* ``flat`` returns the entity followed by every linked entity, each once.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from broker.ngsild.entity import EntityDoc
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import LIST_RELATIONSHIP, RELATIONSHIP
from broker.ngsild.render import SIMPLIFIED, View, render_entity, visible_attributes
from broker.ngsild.terms import TermTable

JOINS: Final = ("inline", "flat", "@none")


def hops(doc: EntityDoc, view: View) -> list[tuple[str, View]]:
    """(target id, view for it) for each visible (List)Relationship target of ``doc``."""
    found: dict[str, View] = {}
    for iri in visible_attributes(doc, view):
        for instance in doc["attrs"][iri]:
            if instance["type"] == RELATIONSHIP:
                objects = instance["object"]
                ids = objects if isinstance(objects, list) else [objects]
            elif instance["type"] == LIST_RELATIONSHIP:
                ids = [item["object"] for item in instance["objectList"]]
            else:
                continue
            for target in ids:
                found.setdefault(target, view.for_linked(iri))
    return list(found.items())


def render_inline(
    doc: EntityDoc,
    terms: TermTable,
    view: View,
    linked: Mapping[str, EntityDoc],
    levels: int,
) -> dict[str, Any]:
    """``doc`` with up to ``levels`` levels of linked entities nested in its Relationships."""
    out = render_entity(doc, terms, view)
    if levels <= 0:
        return out
    for iri in visible_attributes(doc, view):
        instances = doc["attrs"][iri]
        if len(instances) != 1 or instances[0]["type"] != RELATIONSHIP:
            continue
        target = instances[0]["object"]
        if not isinstance(target, str) or target not in linked:
            continue
        nested = render_inline(linked[target], terms, view.for_linked(iri), linked, levels - 1)
        key = terms.compact(iri)
        if view.format == SIMPLIFIED:
            out[key] = nested
        elif isinstance(out.get(key), dict):
            out[key] = {**out[key], "entity": nested}
    return out


def flatten(
    doc: EntityDoc,
    view: View,
    linked: Mapping[str, EntityDoc],
    levels: int,
) -> list[tuple[EntityDoc, View]]:
    """``doc`` then each entity reachable within ``levels`` hops, once each, with its view."""
    order: list[tuple[EntityDoc, View]] = [(doc, view)]
    seen = {doc["id"]}
    frontier = order
    for _ in range(levels):
        reached: list[tuple[EntityDoc, View]] = []
        for current, current_view in frontier:
            for target, target_view in hops(current, current_view):
                if target in linked and target not in seen:
                    seen.add(target)
                    reached.append((linked[target], target_view))
        order = order + reached
        frontier = reached
    return order


def check_join(view: View, join: str | None, levels: int) -> str | None:
    """Validate ``join``/``joinLevel`` against the view; returns the join mode, or ``None``."""
    if join is not None and join not in JOINS:
        raise BadRequestData(f"join must be one of {', '.join(JOINS)}, not {join!r}")
    mode = None if join in (None, "@none") else join
    if levels < 1:
        raise BadRequestData("joinLevel must be a positive integer")
    if view.linked and mode is None:
        raise BadRequestData(
            "pick/omit with {...} selects linked entities; add join=inline or join=flat"
        )
    if mode is not None and _depth(view) > levels:
        raise BadRequestData(
            f"pick/omit nests linked entities {_depth(view)} levels deep, beyond joinLevel={levels}"
        )
    return mode


def render_joined(
    roots: list[EntityDoc],
    terms: TermTable,
    view: View,
    linked: Mapping[str, EntityDoc],
    levels: int,
    mode: str,
) -> list[dict[str, Any]]:
    """A query page with its linked entities: each root inline, or all entities flat (once)."""
    if mode == "inline":
        return [render_inline(doc, terms, view, linked, levels) for doc in roots]
    shown: dict[str, dict[str, Any]] = {}
    for root in roots:
        for doc, doc_view in flatten(root, view, linked, levels):
            if doc["id"] not in shown:
                shown[doc["id"]] = render_entity(doc, terms, doc_view)
    return list(shown.values())


def _depth(view: View) -> int:
    return max((1 + _depth(nested) for nested in view.linked.values()), default=0)
