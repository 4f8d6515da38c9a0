"""``EntityQuery`` → SQL for the SQLite store.

The SQL selects candidates in insertion order (``pk``), driven by the most selective index the
query allows: the unique id index for ``id``, the R*Tree for a geo-query with a search box, the
``entity_types`` index for a single type (a join that streams in ``pk`` order, so a page costs what
the page needs, not what the tenant holds), else a scan of ``entities``. The other selector
filters, ``attrs`` and the attributes ``q`` requires are correlated ``EXISTS`` probes of the
indexes; numeric comparisons at the top of ``q`` (``temperature>30``) are pre-filtered on the
numbers ``entity_attrs`` keeps, without reading the documents of the candidates they reject. What
SQL cannot decide exactly (``q``, ``scopeQ``, exact geometry, type expressions with ``;``) is
finished by ``broker.ngsild.query.page``; when nothing is left to finish, paging and counting run
in SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from broker.ngsild.query import EntityQuery
from broker.ngsild.query.geo import search_box
from broker.ngsild.query.qlang import And, Comparison, Path, QExpr

# A query that reads no more rows than this runs on the event loop (about 60 µs for a page of
# 20 on this machine), where a hop to the reader thread costs more than the query itself.
BOUNDED_ROWS = 200

_SQL_OPERATORS = {"==": "=", ">": ">", ">=": ">=", "<": "<", "<=": "<="}


@dataclass(frozen=True, slots=True)
class Candidates:
    """A candidate query, and whether its rows are exactly the answer.

    With ``vouched``, each row also says whether SQL alone has shown that it matches (a ``q`` of
    numeric comparisons on attributes whose numbers the index holds): such rows need neither
    the evaluator nor, unless they land on the page, decoding.
    """

    sql: str  # rows of (pk, doc) or, with ``vouched``, (pk, doc, sure)
    params: list[Any]
    exact: bool
    vouched: bool = False
    keys: str | None = None  # the same rows' pk alone, without reading ``entities``

    def bounded(self, query: EntityQuery) -> bool:
        """Whether answering ``query`` reads at most ``BOUNDED_ROWS`` rows: an exact plan walks
        its index in order and stops after the page, unless it must count every match (a keyset
        plan starts at its position, so it skips nothing)."""
        skipped = 0 if query.keyset is not None else query.offset
        return self.exact and not query.count and skipped + query.limit <= BOUNDED_ROWS

    def page(self, limit: int, offset: int) -> tuple[str, list[Any]]:
        """The SQL of one page (only meaningful when ``exact``).

        Past an offset, the skipped rows are counted on the index alone and only the page's
        rows are read from ``entities`` (a deferred join): ``OFFSET 4900`` on the (c) query
        of ``benchmarks/query.py`` took 39 ms with the join for every skipped row, 15 without.
        """
        if offset == 0 or self.keys is None:
            return f"{self.sql} LIMIT ? OFFSET ?", [*self.params, limit, offset]
        sql = (
            f"SELECT p.pk, e.doc FROM ({self.keys} LIMIT ? OFFSET ?) p "
            "CROSS JOIN entities e ON e.pk = p.pk ORDER BY p.pk"
        )
        return sql, [*self.params, limit, offset]

    def count(self) -> tuple[str, list[Any]]:
        """The SQL counting all rows (only meaningful when ``exact``)."""
        return f"SELECT count(*) FROM ({self.sql})", self.params


def candidates(query: EntityQuery) -> Candidates:
    """The documents that may match ``query`` (rows ``pk, doc[, sure]``), in ``pk`` order,
    after ``query.keyset`` when it has one.

    Every probe names the driving index's ``pk`` (``t.pk`` for a single type), so SQLite can
    reject a candidate before it reads the candidate's row in ``entities``; measured on the
    (a) query of ``benchmarks/query.py``, probing by ``e.pk`` cost twice the time per page.
    """
    clauses: list[str] = []
    params: list[Any] = []
    key = "e.pk"
    source, tail = "entities e", ""
    types = query.types
    box = search_box(query.geo) if query.geo is not None else None
    if query.ids is not None:
        clauses.append(f"e.id IN ({_marks(query.ids)})")
        params.extend(query.ids)
    elif box is not None and query.geo is not None:
        clauses.append(
            "e.pk IN (SELECT k.pk FROM geo_boxes b JOIN geo_keys k ON k.gid = b.gid "
            "WHERE k.attr = ? AND b.max_lon >= ? AND b.min_lon <= ? "
            "AND b.max_lat >= ? AND b.min_lat <= ?)"
        )
        params.extend((query.geo.geoproperty, box[0], box[2], box[1], box[3]))
    elif types is not None and len(types) == 1:
        # Ordered by t.pk: SQLite then walks the (type, pk) index in order, with no sort step;
        # the entities row is joined last, once the probes have let the candidate through.
        source, tail, key = "entity_types t", " CROSS JOIN entities e ON e.pk = t.pk", "t.pk"
        clauses.append("t.type = ?")
        params.append(types[0])
        types = None
    if types is not None:
        clauses.append(
            "EXISTS (SELECT 1 FROM entity_types t2 "
            f"WHERE t2.pk = {key} AND t2.type IN ({_marks(types)}))"
        )
        params.extend(types)
    if query.id_pattern is not None:
        clauses.append("regexp(?, e.id)")
        params.append(query.id_pattern)
    if query.attrs is not None:
        clauses.append(_has_attribute(key, len(query.attrs)))
        params.extend(query.attrs)
    numeric = _numeric_comparisons(query.q)
    compared = {attr for attr, _, _ in numeric}
    for attr in sorted(query.required_attributes - compared):  # a comparison's join checks it
        clauses.append(_has_attribute(key, 1))
        params.append(attr)
    # Numeric comparisons join the attribute's index row (one per entity and name, so a join
    # adds no rows) instead of probing it twice (once to compare, once to vouch).
    joins, join_params = [], []
    for n, (attr, op, number) in enumerate(numeric):
        joins.append(f" CROSS JOIN entity_attrs n{n} ON n{n}.attr = ? AND n{n}.pk = {key}")
        join_params.append(attr)
        clauses.append(_may_compare(f"n{n}", op))
        params.append(number)
    after = query.keyset
    if after is not None:
        # Keyset paging: the index is walked from the position on, nothing before it is read.
        clauses.append(f"{key} > ?")
        params.append(after[0])
    # CROSS JOIN keeps SQLite's join order as written: the driver outermost, so rows come in
    # its pk order with no sort step and the page can stop early.
    tables = source + "".join(joins) + tail
    where = (" WHERE " + " AND ".join(clauses)) if clauses else ""
    params = [*join_params, *params]
    if numeric and _only_numeric(query, len(numeric)):
        sure = " AND ".join(f"n{n}.num IS NOT NULL" for n in range(len(numeric)))
        sql = f"SELECT {key}, e.doc, {sure} FROM {tables}{where} ORDER BY {key}"
        return Candidates(sql, params, exact=False, vouched=True)
    sql = f"SELECT {key}, e.doc FROM {tables}{where} ORDER BY {key}"
    # Only the single-type driver has an index apart from entities, and only a WHERE that
    # names no column of e can be answered on it alone.
    keys = None
    if tail and query.id_pattern is None:
        keys = f"SELECT {key} AS pk FROM {source}{''.join(joins)}{where} ORDER BY {key}"
    return Candidates(sql, params, exact=not query.has_expressions, keys=keys)


def _only_numeric(query: EntityQuery, terms: int) -> bool:
    """Whether ``q`` is nothing but pushed-down numeric comparisons and nothing else needs the
    evaluator or an order other than insertion."""
    q = query.q
    all_terms = len(q.items) if isinstance(q, And) else 1
    return terms == all_terms and not replace(query, q=None).has_expressions


def _numeric_comparisons(q: QExpr | None) -> list[tuple[str, str, int | float]]:
    """Top-level conjuncts ``attr <op> number`` of ``q``, which SQL can pre-filter."""
    if q is None:
        return []
    terms = q.items if isinstance(q, And) else (q,)
    return [
        (term.path.attr, term.op, term.value)
        for term in terms
        if isinstance(term, Comparison)
        and term.op in _SQL_OPERATORS
        and term.path == Path(term.path.attr)
        and ":" in term.path.attr  # an attribute IRI, not an entity member
        and isinstance(term.value, int | float)
        and not isinstance(term.value, bool)
    ]


def _may_compare(row: str, op: str) -> str:
    # ``num`` is NULL unless the attribute is a single plain number, and then the evaluator's
    # answer is exactly this comparison; NULL keeps the entity for the evaluator to decide, so
    # the SQL never drops a match.
    return f"({row}.num IS NULL OR {row}.num {_SQL_OPERATORS[op]} ?)"


def _has_attribute(key: str, count: int) -> str:
    return (
        f"EXISTS (SELECT 1 FROM entity_attrs a WHERE a.pk = {key} "
        f"AND a.attr IN ({', '.join('?' * count)}))"
    )


def _marks(values: tuple[str, ...]) -> str:
    return ", ".join("?" * len(values))
