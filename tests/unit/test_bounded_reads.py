"""Which queries the SQLite store answers on the event loop (``Candidates.bounded``).

Only a query whose rows read are bounded by its page may run there: a count, a filter that
Python must finish, or a deep offset would stall every other request for as long as it scans.
"""

from __future__ import annotations

from broker.ngsild.query import EntityQuery
from broker.ngsild.query.qlang import parse_q
from broker.store.sqlite_queries import BOUNDED_ROWS, candidates

T = "https://uri.etsi.org/ngsi-ld/default-context/Vehicle"


def bounded(query: EntityQuery) -> bool:
    return candidates(query).bounded(query)


def test_a_page_of_one_type_is_bounded() -> None:
    assert bounded(EntityQuery(types=(T,), limit=20))
    assert bounded(EntityQuery(types=(T,), limit=20, offset=BOUNDED_ROWS - 20))
    assert bounded(EntityQuery(ids=("urn:a", "urn:b"), limit=20))


def test_counting_deep_offsets_and_filters_finished_in_python_are_not() -> None:
    assert not bounded(EntityQuery(types=(T,), limit=20, count=True))
    assert not bounded(EntityQuery(types=(T,), limit=20, offset=BOUNDED_ROWS))
    q = parse_q('name=="x"', lambda term: f"https://example.org/{term}")
    assert not bounded(EntityQuery(types=(T,), limit=20, q=q))
