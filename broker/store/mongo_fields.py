"""The fields the MongoDB store keeps beside an entity's bytes, for its indexes to narrow queries.

An entity is stored as ``{_id, doc, seq, version}`` plus what this module derives from the
document, all rewritten by every write (one ``$set``, so they can never disagree with ``doc``):

* ``types``, ``attrNames``: the type and attribute IRIs (multikey indexes). IRIs have dots and
  colons, so they are always values, never field names.
* ``vals``: ``[{a: <attribute IRI>, v: <number or string>}]`` for each attribute whose only
  instance is a Property with a plain number or string value. For such an attribute the ``q``
  evaluator's candidate values are exactly ``[v]`` (``broker.ngsild.query.qeval``), so a
  comparison on ``v`` decides it; attributes without an entry are kept for the evaluator.
  Integers beyond 2^53 are left out, so no comparison ever depends on int/double rounding.
* ``geo``: ``[{a: <attribute IRI>, g: <cover>}]`` for every instance whose value is a GeoJSON
  geometry, with ``g`` its spherical cover (``mongo_geo``), under a ``2dsphere`` index;
  ``geoWide``: the attributes with a geometry too large for a cover, always candidates.
* ``cat``: the entity's discovery catalogue keys ``{t, a, k}`` (``broker.ngsild.catalogue``);
  ``catalogue()`` counts them with one aggregation, so the counts are derived from the entities
  themselves and cannot drift from them.
"""

from __future__ import annotations

import math
from typing import Any, Final

import orjson

from broker.ngsild.catalogue import catalogue_keys
from broker.ngsild.entity import EntityDoc
from broker.ngsild.expiry import when
from broker.ngsild.geojson import is_geometry
from broker.ngsild.names import PROPERTY
from broker.store.mongo_geo import geometry_cover

Document = dict[str, Any]

EXACT_INTEGER: Final = 2**53
"""Integers up to this magnitude are exact as doubles too, so MongoDB and Python agree on every
comparison between them and any number the index holds."""


def searchable(doc: EntityDoc) -> Document:
    """The stored fields derived from ``doc`` (everything but ``_id``, ``seq`` and ``version``)."""
    geo: list[Document] = []
    wide: list[str] = []
    for attr, instances in doc["attrs"].items():
        for instance in instances:
            value = instance.get("value")
            if not is_geometry(value):
                continue
            cover = geometry_cover(value)
            if cover is None:
                wide.append(attr)
            else:
                geo.append({"a": attr, "g": cover})
    return {
        "doc": orjson.dumps(doc),
        "types": list(doc["type"]),
        "attrNames": list(doc["attrs"]),
        "vals": [
            {"a": attr, "v": value}
            for attr, instances in doc["attrs"].items()
            if (value := indexed_value(instances)) is not None
        ],
        "geo": geo,
        "geoWide": sorted(set(wide)),
        "cat": [{"t": t, "a": a, "k": k} for t, a, k in sorted(catalogue_keys(doc))],
        # broker.ngsild.expiry.when (None for durable entities), for the expiry sweep.
        "expiry": when(doc),
    }


def indexed_value(instances: list[dict[str, Any]]) -> int | float | str | None:
    """The value ``vals`` holds for an attribute, or None when the evaluator must decide."""
    if len(instances) != 1 or instances[0].get("type") != PROPERTY:
        return None
    value = instances[0].get("value")
    return value if is_indexable(value) else None


def is_indexable(value: object) -> bool:
    """Whether ``value`` compares the same way in MongoDB and in the ``q`` evaluator."""
    if isinstance(value, bool):
        return False  # Python's bools are ints; BSON's are not numbers
    if isinstance(value, int):
        return abs(value) <= EXACT_INTEGER
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, str)
