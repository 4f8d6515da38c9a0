"""The entity query model and its reference evaluator.

Stores translate an ``EntityQuery`` into their own query language; ``matches`` is the
definition they must agree with (the contract tests compare both on random data).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import re2

from broker.ngsild.errors import BadRequestData

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False
_MAX_PATTERN = 1024


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """Which entities to return, and which page of them.

    Attributes:
        types: entity type IRIs; an entity matches if it has any of them.
        ids: entity ids; an entity matches if its id is one of them.
        id_pattern: a regular expression (RE2 syntax, searched) the id must match.
        attrs: attribute IRIs; an entity matches if it has at least one of them.
        limit: page size; 0 asks only for the count.
        offset: how many matching entities to skip, in the store's stable order.
        count: whether to compute the total number of matches.
    """

    types: tuple[str, ...] | None = None
    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    attrs: tuple[str, ...] | None = None
    limit: int = 20
    offset: int = 0
    count: bool = False


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """Compile a user-supplied pattern with RE2, whose matching time is linear in the input."""
    if len(pattern) > _MAX_PATTERN:
        raise BadRequestData(f"pattern longer than {_MAX_PATTERN} characters")
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        raise BadRequestData(f"invalid pattern {pattern!r}: {exc}") from None


def matches(query: EntityQuery, doc: dict[str, Any]) -> bool:
    """Whether ``doc`` satisfies the query's filters (paging aside)."""
    if query.types is not None and not set(query.types).intersection(doc["type"]):
        return False
    if query.ids is not None and doc["id"] not in query.ids:
        return False
    if query.id_pattern is not None and not compile_pattern(query.id_pattern).search(doc["id"]):
        return False
    return query.attrs is None or any(attr in doc["attrs"] for attr in query.attrs)
