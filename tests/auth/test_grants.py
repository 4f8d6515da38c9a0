"""Sharing grants: visibility, projection, narrowing cases, documents, and the service."""

from __future__ import annotations

from pathlib import Path

import pytest
from broker.auth import grant_docs
from broker.auth.grant_service import GrantService
from broker.auth.grants import Grant, Grantee, Permission, Selection, applicable, shared_view
from broker.auth.narrowing import narrow
from broker.auth.principal import Principal
from broker.auth.roles import Role
from broker.contexts import builtin_documents
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.query import EntityQuery, matches
from broker.ngsild.query.geo import LOCATION, parse_geo_query
from broker.ngsild.query.ordering import parse_ordering
from broker.ngsild.query.qlang import parse_q
from broker.ngsild.terms import build_term_table
from broker.store.sqlite import SqliteStore

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CITY = "https://city.example/"
TERMS = build_term_table(
    {name: CITY + name for name in ("Gauge", "Pump", "level", "access", "owner")},
    CORE,
    builtin_documents(),
)
GAUGE, PUMP = CITY + "Gauge", CITY + "Pump"
LEVEL, STATUS, OWNER = CITY + "level", CITY + "access", CITY + "owner"
KAGAWA = Principal("k", "https://id.kagawa.example", {"kagawa": Role.READER})


def gauge(number: int, level: int, status: str, types: tuple[str, ...] = (GAUGE,)) -> dict:
    return {
        "id": f"urn:ngsi-ld:Gauge:{number}",
        "type": list(types),
        "scope": ["/kamo"],
        "createdAt": "2026-01-01T00:00:00Z",
        "attrs": {
            LEVEL: [{"type": "Property", "value": level}],
            STATUS: [{"type": "Property", "value": status}],
            OWNER: [{"type": "Property", "value": "river office"}],
            LOCATION: [{"type": "GeoProperty", "value": {"type": "Point", "coordinates": [1, 1]}}],
        },
    }


def grant(selection: Selection, grantee: Grantee | None = None, number: int = 1) -> Grant:
    return Grant(
        f"urn:g:{number}",
        "takamatsu",
        grantee or Grantee(tenant="kagawa"),
        frozenset({Permission.READ}),
        selection,
        "admin",
        "2026-01-01T00:00:00Z",
    )


PUBLIC_NAMES = grant(
    Selection(frozenset({GAUGE}), frozenset({LEVEL}), parse_q('access=="public"', TERMS.expand))
)


def test_a_grant_selects_on_the_whole_entity_and_shares_only_its_attributes() -> None:
    public, private = gauge(1, 3, "public"), gauge(2, 3, "private")

    view = shared_view(public, [PUBLIC_NAMES])

    assert view is not None and set(view["attrs"]) == {LEVEL}
    assert view["scope"] == ["/kamo"] and view["createdAt"] == public["createdAt"]
    assert shared_view(private, [PUBLIC_NAMES]) is None
    assert shared_view(gauge(3, 3, "public", (PUMP,)), [PUBLIC_NAMES]) is None


def test_the_attributes_of_every_selecting_grant_are_united() -> None:
    everything = grant(
        Selection(frozenset({GAUGE}), None, parse_q("level>2", TERMS.expand)), None, 2
    )
    status = grant(Selection(frozenset({GAUGE}), frozenset({STATUS})), None, 3)

    assert set(shared_view(gauge(1, 1, "public"), [PUBLIC_NAMES, status])["attrs"]) == {
        LEVEL,
        STATUS,
    }
    assert len(shared_view(gauge(1, 3, "x"), [PUBLIC_NAMES, everything])["attrs"]) == 4


def test_a_hidden_attribute_cannot_be_probed_with_q() -> None:
    query = EntityQuery(q=parse_q('access=="public"', TERMS.expand))
    narrowing = narrow(query, [PUBLIC_NAMES])

    assert not narrowing.exact and narrowing.single is None
    assert narrowing.finish(gauge(1, 3, "public")) is None  # the grantee cannot see status


def test_a_simple_narrowing_is_one_exact_query() -> None:
    query = EntityQuery(q=parse_q("level>2", TERMS.expand), limit=5, offset=10)
    narrowing = narrow(query, [PUBLIC_NAMES])

    single = narrowing.single
    assert (
        single is not None
        and single.types == (GAUGE,)
        and (single.limit, single.offset)
        == (
            5,
            10,
        )
    )
    assert matches(single, gauge(1, 3, "public")) and not matches(single, gauge(1, 3, "private"))
    assert not matches(single, gauge(1, 2, "public"))


def test_multi_typed_entities_need_a_type_of_the_query_and_one_of_the_grant() -> None:
    pumps = grant(Selection(frozenset({PUMP})))
    both = gauge(1, 3, "x", (GAUGE, PUMP))

    narrowing = narrow(EntityQuery(types=(GAUGE,)), [pumps])

    assert narrowing.single is not None and matches(narrowing.single, both)
    assert not matches(narrowing.single, gauge(2, 3, "x", (GAUGE,)))


def test_grants_with_different_attributes_are_grouped_conservatively() -> None:
    levels = grant(Selection(frozenset({GAUGE}), frozenset({LEVEL})), None, 1)
    owners = grant(Selection(frozenset({PUMP}), frozenset({OWNER})), None, 2)
    query = EntityQuery(q=parse_q("level>2", TERMS.expand))

    narrowing = narrow(query, [levels, owners])

    assert not narrowing.exact  # pumps do not share level: the query cannot vouch for them
    pump = gauge(2, 3, "x", (PUMP,))
    assert any(matches(q, pump) for q in narrowing.queries)
    assert narrowing.finish(pump) is None


def test_hidden_attrs_in_the_attrs_filter_make_it_inexact() -> None:
    query = EntityQuery(attrs=(STATUS,))
    narrowing = narrow(query, [grant(Selection(frozenset({GAUGE}), frozenset({LEVEL})))])

    assert not narrowing.exact and narrowing.finish(gauge(1, 3, "x")) is None


def test_a_grants_near_does_not_reorder_and_two_geo_queries_do_not_fit_one_slot() -> None:
    near = parse_geo_query("near;maxDistance==1000", "Point", "[1,1]", None, str)
    within = parse_geo_query("within", "Polygon", "[[[0,0],[2,0],[2,2],[0,2],[0,0]]]", None, str)
    nearby = grant(Selection(frozenset({GAUGE}), None, None, near))
    inside = grant(Selection(frozenset({GAUGE}), None, None, within))

    assert narrow(EntityQuery(), [nearby]).queries[0].geo is None
    assert not narrow(EntityQuery(), [nearby]).exact
    assert narrow(EntityQuery(), [inside]).single is not None
    assert not narrow(EntityQuery(geo=near), [inside]).exact


def test_ordering_by_a_hidden_attribute_is_dropped() -> None:
    ordering = parse_ordering("access;asc,level;desc", TERMS.expand)
    narrowing = narrow(EntityQuery(ordering=ordering), [PUBLIC_NAMES])

    (narrowed,) = narrowing.queries
    assert narrowed.ordering is not None
    assert [key.path.attr for key in narrowed.ordering.keys] == [LEVEL]


def test_no_grant_means_nothing_to_query() -> None:
    narrowing = narrow(EntityQuery(), [])

    assert narrowing.queries == () and narrowing.combined is None and narrowing.exact


def test_grants_apply_to_members_of_the_grantee_tenant_or_the_named_principal() -> None:
    named = grant(Selection(frozenset({GAUGE})), Grantee(principal=KAGAWA.id), 2)
    other = Principal("x", "https://id.kagawa.example", {"kagawa": Role.READER})
    nobody = Principal("n", "https://id.elsewhere.example", {"elsewhere": Role.ADMIN})

    assert applicable([PUBLIC_NAMES, named], "takamatsu", KAGAWA, Permission.READ) == [
        PUBLIC_NAMES,
        named,
    ]
    assert applicable([PUBLIC_NAMES, named], "takamatsu", other, Permission.READ) == [PUBLIC_NAMES]
    assert applicable([PUBLIC_NAMES], "takamatsu", nobody, Permission.READ) == []
    assert applicable([PUBLIC_NAMES], "takamatsu", KAGAWA, Permission.SUBSCRIBE) == []
    assert applicable([PUBLIC_NAMES], "kagawa", KAGAWA, Permission.READ) == []


def test_a_request_is_parsed_with_the_apis_parsers_and_kept_losslessly() -> None:
    body = {
        "grantee": {"tenant": "Kagawa"},
        "permissions": ["subscribe"],
        "types": ["Gauge"],
        "attrs": ["level", "location"],
        "q": 'access=="public";level>=2',
        "geoQ": {
            "georel": "within",
            "geometry": "Polygon",
            "coordinates": [[[0, 0], [2, 0], [2, 2], [0, 0]]],
        },
    }
    grantee, permissions, selection = grant_docs.parse_request(body, TERMS)
    made = Grant("urn:g:9", "takamatsu", grantee, permissions, selection, "admin", "t")

    assert grantee == Grantee(tenant="kagawa")
    assert permissions == {Permission.READ, Permission.SUBSCRIBE}
    assert selection.types == {GAUGE} and selection.attrs == {LEVEL, LOCATION}
    assert grant_docs.from_doc(grant_docs.to_doc(made)) == made
    shown = grant_docs.render(made, TERMS)
    assert shown["types"] == ["Gauge"] and shown["q"] == 'access=="public";level>=2'


@pytest.mark.parametrize(
    "body",
    [
        {"types": ["Gauge"]},
        {"grantee": {"tenant": "kagawa"}, "types": []},
        {"grantee": {"tenant": "kagawa"}, "types": ["Gauge"], "permissions": ["write"]},
        {"grantee": {"tenant": "kagawa"}, "types": ["Gauge"], "q": "bridge{level>2}"},
        {"grantee": {"tenant": "kagawa"}, "types": ["Gauge"], "q": "level>"},
        {"grantee": {"tenant": "../x"}, "types": ["Gauge"]},
    ],
)
def test_bad_requests_are_refused(body) -> None:
    with pytest.raises(BadRequestData):
        grant_docs.parse_request(body, TERMS)


async def test_the_service_keeps_grants_across_a_restart(tmp_path: Path) -> None:
    body = {"grantee": {"tenant": "kagawa"}, "types": ["Gauge"], "q": "level>2"}
    grantee, permissions, selection = grant_docs.parse_request(body, TERMS)
    store = SqliteStore(tmp_path)
    await store.start()
    try:
        service = GrantService(store)
        await service.start()
        made = await service.create("takamatsu", grantee, permissions, selection, KAGAWA.id)
        gone = await service.create("takamatsu", grantee, permissions, selection, KAGAWA.id)
        await service.revoke("takamatsu", gone.id)
        with pytest.raises(BadRequestData):
            await service.create("kagawa", grantee, permissions, selection, KAGAWA.id)

        again = GrantService(store)
        await again.start()

        assert again.list("takamatsu") == [made]
        assert again.get("takamatsu", made.id).created_by == KAGAWA.id
        assert again.applicable("takamatsu", KAGAWA, Permission.READ) == [made]
        assert again.received(KAGAWA) == [made]
        with pytest.raises(ResourceNotFound):
            again.get("kagawa", made.id)
    finally:
        await store.close()


async def test_a_narrowed_query_is_answered_by_the_sqlite_store(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.start()
    try:
        tenant = await store.tenant("takamatsu", create=True)
        for doc in (gauge(1, 3, "public"), gauge(2, 1, "public"), gauge(3, 3, "private")):
            await tenant.create(doc | {"modifiedAt": doc["createdAt"]})
        await tenant.create(gauge(4, 3, "public", (GAUGE, PUMP)) | {"modifiedAt": "x"})
        narrowing = narrow(
            EntityQuery(types=(PUMP,), q=parse_q("level>2", TERMS.expand)), [PUBLIC_NAMES]
        )

        assert narrowing.single is not None
        page = await tenant.query(narrowing.single)

        assert [doc["id"] for doc in page.entities] == ["urn:ngsi-ld:Gauge:4"]
        assert set(narrowing.finish(page.entities[0])["attrs"]) == {LEVEL}
    finally:
        await store.close()
