"""Finishing a query: exact filtering, ordering and paging over a store's candidates.

Stores narrow candidates with their indexes (a superset of the answer, in insertion order) and
offer them here one by one; ``matches`` decides exactly. Without ``count``, ``orderBy`` or
distance ordering the collector says "enough" as soon as the page is full, so the cost of a
page depends on the page and on how selective the filters are, not on how many entities the
tenant holds.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from heapq import nsmallest

from broker.ngsild.entity import EntityDoc
from broker.ngsild.query.geo import near_distance
from broker.ngsild.query.model import EntityQuery, matches
from broker.ngsild.query.ordering import order
from broker.ngsild.query.qeval import Linked


class PageCollector:
    """Collects the page of ``query`` from candidates offered in insertion order."""

    def __init__(self, query: EntityQuery, linked: Linked | None = None) -> None:
        self._query = query
        self._linked = linked
        self._end = query.offset + query.limit
        # Whether the last candidate offered went onto the page (insertion order only): a
        # store notes its position, where the next page may resume.
        self.taken_last = False
        self._seen = 0
        self._page: list[EntityDoc] = []
        self._ranked: list[tuple[float, int, EntityDoc]] = []
        # near: the geo test and the ranking share one distance computation (see offer).
        self._unless_geo = replace(query, geo=None) if query.by_distance else query

    def offer(self, doc: EntityDoc) -> bool:
        """Consider one candidate; returns whether more candidates can still change the result."""
        query = self._query
        self.taken_last = False
        if not matches(self._unless_geo, doc, self._linked):
            return True
        if query.ordering is not None:
            self._ranked.append((0.0, self._seen, doc))
            self._seen += 1
            return True
        if query.by_distance:
            assert query.geo is not None  # by_distance implies it
            distance = near_distance(query.geo, doc)
            if distance is None:
                return True
            self._ranked.append((distance, self._seen, doc))
            self._seen += 1
            return True
        return self.offer_known(lambda: doc)

    def offer_known(self, load: Callable[[], EntityDoc]) -> bool:
        """Take a candidate the store has shown to match (insertion order only); ``load`` is
        called only if it lands on the page."""
        self.taken_last = self._query.offset <= self._seen < self._end
        if self.taken_last:
            self._page.append(load())
        self._seen += 1
        return self._seen < self._end or self._query.count

    def result(self) -> tuple[list[EntityDoc], int | None]:
        """The page, and the number of matches when the query asked for the count."""
        total = self._seen if self._query.count else None
        if self._query.ordering is not None:
            ordered = order(self._query.ordering, [doc for _, _, doc in self._ranked])
            return ordered[self._query.offset : self._end], total
        if not self._query.by_distance:
            return self._page, total
        best = nsmallest(self._end, self._ranked, key=lambda item: item[:2])
        return [doc for _, _, doc in best[self._query.offset :]], total


def select_page(
    candidates: Iterable[EntityDoc], query: EntityQuery
) -> tuple[list[EntityDoc], int | None]:
    """The page of ``candidates`` that match ``query``, and the total when it was asked for."""
    collector = PageCollector(query)
    for doc in candidates:
        if not collector.offer(doc):
            break
    return collector.result()
