"""``EntityQuery`` → SQL for the SQLite store.

Types go through the ``entity_types`` index; ids through the unique index on ``entities.id``;
``idPattern`` through the ``regexp`` function (RE2, registered by the store); ``attrs`` through
``json_each`` over the document. Results are ordered by insertion (``pk``), which keeps paging
stable while entities are updated.
"""

from __future__ import annotations

from typing import Any

from broker.ngsild.query import EntityQuery


def _where(query: EntityQuery) -> tuple[str, list[Any]]:
    clauses: list[str] = []
    params: list[Any] = []
    if query.types is not None:
        clauses.append(
            f"e.pk IN (SELECT pk FROM entity_types WHERE type IN ({_marks(query.types)}))"
        )
        params.extend(query.types)
    if query.ids is not None:
        clauses.append(f"e.id IN ({_marks(query.ids)})")
        params.extend(query.ids)
    if query.id_pattern is not None:
        clauses.append("regexp(?, e.id)")
        params.append(query.id_pattern)
    if query.attrs is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM json_each(CAST(e.doc AS TEXT), '$.attrs') "
            f"WHERE key IN ({_marks(query.attrs)}))"
        )
        params.extend(query.attrs)
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", params


def select_sql(query: EntityQuery) -> tuple[str, list[Any]]:
    """The page of matching documents."""
    where, params = _where(query)
    return (
        f"SELECT e.doc FROM entities e{where} ORDER BY e.pk LIMIT ? OFFSET ?",
        [*params, query.limit, query.offset],
    )


def count_sql(query: EntityQuery) -> tuple[str, list[Any]]:
    """The number of matching documents."""
    where, params = _where(query)
    return f"SELECT count(*) FROM entities e{where}", params


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" * len(values))
