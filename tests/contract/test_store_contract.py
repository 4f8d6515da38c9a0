"""The store port's contract: every backend (SQLite always, MongoDB where one is reachable).

MongoDB cannot run on this project's machines; set ``TOSHI_TEST_MONGODB_URL`` (e.g.
``mongodb://localhost:27017``) to hold the MongoDB store to the same tests.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from broker.ngsild.errors import AlreadyExists, NonexistentTenant, ResourceNotFound
from broker.ngsild.query import EntityQuery
from broker.ngsild.query.model import matches
from broker.store.base import Store
from broker.store.sqlite import SqliteStore
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

MONGODB_URL = os.environ.get("TOSHI_TEST_MONGODB_URL")
D = "https://uri.etsi.org/ngsi-ld/default-context/"
T0 = "2026-01-01T00:00:00.000Z"


@pytest.fixture(params=["sqlite", "mongodb"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        backend: Any = SqliteStore(tmp_path / "data", "normal")
    else:
        if not MONGODB_URL:
            pytest.skip("TOSHI_TEST_MONGODB_URL not set: MongoDB cannot run on this machine")
        from broker.store.mongo import MongoStore

        base = f"toshi-test-{uuid.uuid4().hex[:12]}"
        backend = MongoStore(f"{MONGODB_URL.rstrip('/')}/{base}")
    await backend.start()
    try:
        yield backend
    finally:
        if request.param == "mongodb":
            client = backend._client
            for name in await client.list_database_names():
                if name.startswith(backend._base):
                    await client.drop_database(name)
        await backend.close()


def entity(n: int | str, *types: str, **attrs: Any) -> dict[str, Any]:
    return {
        "id": f"urn:ngsi-ld:T:{n}",
        "type": [D + t for t in (types or ("T",))],
        "createdAt": T0,
        "modifiedAt": T0,
        "attrs": {
            D + name: [{"type": "Property", "value": value, "createdAt": T0, "modifiedAt": T0}]
            for name, value in attrs.items()
        },
    }


def set_value(name: str, value: Any):
    def mutate(doc: dict[str, Any]) -> tuple[dict[str, Any], int]:
        attrs = {**doc["attrs"], D + name: [{"type": "Property", "value": value}]}
        return {**doc, "attrs": attrs}, value

    return mutate


async def test_create_get_round_trip(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    doc = entity(1, speed=3.5, note="鴨川")
    await tenant.create(doc)
    assert await tenant.get(doc["id"]) == doc
    assert await tenant.get("urn:ngsi-ld:T:none") is None


async def test_duplicate_create_is_refused(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    await tenant.create(entity(1))
    with pytest.raises(AlreadyExists):
        await tenant.create(entity(1, speed=1))
    assert await tenant.get("urn:ngsi-ld:T:1") == entity(1)


async def test_update_applies_the_mutation_and_reports_before_and_after(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    await tenant.create(entity(1, speed=1))
    committed = await tenant.update("urn:ngsi-ld:T:1", set_value("speed", 2))
    assert committed.result == 2
    assert committed.before == entity(1, speed=1)
    assert committed.changed
    stored = await tenant.get("urn:ngsi-ld:T:1")
    assert stored is not None
    assert stored["attrs"][D + "speed"][0]["value"] == 2


async def test_a_mutation_that_changes_nothing_writes_nothing(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    await tenant.create(entity(1, speed=1))
    committed = await tenant.update("urn:ngsi-ld:T:1", lambda doc: (doc, "same"))
    assert not committed.changed
    assert await tenant.get("urn:ngsi-ld:T:1") == entity(1, speed=1)


async def test_a_failing_mutation_leaves_the_entity_alone(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    await tenant.create(entity(1, speed=1))

    def refuse(doc: dict[str, Any]) -> tuple[dict[str, Any], None]:
        raise ResourceNotFound("no such attribute")

    with pytest.raises(ResourceNotFound):
        await tenant.update("urn:ngsi-ld:T:1", refuse)
    assert await tenant.get("urn:ngsi-ld:T:1") == entity(1, speed=1)
    # ... and the store keeps serving writes afterwards
    await tenant.update("urn:ngsi-ld:T:1", set_value("speed", 5))


async def test_missing_entities_are_not_found(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    with pytest.raises(ResourceNotFound):
        await tenant.update("urn:ngsi-ld:T:none", set_value("x", 1))
    with pytest.raises(ResourceNotFound):
        await tenant.delete("urn:ngsi-ld:T:none")


async def test_delete_returns_the_entity(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    await tenant.create(entity(1, speed=1))
    assert await tenant.delete("urn:ngsi-ld:T:1") == entity(1, speed=1)
    assert await tenant.get("urn:ngsi-ld:T:1") is None


async def test_concurrent_updates_lose_nothing(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    await tenant.create(entity(1, count=0))

    def increment(doc: dict[str, Any]) -> tuple[dict[str, Any], None]:
        current = doc["attrs"][D + "count"][0]["value"]
        return set_value("count", current + 1)(doc)[0], None

    await asyncio.gather(*[tenant.update("urn:ngsi-ld:T:1", increment) for _ in range(50)])
    stored = await tenant.get("urn:ngsi-ld:T:1")
    assert stored is not None
    assert stored["attrs"][D + "count"][0]["value"] == 50


async def test_tenants_are_isolated(store: Store) -> None:
    a = await store.tenant("a", create=True)
    b = await store.tenant("b", create=True)
    default = await store.tenant("", create=True)
    await a.create(entity(1))
    assert await b.get("urn:ngsi-ld:T:1") is None
    assert await default.get("urn:ngsi-ld:T:1") is None
    assert (await b.query(EntityQuery(types=(D + "T",), count=True))).total == 0
    with pytest.raises(NonexistentTenant):
        await store.tenant("nope")
    assert await store.tenants() == ["a", "b"]


async def test_queries_page_in_insertion_order_and_follow_type_changes(store: Store) -> None:
    tenant = await store.tenant("", create=True)
    for n in range(7):
        await tenant.create(entity(n, "A" if n % 2 else "B", speed=n))
    page = await tenant.query(EntityQuery(types=(D + "A",), limit=2, offset=1, count=True))
    assert [d["id"] for d in page.entities] == ["urn:ngsi-ld:T:3", "urn:ngsi-ld:T:5"]
    assert page.total == 3

    def retype(doc: dict[str, Any]) -> tuple[dict[str, Any], None]:
        return {**doc, "type": [D + "A"]}, None

    await tenant.update("urn:ngsi-ld:T:0", retype)
    page = await tenant.query(EntityQuery(types=(D + "A",), limit=10))
    assert page.entities[0]["id"] == "urn:ngsi-ld:T:0"
    counted = await tenant.query(EntityQuery(types=(D + "B",), limit=0, count=True))
    assert counted.entities == []
    assert counted.total == 3


names = st.sampled_from(["speed", "level", "name"])
query_strategy = st.builds(
    EntityQuery,
    types=st.none()
    | st.lists(
        st.sampled_from([D + "A", D + "B", D + "C"]), min_size=1, max_size=2, unique=True
    ).map(tuple),
    ids=st.none()
    | st.lists(
        st.integers(0, 9).map(lambda n: f"urn:ngsi-ld:T:{n}"), min_size=1, max_size=3, unique=True
    ).map(tuple),
    id_pattern=st.none() | st.sampled_from(["[0-4]$", "T:1", "^urn", "9|8"]),
    attrs=st.none()
    | st.lists(names.map(lambda n: D + n), min_size=1, max_size=2, unique=True).map(tuple),
    limit=st.integers(0, 6),
    offset=st.integers(0, 4),
    count=st.booleans(),
).filter(lambda q: q.limit > 0 or q.count)

entity_sets = st.lists(
    st.tuples(
        st.lists(st.sampled_from("ABC"), min_size=1, max_size=2, unique=True),
        st.lists(names, max_size=3, unique=True),
    ),
    max_size=10,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(specs=entity_sets, query=query_strategy)
async def test_store_answers_equal_the_reference_evaluator(
    store: Store, specs: list[tuple[list[str], list[str]]], query: EntityQuery
) -> None:
    tenant = await store.tenant(f"h{uuid.uuid4().hex[:16]}", create=True)
    docs = [entity(n, *types, **dict.fromkeys(attrs, n)) for n, (types, attrs) in enumerate(specs)]
    for doc in docs:
        await tenant.create(doc)
    expected = [d["id"] for d in docs if matches(query, d)]
    page = await tenant.query(query)
    assert [d["id"] for d in page.entities] == expected[query.offset : query.offset + query.limit]
    assert page.total == (len(expected) if query.count else None)
