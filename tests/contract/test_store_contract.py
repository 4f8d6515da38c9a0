"""The store port's contract (``broker.store.base``): what every backend must do alike.

Every test runs once per backend (see ``conftest.py``): SQLite always, MongoDB only where
``TOSHI_TEST_MONGODB_URL`` is set, since MongoDB cannot run on this project's machines. The last
test is differential: on random entity sets, changes and queries, a store's page must equal the
reference evaluator ``broker.ngsild.query.matches`` applied in insertion order.

A few MongoDB-store checks that need no server (URL handling, ``describe``, database names) are at
the end; they run everywhere.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from dataclasses import replace
from datetime import datetime
from typing import Any

import orjson
import pytest
from broker.ngsild.catalogue import CatalogueRow, catalogue_delta
from broker.ngsild.errors import AlreadyExists, NonexistentTenant, ResourceNotFound
from broker.ngsild.query import EntityQuery, matches
from broker.ngsild.query.geo import GeoQuery, distance_m
from broker.ngsild.query.model import Resume
from broker.ngsild.query.ordering import order, parse_ordering
from broker.ngsild.query.qlang import parse_q
from broker.ngsild.query.scopeq import parse_scope_query
from broker.store.base import EntityStore, Store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.contract.conftest import Backend

D = "https://uri.etsi.org/ngsi-ld/default-context/"
DOTTED = "https://example.org/city.v2:level"
"""An attribute IRI with dots and colons, which no backend may use as a field name."""
T0 = "2026-01-01T00:00:00.000Z"
T1 = "2026-01-02T00:00:00.000Z"
T2 = "2026-01-03T00:00:00.000Z"

Doc = dict[str, Any]


def eid(name: object) -> str:
    return f"urn:ngsi-ld:T:{name}"


def entity(key: object, /, *types: str, **attrs: Any) -> Doc:
    """An internal entity document; types and attribute names are short terms under ``D``."""
    return {
        "id": eid(key),
        "type": [D + t for t in (types or ("T",))],
        "createdAt": T0,
        "modifiedAt": T0,
        "attrs": {
            D + attr: [{"type": "Property", "value": value, "createdAt": T0, "modifiedAt": T0}]
            for attr, value in attrs.items()
        },
    }


def set_value(attr: str, value: Any) -> Any:
    """A mutation setting ``attr`` (an IRI) to ``value``; its outcome is the value."""

    def mutate(doc: Doc) -> tuple[Doc, Any]:
        instance = {"type": "Property", "value": value, "createdAt": T0, "modifiedAt": T1}
        return {**doc, "modifiedAt": T1, "attrs": {**doc["attrs"], attr: [instance]}}, value

    return mutate


def retype(*types: str) -> Any:
    def mutate(doc: Doc) -> tuple[Doc, None]:
        return {**doc, "type": [D + t for t in types]}, None

    return mutate


def drop_attr(attr: str) -> Any:
    def mutate(doc: Doc) -> tuple[Doc, None]:
        return {**doc, "attrs": {k: v for k, v in doc["attrs"].items() if k != attr}}, None

    return mutate


def ids(page: Any) -> list[str]:
    return [doc["id"] for doc in page.entities]


async def default(store: Store) -> EntityStore:
    return await store.tenant("", create=False)


# --- documents ---------------------------------------------------------------------------------


async def test_an_entity_comes_back_byte_for_byte(store: Store) -> None:
    tenant = await default(store)
    doc: Doc = {
        "id": "urn:ngsi-ld:RiverGauge:kamo-1",
        "type": [D + "RiverGauge", "https://example.org/city#Sensor"],
        "scope": ["/Kyoto/Sakyo"],
        "createdAt": T0,
        "modifiedAt": T1,
        "attrs": {
            D + "level": [
                {
                    "type": "Property",
                    "value": 1.25,
                    "observedAt": "2026-11-23T01:00:00.000Z",
                    "createdAt": T0,
                    "modifiedAt": T1,
                    D + "unit": {"type": "Property", "value": "MTR"},
                },
                {"type": "Property", "value": 2**53 + 1, "datasetId": "urn:ds:2"},
            ],
            DOTTED: [{"type": "Property", "value": {"a.b": [1, None, True], "$x": "y"}}],
            D + "name": [{"type": "LanguageProperty", "languageMap": {"ja": "鴨川", "en": "Kamo"}}],
            "https://uri.etsi.org/ngsi-ld/location": [
                {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [135.77, 35.01]}}
            ],
        },
    }
    await tenant.create(doc)
    got = await tenant.get(doc["id"])
    assert got is not None
    assert orjson.dumps(got) == orjson.dumps(doc)
    # A document read is a value: a later write gives later reads a new one and leaves it as is.
    await tenant.update(doc["id"], lambda before: ({**before, "modifiedAt": T2}, None))
    again = await tenant.get(doc["id"])
    assert again is not None
    assert again["modifiedAt"] == T2
    assert orjson.dumps(got) == orjson.dumps(doc)


async def test_existing_names_the_stored_ids_among_those_asked(store: Store) -> None:
    tenant = await default(store)
    stored = [f"urn:ngsi-ld:Gauge:existing-{n}" for n in range(3)]
    for entity_id in stored:
        await tenant.create({"id": entity_id, "type": [D + "Gauge"], "attrs": {}})
    asked = [*stored, "urn:ngsi-ld:Gauge:existing-none"]
    assert await tenant.existing(asked) == set(stored)
    await tenant.delete(stored[0])
    assert await tenant.existing(asked) == set(stored[1:])
    assert await tenant.existing([]) == set()


async def test_expiring_finds_what_is_due_soonest_first_and_follows_every_write(
    store: Store,
) -> None:
    # §4.22: the expiry sweep's lookup, over entity- and attribute-level expiresAt.
    tenant = await default(store)
    soon, later = "2026-05-01T12:00:00Z", "2026-05-01T13:00:00Z"
    at_soon, at_later = (datetime.fromisoformat(t).timestamp() for t in (soon, later))
    await tenant.create({**entity("durable", level=1)})
    await tenant.create({**entity("whole", level=1), "expiresAt": later})
    part = entity("part", level=1)
    part["attrs"][D + "flash"] = [{"type": "Property", "value": 2, "expiresAt": soon}]
    await tenant.create(part)
    assert await tenant.expiring(at_soon - 1, 10) == []
    assert await tenant.expiring(at_soon, 10) == [eid("part")]
    assert await tenant.expiring(at_later, 10) == [eid("part"), eid("whole")]
    assert await tenant.expiring(at_later, 1) == [eid("part")]
    await tenant.update(eid("part"), drop_attr(D + "flash"))
    await tenant.update(eid("durable"), lambda d: ({**d, "expiresAt": soon}, None))
    assert await tenant.expiring(at_later, 10) == [eid("durable"), eid("whole")]
    await tenant.delete(eid("whole"))
    assert await tenant.expiring(at_later, 10) == [eid("durable")]


async def test_creating_a_taken_id_is_refused_and_keeps_the_first(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, speed=1))
    with pytest.raises(AlreadyExists):
        await tenant.create(entity(1, "Other", speed=2))
    assert await tenant.get(eid(1)) == entity(1, speed=1)
    page = await tenant.query(EntityQuery(count=True))
    assert ids(page) == [eid(1)]
    assert page.total == 1


async def test_concurrent_creates_of_one_id_let_exactly_one_win(store: Store) -> None:
    tenant = await default(store)
    outcomes = await asyncio.gather(
        *(tenant.create(entity(1, speed=n)) for n in range(10)), return_exceptions=True
    )
    assert sum(outcome is None for outcome in outcomes) == 1
    assert all(isinstance(o, AlreadyExists) for o in outcomes if o is not None)
    assert (await tenant.query(EntityQuery(count=True, limit=0))).total == 1


async def test_a_missing_entity_is_none(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1))
    assert await tenant.get(eid(2)) is None


async def test_update_applies_the_mutation_and_reports_before_and_after(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, speed=1))
    committed = await tenant.update(eid(1), set_value(D + "speed", 2))
    assert committed.changed
    assert committed.result == 2
    assert committed.before == entity(1, speed=1)
    assert committed.after["attrs"][D + "speed"][0]["value"] == 2
    assert committed.after["modifiedAt"] == T1
    assert await tenant.get(eid(1)) == committed.after


async def test_a_mutation_returning_its_input_writes_nothing(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, speed=1))
    committed = await tenant.update(eid(1), lambda doc: (doc, "unchanged"))
    assert not committed.changed
    assert committed.after is committed.before
    assert committed.result == "unchanged"
    assert await tenant.get(eid(1)) == entity(1, speed=1)


class Refused(Exception):
    """Raised by a mutation to abort an update."""


async def test_a_failing_mutation_changes_nothing_and_its_error_propagates(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, speed=1))

    def refuse(doc: Doc) -> tuple[Doc, None]:
        doc["attrs"] = {}  # even a mutation that scribbles on its input must not leak through
        raise Refused("no")

    with pytest.raises(Refused):
        await tenant.update(eid(1), refuse)
    assert await tenant.get(eid(1)) == entity(1, speed=1)
    # and the store keeps serving writes afterwards
    committed = await tenant.update(eid(1), set_value(D + "speed", 5))
    assert committed.before == entity(1, speed=1)


async def test_update_and_delete_of_a_missing_entity_are_not_found(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1))
    with pytest.raises(ResourceNotFound):
        await tenant.update(eid(2), set_value(D + "x", 1))
    with pytest.raises(ResourceNotFound):
        await tenant.delete(eid(2))
    assert await tenant.get(eid(2)) is None


async def test_delete_returns_the_entity_and_removes_it(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, speed=1))
    await tenant.create(entity(2))
    assert await tenant.delete(eid(1)) == entity(1, speed=1)
    assert await tenant.get(eid(1)) is None
    with pytest.raises(ResourceNotFound):
        await tenant.delete(eid(1))
    with pytest.raises(ResourceNotFound):
        await tenant.update(eid(1), set_value(D + "speed", 2))
    page = await tenant.query(EntityQuery(types=(D + "T",), count=True))
    assert ids(page) == [eid(2)]
    assert page.total == 1
    # The id is free again; the new entity is the newest one.
    await tenant.create(entity(1, speed=9))
    assert ids(await tenant.query(EntityQuery())) == [eid(2), eid(1)]


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, count=0))

    def increment(doc: Doc) -> tuple[Doc, int]:
        current = doc["attrs"][D + "count"][0]["value"]
        return set_value(D + "count", current + 1)(doc)  # type: ignore[no-any-return]

    committed = await asyncio.gather(*(tenant.update(eid(1), increment) for _ in range(50)))
    stored = await tenant.get(eid(1))
    assert stored is not None
    assert stored["attrs"][D + "count"][0]["value"] == 50
    # every update saw the previous one's result: each outcome exactly once
    assert sorted(c.result for c in committed) == list(range(1, 51))


async def test_concurrent_updates_and_a_delete_are_each_all_or_nothing(store: Store) -> None:
    tenant = await default(store)
    await tenant.create(entity(1, count=0))

    def increment(doc: Doc) -> tuple[Doc, int]:
        return set_value(D + "count", doc["attrs"][D + "count"][0]["value"] + 1)(doc)  # type: ignore[no-any-return]

    outcomes = await asyncio.gather(
        *(tenant.update(eid(1), increment) for _ in range(10)),
        tenant.delete(eid(1)),
        *(tenant.update(eid(1), increment) for _ in range(10)),
        return_exceptions=True,
    )
    deleted = outcomes[10]
    assert isinstance(deleted, dict)
    updates = outcomes[:10] + outcomes[11:]
    done = [o for o in updates if not isinstance(o, BaseException)]
    assert all(isinstance(o, ResourceNotFound) for o in updates if isinstance(o, BaseException))
    # The deleted document holds exactly the updates that committed before it.
    before_delete = deleted["attrs"][D + "count"][0]["value"]
    assert sorted(c.result for c in done) == list(range(1, len(done) + 1))
    assert before_delete == len(done)
    assert await tenant.get(eid(1)) is None


# --- tenants -----------------------------------------------------------------------------------


async def test_tenants_are_isolated(store: Store) -> None:
    a = await store.tenant("a", create=True)
    b = await store.tenant("b", create=True)
    main = await default(store)
    await a.create(entity(1, speed=1))
    await main.create(entity(2))
    assert await b.get(eid(1)) is None
    assert await main.get(eid(1)) is None
    assert await a.get(eid(2)) is None
    assert (await b.query(EntityQuery(count=True))).total == 0
    assert ids(await main.query(EntityQuery())) == [eid(2)]
    # the same id may exist in two tenants, independently
    await b.create(entity(1, "Other"))
    await a.update(eid(1), set_value(D + "speed", 7))
    assert await b.get(eid(1)) == entity(1, "Other")
    await b.delete(eid(1))
    assert await a.get(eid(1)) is not None


async def test_unknown_tenants_do_not_exist_until_created(store: Store) -> None:
    with pytest.raises(NonexistentTenant):
        await store.tenant("nope")
    assert await store.tenants() == []
    await store.tenant("kyoto", create=True)
    await store.tenant("akita", create=True)
    again = await store.tenant("kyoto")  # now it exists without create
    await again.create(entity(1))
    assert await store.tenants() == ["akita", "kyoto"]
    with pytest.raises(NonexistentTenant):
        await store.tenant("nope")
    assert "nope" not in await store.tenants()


async def test_data_and_tenants_survive_a_restart(backend: Backend, store: Store) -> None:
    await (await default(store)).create(entity(1, speed=1))
    kyoto = await store.tenant("kyoto", create=True)
    await kyoto.create(entity(2))
    await kyoto.update(eid(2), set_value(D + "speed", 3))
    await backend.close(store)

    reopened = await backend.open()
    assert await reopened.tenants() == ["kyoto"]
    assert await (await default(reopened)).get(eid(1)) == entity(1, speed=1)
    kyoto = await reopened.tenant("kyoto")
    stored = await kyoto.get(eid(2))
    assert stored is not None
    assert stored["attrs"][D + "speed"][0]["value"] == 3
    # insertion order continues after the restart
    await kyoto.create(entity(0))
    assert ids(await kyoto.query(EntityQuery())) == [eid(2), eid(0)]


# --- queries -----------------------------------------------------------------------------------


async def fill(tenant: EntityStore) -> None:
    """Six entities, created in an order that is neither by id nor by type."""
    await tenant.create(entity("z", "A", speed=1))
    await tenant.create(entity("b", "B", level=2))
    await tenant.create(entity("m", "A", "B", speed=3, level=3))
    await tenant.create({**entity("d.1", "C"), "attrs": {DOTTED: [{"type": "Property"}]}})
    await tenant.create(entity("a", "B"))
    await tenant.create(entity("k9", "A", name="x"))


async def test_query_by_types(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    assert ids(await tenant.query(EntityQuery(types=(D + "A",)))) == [eid("z"), eid("m"), eid("k9")]
    # an entity with two of the types is returned once
    page = await tenant.query(EntityQuery(types=(D + "B", D + "A"), count=True))
    assert ids(page) == [eid("z"), eid("b"), eid("m"), eid("a"), eid("k9")]
    assert page.total == 5
    assert ids(await tenant.query(EntityQuery(types=(D + "Nothing",)))) == []


async def test_query_by_ids_keeps_insertion_order(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    page = await tenant.query(EntityQuery(ids=(eid("a"), eid("nothing"), eid("z")), count=True))
    assert ids(page) == [eid("z"), eid("a")]
    assert page.total == 2


async def test_query_by_id_pattern_searches_with_re2(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    assert ids(await tenant.query(EntityQuery(id_pattern=r"\d$"))) == [eid("d.1"), eid("k9")]
    # searched, not anchored; '.' is a metacharacter, '\.' a dot
    assert ids(await tenant.query(EntityQuery(id_pattern="T:[ab]"))) == [eid("b"), eid("a")]
    assert ids(await tenant.query(EntityQuery(id_pattern=r"\."))) == [eid("d.1")]
    page = await tenant.query(EntityQuery(id_pattern="^urn:ngsi-ld:T:.$", limit=2, count=True))
    assert ids(page) == [eid("z"), eid("b")]
    assert page.total == 4


async def test_id_pattern_cannot_make_the_store_backtrack(store: Store) -> None:
    tenant = await default(store)
    for n in range(20):
        await tenant.create(entity("a" * 40 + f"!{n}"))
    # exponential for a backtracking engine, linear for RE2
    page = await asyncio.wait_for(
        tenant.query(EntityQuery(id_pattern="^urn:ngsi-ld:T:(a+)+$", count=True)), timeout=10
    )
    assert page.total == 0


async def test_query_by_attrs_with_dotted_iris(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    assert ids(await tenant.query(EntityQuery(attrs=(D + "speed",)))) == [eid("z"), eid("m")]
    assert ids(await tenant.query(EntityQuery(attrs=(DOTTED,)))) == [eid("d.1")]
    page = await tenant.query(EntityQuery(attrs=(D + "level", D + "name"), count=True))
    assert ids(page) == [eid("b"), eid("m"), eid("k9")]
    assert page.total == 3
    # a prefix of an IRI, or a part of one, is not that IRI
    assert ids(await tenant.query(EntityQuery(attrs=(D + "spe", "level")))) == []


async def test_query_combinations_page_and_count(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    query = EntityQuery(types=(D + "A", D + "B"), attrs=(D + "speed", D + "level", D + "name"))
    everything = ids(await tenant.query(query))
    assert everything == [eid("z"), eid("b"), eid("m"), eid("k9")]
    for offset in range(6):
        for limit in range(1, 5):
            page = await tenant.query(
                EntityQuery(
                    types=query.types, attrs=query.attrs, limit=limit, offset=offset, count=True
                )
            )
            assert ids(page) == everything[offset : offset + limit]
            assert page.total == 4
    page = await tenant.query(
        EntityQuery(types=(D + "A",), id_pattern="[zm]$", attrs=(D + "speed",), count=True)
    )
    assert ids(page) == [eid("z"), eid("m")]
    assert page.total == 2
    both = EntityQuery(ids=(eid("m"), eid("b")), types=(D + "A",), id_pattern="m", count=True)
    assert ids(await tenant.query(both)) == [eid("m")]


async def test_count_only_and_without_count(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    page = await tenant.query(EntityQuery(types=(D + "B",), limit=0, count=True))
    assert page.entities == []
    assert page.total == 3
    page = await tenant.query(EntityQuery(id_pattern="T", limit=0, count=True))
    assert page.entities == []
    assert page.total == 6
    page = await tenant.query(EntityQuery(types=(D + "B",)))
    assert page.total is None
    page = await tenant.query(EntityQuery(types=(D + "B",), offset=10, count=True))
    assert page.entities == []
    assert page.total == 3


async def test_type_and_attribute_changes_are_seen_by_queries(store: Store) -> None:
    tenant = await default(store)
    await fill(tenant)
    await tenant.update(eid("b"), retype("A"))
    await tenant.update(eid("z"), retype("C", "B"))
    a_query = EntityQuery(types=(D + "A",), count=True)
    page = await tenant.query(a_query)
    assert ids(page) == [eid("b"), eid("m"), eid("k9")]  # still in insertion order
    assert page.total == 3
    assert ids(await tenant.query(EntityQuery(types=(D + "C",)))) == [eid("z"), eid("d.1")]

    await tenant.update(eid("z"), drop_attr(D + "speed"))
    await tenant.update(eid("a"), set_value(D + "speed", 0))
    page = await tenant.query(EntityQuery(attrs=(D + "speed",), count=True))
    assert ids(page) == [eid("m"), eid("a")]
    assert page.total == 2
    # a no-op update leaves the indexes as they were
    await tenant.update(eid("m"), lambda doc: (doc, None))
    assert ids(await tenant.query(EntityQuery(types=(D + "A",), attrs=(D + "speed",)))) == [
        eid("m")
    ]


async def test_paging_is_stable_in_insertion_order(store: Store) -> None:
    tenant = await default(store)
    order = [f"{n:02d}{'zyxwvutsrq'[n % 10]}" for n in (7, 3, 11, 0, 5, 9, 1, 12, 4, 8, 2, 10, 6)]
    for name in order:
        await tenant.create(entity(name, speed=0))
    seen: list[str] = []
    offset = 0
    while True:
        page = await tenant.query(EntityQuery(limit=3, offset=offset))
        if not page.entities:
            break
        seen += ids(page)
        offset += 3
        # updates while paging do not move entities
        for doc in page.entities:
            await tenant.update(doc["id"], set_value(D + "speed", offset))
    assert seen == [eid(name) for name in order]
    pattern_seen = [
        ids(await tenant.query(EntityQuery(id_pattern="T:", limit=4, offset=o)))
        for o in range(0, 16, 4)
    ]
    assert [i for chunk in pattern_seen for i in chunk] == [eid(name) for name in order]


async def test_a_resumed_page_starts_after_the_position_whatever_went_before(
    store: Store,
) -> None:
    tenant = await store.tenant(f"r{uuid.uuid4().hex[:16]}", create=True)
    for n in range(6):
        await tenant.create(entity(n, "T", speed=n))
    query = EntityQuery(types=(D + "T",), limit=2)
    first = await tenant.query(query)
    assert ids(first) == [eid(0), eid(1)] and first.last is not None
    await tenant.delete(eid(0))  # a page already seen loses an entity
    second = replace(query, offset=2)
    resumed = await tenant.query(replace(second, resume=Resume(2, first.last)))
    assert ids(resumed) == [eid(2), eid(3)]  # nothing skipped: the walk goes on where it was
    assert ids(await tenant.query(second)) == [eid(3), eid(4)]  # by offset, eid(2) is skipped
    numeric = replace(second, q=parse_q("speed>0", expand_term))  # SQL-vouched candidates
    assert ids(await tenant.query(replace(numeric, resume=Resume(2, first.last)))) == [
        eid(2),
        eid(3),
    ]
    # A resume standing for another offset, or with a count, is only not used.
    assert ids(await tenant.query(replace(second, offset=4, resume=Resume(2, first.last)))) == [
        eid(5)
    ]


# --- the reference evaluator -------------------------------------------------------------------

NAMES = ["a", "b", "ab", "a1", "b.2", "x:y", "10", "1", "A", "aa"]
TYPES = ["A", "B", "C"]
ATTRS = [D + "speed", D + "level", DOTTED]
PATTERNS = ["a", "^urn:ngsi-ld:T:a$", "b|1", r"\.", ".*", "[0-9]$", "x:y", "A", "^$", "T:a+$"]

type_lists = st.lists(st.sampled_from(TYPES), min_size=1, max_size=3, unique=True)
attr_lists = st.lists(st.sampled_from(ATTRS), max_size=3, unique=True)
entity_specs = st.lists(
    st.tuples(st.sampled_from(NAMES), type_lists, attr_lists),
    max_size=10,
    unique_by=lambda spec: spec[0],
)
changes = st.lists(
    st.tuples(
        st.sampled_from(NAMES),
        st.none() | st.tuples(type_lists, attr_lists),  # None deletes
    ),
    max_size=6,
)


def optional_tuple(values: list[str]) -> Any:
    return st.none() | st.lists(st.sampled_from(values), max_size=3, unique=True).map(tuple)


queries = st.builds(
    EntityQuery,
    types=optional_tuple([D + t for t in [*TYPES, "Nothing"]]),
    ids=optional_tuple([eid(name) for name in [*NAMES, "missing"]]),
    id_pattern=st.none() | st.sampled_from(PATTERNS),
    attrs=optional_tuple([*ATTRS, D + "other"]),
    limit=st.integers(0, 6),
    offset=st.integers(0, 6),
    count=st.booleans(),
)


def spec_doc(name: str, types: list[str], attrs: list[str]) -> Doc:
    kind = "Relationship" if len(name) % 2 else "Property"
    return {
        "id": eid(name),
        "type": [D + t for t in types],
        "createdAt": T0,
        "modifiedAt": T0,
        "attrs": {attr: [{"type": kind, "value": name}] for attr in attrs},
    }


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=entity_specs, edits=changes, query=queries)
async def test_store_answers_equal_the_reference_evaluator(
    store: Store,
    specs: list[tuple[str, list[str], list[str]]],
    edits: list[tuple[str, tuple[list[str], list[str]] | None]],
    query: EntityQuery,
) -> None:
    # A fresh tenant per example: the fixture's store is shared by all examples.
    tenant = await store.tenant(f"h{uuid.uuid4().hex[:16]}", create=True)
    model: dict[str, Doc] = {}  # insertion-ordered, like the stores' paging order
    for name, types, attrs in specs:
        doc = spec_doc(name, types, attrs)
        await tenant.create(doc)
        model[doc["id"]] = doc
    for name, edit in edits:
        if eid(name) not in model:
            missing = (
                tenant.delete(eid(name))
                if edit is None
                else tenant.update(eid(name), lambda doc: (doc, None))
            )
            with pytest.raises(ResourceNotFound):
                await missing
            continue
        if edit is None:
            assert await tenant.delete(eid(name)) == model.pop(eid(name))
        else:
            new = spec_doc(name, *edit)
            await tenant.update(eid(name), lambda _doc, new=new: (new, None))
            model[eid(name)] = new

    expected = [doc["id"] for doc in model.values() if matches(query, doc)]
    page = await tenant.query(query)
    assert ids(page) == expected[query.offset : query.offset + query.limit]
    assert page.total == (len(expected) if query.count else None)
    for doc in page.entities:
        assert doc == model[doc["id"]]
    assert await walk_resuming(tenant, query) == await walk_by_offset(tenant, query) == expected
    # Discovery's counts, kept up to date write by write, equal a recount of what is stored.
    assert await tenant.catalogue() == recount(model.values())


async def walk_by_offset(tenant: EntityStore, query: EntityQuery) -> list[str]:
    """Every match of ``query``, page after page of its ``limit`` by ``offset``."""
    limit, seen = max(query.limit, 1), []
    while True:
        page = await tenant.query(replace(query, offset=len(seen), limit=limit, resume=None))
        seen += ids(page)
        if len(page.entities) < limit:
            return seen


async def walk_resuming(tenant: EntityStore, query: EntityQuery) -> list[str]:
    """The same walk, each page resuming after the position the page before ended at, as a
    client following ``rel="next"`` does; it must see the same pages."""
    limit, seen = max(query.limit, 1), []
    page = await tenant.query(replace(query, offset=0, limit=limit, resume=None))
    while True:
        seen += ids(page)
        if len(page.entities) < limit:
            return seen
        if query.ordering is None and not query.by_distance:
            assert page.last is not None  # a full page in the store's order says where it ended
        resume = None if page.last is None else Resume(len(seen), page.last)
        page = await tenant.query(replace(query, offset=len(seen), limit=limit, resume=resume))


def recount(docs: Any) -> list[CatalogueRow]:
    counts: Counter[tuple[str, str, str]] = Counter()
    for doc in docs:
        counts.update(catalogue_delta(None, doc))
    return [CatalogueRow(*key, n) for key, n in sorted(counts.items())]


# --- the MongoDB store without a server -------------------------------------------------------


async def test_mongo_store_describes_itself_without_credentials() -> None:
    pytest.importorskip("pymongo")
    from broker.store.mongo import MongoStore

    store = MongoStore("mongodb://toshi:s3cret@db1.example:27017,db2.example/city?replicaSet=rs0")
    try:
        described = store.describe()
    finally:
        await store.close()  # never connected: the client connects on first use
    assert described == {
        "backend": "mongodb",
        "hosts": ["db1.example:27017", "db2.example"],
        "database": "city",
    }
    assert "s3cret" not in repr(described)
    assert "toshi:" not in repr(described)


async def test_mongo_store_names_tenant_databases_within_mongodb_limits() -> None:
    pytest.importorskip("pymongo")
    from broker.store.mongo import MongoStore

    store = MongoStore("mongodb://localhost")
    try:
        assert store.describe()["database"] == "toshi"
        assert store.database_name("") == "toshi"
        assert store.database_name("kyoto") == "toshi-t-kyoto"
    finally:
        await store.close()
    # The name function itself (collisions, limits) is tested in tests/unit/test_mongo_names.py.


# --- q, scopeQ, geoQ and type expressions: narrowed by indexes, decided by the evaluator ------

LOCATION = "https://uri.etsi.org/ngsi-ld/location"
Q_TEXTS = [
    "level>2",
    "level==1..3",
    "level!=2;status",
    "!status|level<1",
    'status=="ok"',
    "level<=2;status",
    "level==3",
]
SCOPES = ["/a", "/a/#", "/b;/a/#", "/+/c"]
GEOS = [
    GeoQuery("near", {"type": "Point", "coordinates": [0.0, 0.0]}, max_distance=250_000),
    GeoQuery("near", {"type": "Point", "coordinates": [1.0, 1.0]}, min_distance=100_000),
    GeoQuery(
        "within",
        {"type": "Polygon", "coordinates": [[[-1, -1], [2, -1], [2, 2], [-1, 2], [-1, -1]]]},
    ),
    GeoQuery("disjoint", {"type": "Point", "coordinates": [0.0, 0.0]}),
]


def expand_term(name: str) -> str:
    return name if ":" in name else D + name


located = st.tuples(
    st.sampled_from(NAMES),
    type_lists,
    st.none() | st.integers(0, 4) | st.sampled_from(["3", [1, 5], 2.5]),  # level
    st.booleans(),  # has status "ok"
    st.none() | st.sampled_from(["/a", "/a/c", "/b/c", "/b"]),
    st.none() | st.tuples(st.integers(-3, 3), st.integers(-3, 3)),
)
expression_queries = st.builds(
    EntityQuery,
    q=st.none() | st.sampled_from(Q_TEXTS).map(lambda text: parse_q(text, expand_term)),
    scope=st.none() | st.sampled_from(SCOPES).map(parse_scope_query),
    geo=st.none() | st.sampled_from(GEOS),
    types=optional_tuple([D + t for t in TYPES]),
    type_expr=st.none() | st.just(((frozenset({D + "A", D + "B"})), frozenset({D + "C"}))),
    ordering=st.none()
    | st.sampled_from(["level;desc", "status,id;desc", "location;dist-asc"]).map(
        lambda text: parse_ordering(text, expand_term, coordinates="[0.5, 0.5]")
    ),
    limit=st.integers(1, 6),
    offset=st.integers(0, 3),
    count=st.booleans(),
)


def located_doc(spec: tuple[Any, ...]) -> Doc:
    name, types, level, ok, scope, point = spec
    doc = spec_doc(name, types, [])
    if level is not None:
        doc["attrs"][D + "level"] = [{"type": "Property", "value": level}]
    if ok:
        doc["attrs"][D + "status"] = [{"type": "Property", "value": "ok"}]
    if scope is not None:
        doc["scope"] = [scope]
    if point is not None:
        value = {"type": "Point", "coordinates": [point[0] / 2, point[1] / 2]}
        doc["attrs"][LOCATION] = [{"type": "GeoProperty", "value": value}]
    return doc


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    specs=st.lists(located, max_size=10, unique_by=lambda spec: spec[0]),
    levels=st.lists(st.tuples(st.integers(0, 9), st.integers(0, 4) | st.just("x")), max_size=5),
    query=expression_queries,
)
async def test_expression_queries_equal_the_reference_evaluator(
    store: Store,
    specs: list[tuple[Any, ...]],
    levels: list[tuple[int, Any]],
    query: EntityQuery,
) -> None:
    tenant = await store.tenant(f"x{uuid.uuid4().hex[:16]}", create=True)
    docs = [located_doc(spec) for spec in specs]
    for doc in docs:
        await tenant.create(doc)
    # Value-only updates, shaped like the patch rules' (unchanged attributes shared), must keep
    # the stores' value indexes current.
    for index, level in levels:
        if index < len(docs) and D + "level" in docs[index]["attrs"]:
            old = docs[index]
            instance = {"type": "Property", "value": level}
            new = {**old, "attrs": {**old["attrs"], D + "level": [instance]}}
            await tenant.update(old["id"], lambda _doc, new=new: (new, None))
            docs[index] = new
    found = [doc for doc in docs if matches(query, doc)]
    if query.ordering is not None:
        found = order(query.ordering, found)
    elif query.by_distance:
        assert query.geo is not None
        found.sort(key=lambda doc: distance_m(query.geo, doc) or 0.0)  # stable: ties keep order
    page = await tenant.query(query)
    assert ids(page) == [doc["id"] for doc in found][query.offset : query.offset + query.limit]
    assert page.total == (len(found) if query.count else None)
    everything = [doc["id"] for doc in found]
    assert await walk_resuming(tenant, query) == await walk_by_offset(tenant, query) == everything
    if query.ordering is not None or query.by_distance:
        assert page.last is None  # a position in insertion order says nothing about this order


async def test_numeric_q_sees_value_only_updates(store: Store) -> None:
    tenant = await store.tenant(f"n{uuid.uuid4().hex[:16]}", create=True)
    await tenant.create(entity("g", level=1, other=0))
    above_two = EntityQuery(types=(D + "T",), q=parse_q("level>2", expand_term))
    assert ids(await tenant.query(above_two)) == []
    for level, found in ((5, [eid("g")]), ("high", []), (3, [eid("g")]), (2, [])):
        # Shaped like the patch rules' output: only the changed attribute is a new object.
        await tenant.update(eid("g"), lambda doc, level=level: (value_set(doc, level), None))
        assert ids(await tenant.query(above_two)) == found, level


def value_set(doc: Doc, level: Any) -> Doc:
    instance = {"type": "Property", "value": level}
    return {**doc, "attrs": {**doc["attrs"], D + "level": [instance]}}


# --- records (subscriptions, provisioning, ...) ------------------------------------------------


def subscription(key: str, **extra: Any) -> Doc:
    return {"id": f"urn:ngsi-ld:Subscription:{key}", "type": "Subscription", **extra}


async def save(tenant: Any, doc: Doc, kind: str = "subscription") -> None:
    await tenant.save_record(kind, doc["id"], doc)


async def test_records_are_saved_replaced_listed_and_deleted(store: Store) -> None:
    tenant = await store.tenant(f"s{uuid.uuid4().hex[:16]}", create=True)
    assert await tenant.records("subscription") == []
    await save(tenant, subscription("b", timesSent=0))
    await save(tenant, subscription("a", timesSent=0))
    await save(tenant, subscription("b", timesSent=3))  # replaced, keeps its place
    assert await tenant.records("subscription") == [
        subscription("b", timesSent=3),
        subscription("a", timesSent=0),
    ]
    assert await tenant.delete_record("subscription", subscription("b")["id"])
    assert not await tenant.delete_record("subscription", subscription("b")["id"])
    assert await tenant.records("subscription") == [subscription("a", timesSent=0)]


async def test_records_of_different_kinds_never_mix(store: Store) -> None:
    tenant = await store.tenant(f"s{uuid.uuid4().hex[:16]}", create=True)
    await save(tenant, {"id": "same-key", "apikey": "k1"}, kind="iot_group")
    await save(tenant, {"id": "same-key", "q": "level>2"})
    assert await tenant.records("iot_group") == [{"id": "same-key", "apikey": "k1"}]
    assert await tenant.records("subscription") == [{"id": "same-key", "q": "level>2"}]
    assert await tenant.delete_record("iot_group", "same-key")
    assert await tenant.records("subscription") == [{"id": "same-key", "q": "level>2"}]


async def test_records_survive_a_restart_and_stay_in_their_tenant(
    backend: Backend, store: Store
) -> None:
    kyoto = await store.tenant("kyoto", create=True)
    await save(kyoto, subscription("river", q="level>2"))
    await save(await store.tenant("osaka", create=True), subscription("rain"))
    await backend.close(store)
    reopened = await backend.open()
    assert await (await reopened.tenant("kyoto")).records("subscription") == [
        subscription("river", q="level>2")
    ]
    osaka = await (await reopened.tenant("osaka")).records("subscription")
    assert [s["id"] for s in osaka] == [subscription("rain")["id"]]


async def test_records_are_saved_and_deleted_in_bulk(store: Store) -> None:
    tenant = await store.tenant(f"s{uuid.uuid4().hex[:16]}", create=True)
    items = [(f"n{i}", {"id": f"n{i}", "body": "x" * i}) for i in range(50)]
    await tenant.save_records("outbox", items)
    await tenant.save_records("outbox", [])
    assert await tenant.records("outbox") == [doc for _, doc in items]
    assert (
        await tenant.delete_records("outbox", [f"n{i}" for i in range(0, 50, 2)] + ["gone"]) == 25
    )
    assert await tenant.delete_records("outbox", []) == 0
    assert [doc["id"] for doc in await tenant.records("outbox")] == [
        f"n{i}" for i in range(1, 50, 2)
    ]
