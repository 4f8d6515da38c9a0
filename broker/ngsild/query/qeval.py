"""Evaluating a ``q`` syntax tree against an internal entity document (GS CIM 009 v1.8.1 §4.9).

Theory of operation. A Query Term looks at *targets*: each instance of the named attribute (one per
datasetId) gives at most one, and the term holds if it holds for ANY of them. Inside an instance
the path descends through sub-attributes, then takes a core member (``observedAt``, ``unitCode``…)
or the value member (``value``, ``object``, ``languageMap``, ``vocab``, ``json``, ``valueList``,
``objectList``), then walks the bracketed keys. A target exists when that whole walk succeeds; a
missing step means no target, and then no comparison matches, ``!=`` included (§4.9: "If the
evaluation ... does not result in a defined value, the target element shall be considered as
non-existent").

A target is a list of candidate values: the elements of an array (ListProperty, multi-valued
Property, ListRelationship), every text of a languageMap unless ``[lang]`` picks one (``[*]`` is
every language), JSON-LD value objects unwrapped to their ``@value``. Then, per target:

- ``==`` holds if some candidate equals the value, one of a value list, or lies in a range;
  ``!=`` is its negation, so ``color[*]!="red"`` means no language says red.
- ``>``, ``>=``, ``<``, ``<=`` hold if some candidate is so ordered.
- ``~=`` holds if some text candidate matches the pattern (RE2, searched); ``!~=`` if there are
  text candidates and none matches. Patterns never match non-text values.
- Values of different data types are unequal and unordered: ``"30"`` is not ``30``, booleans
  are not numbers. Strings that are both date-times (or dates), or both times, compare
  temporally; a date alone means midnight UTC, a date-time without offset is UTC.
- Relationship targets only take ``==`` and ``!=``; any other operator does not match (§4.9).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime, time
from functools import lru_cache
from typing import Any, Final, NamedTuple

from broker.ngsild.names import VALUE_MEMBER
from broker.ngsild.query.patterns import compile_pattern
from broker.ngsild.query.qlang import (
    ENTITY_MEMBERS,
    And,
    Comparison,
    Exists,
    Or,
    Path,
    QExpr,
    Range,
    Scalar,
    Value,
)

_VALUE_MEMBERS: Final = tuple(dict.fromkeys(VALUE_MEMBER.values()))
_RELATIONSHIP_MEMBERS: Final = frozenset({"object", "objectList"})
_DATETIME: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:\d{2})?"
)
_DATE: Final = re.compile(r"\d{4}-\d{2}-\d{2}")
_TIME: Final = re.compile(r"\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?")


class _Target(NamedTuple):
    values: list[Any]
    relationship: bool


Linked = Mapping[str, dict[str, Any]]
"""Entities by id, for linked-entity paths (``rel{attr}``); without them such paths reach
nothing."""


def evaluate_q(expr: QExpr, doc: dict[str, Any], linked: Linked | None = None) -> bool:
    """Whether the entity document ``doc`` satisfies ``expr``."""
    if isinstance(expr, And):
        return all(evaluate_q(item, doc, linked) for item in expr.items)
    if isinstance(expr, Or):
        return any(evaluate_q(item, doc, linked) for item in expr.items)
    if isinstance(expr, Exists):
        return any(True for _ in _targets(expr.path, doc, linked)) != expr.negated
    return any(_holds(expr, target) for target in _targets(expr.path, doc, linked))


def linked_ids(path: Path, doc: dict[str, Any]) -> list[str]:
    """The ids the first hop of a linked-entity path points at from ``doc``."""
    relationship = path.via[0][0]
    found: list[str] = []
    for instance in doc["attrs"].get(relationship, ()):
        target = _value_target(instance, ())
        if target is not None and target.relationship:
            found.extend(value for value in target.values if isinstance(value, str))
    return found


def _targets(path: Path, doc: dict[str, Any], linked: Linked | None = None) -> Iterator[_Target]:
    if path.via:
        hint, rest = path.via[0][1], replace(path, via=path.via[1:])
        for entity_id in linked_ids(path, doc) if linked is not None else ():
            entity = linked.get(entity_id) if linked is not None else None
            if entity is not None and (hint is None or hint in entity["type"]):
                yield from _targets(rest, entity, linked)
        return
    if path.attr in ENTITY_MEMBERS:
        if path.attr in doc:
            yield _Target([doc[path.attr]], relationship=False)
        return
    for instance in doc["attrs"].get(path.attr, ()):
        node = instance
        for sub in path.subs:
            node = node.get(sub)
            if not isinstance(node, dict):
                break
        else:
            if path.member is None:
                target = _value_target(node, path.keys)
                if target is not None:
                    yield target
            elif path.member in node:
                yield _Target([node[path.member]], relationship=False)


def _value_target(node: dict[str, Any], keys: tuple[str, ...]) -> _Target | None:
    kind = node.get("type")
    member = VALUE_MEMBER.get(kind) if isinstance(kind, str) else None
    if member is None or member not in node:
        member = next((name for name in _VALUE_MEMBERS if name in node), None)
        if member is None:
            return None
    value = node[member]
    if member in _RELATIONSHIP_MEMBERS:
        if keys:
            return None
        if member == "objectList" and isinstance(value, list):
            value = [item.get("object") if isinstance(item, dict) else item for item in value]
        return _Target(_candidates([value]), relationship=True)
    if member == "languageMap" and not keys:
        keys = ("*",)
    reached = _walk(value, keys)
    return _Target(_candidates(reached), relationship=False) if reached else None


def _walk(value: Any, keys: tuple[str, ...]) -> list[Any]:
    """The values at ``keys`` below ``value``.

    ``*`` fans out over all members or elements; on an array a number is an index and a name
    applies to each object in it, since compound values are often arrays of objects.
    """
    nodes = [value]
    for key in keys:
        reached: list[Any] = []
        for node in map(_unwrap, nodes):
            if isinstance(node, dict):
                reached.extend(node.values() if key == "*" else [node[key]] if key in node else [])
            elif isinstance(node, list):
                reached.extend(_walk_array(node, key))
        nodes = reached
    return nodes


def _walk_array(items: list[Any], key: str) -> list[Any]:
    if key == "*":
        return items
    if key.isdigit():
        return items[int(key) : int(key) + 1]
    objects = (item for item in map(_unwrap, items) if isinstance(item, dict))
    return [item[key] for item in objects if key in item]


def _candidates(nodes: list[Any]) -> list[Any]:
    values: list[Any] = []
    for node in map(_unwrap, nodes):
        if isinstance(node, list):
            values.extend(map(_unwrap, node))
        else:
            values.append(node)
    return values


def _unwrap(value: Any) -> Any:
    if isinstance(value, dict) and "@value" in value:
        return value["@value"]
    return value


def _holds(term: Comparison, target: _Target) -> bool:
    op, values = term.op, target.values
    if target.relationship and op not in ("==", "!="):
        return False
    if op == "==":
        return _equals_any(values, term.value)
    if op == "!=":
        return not _equals_any(values, term.value)
    if op in ("~=", "!~="):
        pattern = compile_pattern(str(term.value))
        texts = [value for value in values if isinstance(value, str)]
        found = any(pattern.search(text) for text in texts)
        return found if op == "~=" else bool(texts) and not found
    if isinstance(term.value, tuple | Range):  # only == and != take lists and ranges
        return False
    orders = [_compare(value, term.value) for value in values]
    if op == ">":
        return any(order is not None and order > 0 for order in orders)
    if op == ">=":
        return any(order is not None and order >= 0 for order in orders)
    if op == "<":
        return any(order is not None and order < 0 for order in orders)
    return any(order is not None and order <= 0 for order in orders)


def _equals_any(values: list[Any], query: Value) -> bool:
    if isinstance(query, Range):
        return any(_within(value, query) for value in values)
    options = query if isinstance(query, tuple) else (query,)
    return any(_compare(value, option) == 0 for value in values for option in options)


def _within(value: Any, bounds: Range) -> bool:
    low, high = _compare(value, bounds.low), _compare(value, bounds.high)
    return low is not None and high is not None and low >= 0 and high <= 0


def _compare(value: Any, query: Scalar) -> int | None:
    """-1, 0 or 1 as ``value`` is below, equal to or above ``query``; None if incomparable."""
    if isinstance(value, bool) or isinstance(query, bool):
        both = isinstance(value, bool) and isinstance(query, bool)
        return _sign(value, query) if both else None
    if isinstance(query, int | float):
        return _sign(value, query) if isinstance(value, int | float) else None
    if not isinstance(value, str):
        return None
    left, right = _temporal(value), _temporal(query)
    if left is None and right is None:
        return _sign(value, query)
    if left is None or right is None or left[0] != right[0]:
        return None
    return _sign(left[1], right[1])


def _sign(left: Any, right: Any) -> int:
    return int(left > right) - int(left < right)


@lru_cache(maxsize=4096)
def _temporal(text: str) -> tuple[str, datetime | time] | None:
    """``("instant", datetime)`` or ``("time", time)`` if ``text`` is one, else None."""
    try:
        if _DATETIME.fullmatch(text) or _DATE.fullmatch(text):
            moment = datetime.fromisoformat(text)
            return "instant", moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        if _TIME.fullmatch(text):
            return "time", time.fromisoformat(text.removesuffix("Z"))
    except ValueError:
        return None
    return None


def values_at(path: Path, doc: dict[str, Any]) -> list[Any]:
    """Every value ``path`` reaches in ``doc``, as comparisons see them (used by ``orderBy``)."""
    return [value for target in _targets(path, doc) for value in target.values]
