"""Several towns on one platform (issue 12): authentication, roles, explicit tenants, sharing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import API, gauge
from tests.http_sink import Sink
from tests.towns import NEIGHBOUR, OTHER, OWNER, Platform, platform

ERR = "urn:toshi:errors:"
NGSI_ERR = "https://uri.etsi.org/ngsi-ld/errors/"


@pytest.fixture
async def towns(tmp_path: Path) -> AsyncIterator[Platform]:
    async with platform(tmp_path / "data") as running:
        yield running


async def seed(towns: Platform) -> None:
    """The owner town's data: two gauges, a shelter and a closed road."""
    editor = towns.member(OWNER, "editor")
    shelter = {"id": "urn:ngsi-ld:Shelter:s1", "type": "Shelter", "capacity": 300}
    road = {"id": "urn:ngsi-ld:RoadClosure:r1", "type": "RoadClosure", "reason": "flood"}
    for body in (gauge("urn:ngsi-ld:RiverGauge:g1", 1.5), gauge("urn:ngsi-ld:RiverGauge:g2", 3.1)):
        assert (
            await towns.http.post(f"{API}/entities", json=body, headers=editor)
        ).status_code == 201
    for body in (shelter, road):
        assert (
            await towns.http.post(f"{API}/entities", json=body, headers=editor)
        ).status_code == 201


async def test_no_token_is_401_with_a_bearer_challenge(towns: Platform) -> None:
    answer = await towns.http.get(f"{API}/entities", params={"type": "RiverGauge"})
    assert answer.status_code == 401
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")
    assert answer.json()["type"] == ERR + "Unauthorized"


async def test_an_expired_token_is_401_saying_so(towns: Platform) -> None:
    expired = towns.token(f"{OWNER}:reader", exp=1_700_000_000, iat=1_699_999_000)
    answer = await towns.http.get(
        f"{API}/entities",
        params={"type": "RiverGauge"},
        headers={"Authorization": f"Bearer {expired}", "NGSILD-Tenant": OWNER},
    )
    assert answer.status_code == 401
    assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
    assert "expired" in answer.headers["WWW-Authenticate"]
    assert "Traceback" not in answer.text


async def test_a_reader_reads_but_may_not_write(towns: Platform) -> None:
    await seed(towns)
    reader = towns.member(OWNER, "reader")
    got = await towns.http.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:g1", headers=reader)
    assert got.status_code == 200
    refused = await towns.http.post(f"{API}/entities", json=gauge("urn:x:g9"), headers=reader)
    assert refused.status_code == 403
    assert refused.json()["type"] == ERR + "Forbidden"
    assert "editor" in refused.json()["detail"]


async def test_another_town_without_a_grant_is_forbidden_and_learns_nothing(
    towns: Platform,
) -> None:
    await seed(towns)
    outsider = towns.as_(f"{OTHER}:admin", tenant=OWNER)
    existing = await towns.http.get(f"{API}/entities/urn:ngsi-ld:RiverGauge:g1", headers=outsider)
    missing_tenant = await towns.http.get(
        f"{API}/entities",
        params={"type": "X"},
        headers=towns.as_(f"{OTHER}:admin", tenant="atlantis"),
    )
    assert existing.status_code == missing_tenant.status_code == 403
    assert OTHER not in existing.text and "RiverGauge" not in existing.text


async def test_tenants_are_explicit(towns: Platform) -> None:
    holder = towns.as_("atlantis:editor", tenant="atlantis")
    made = await towns.http.post(f"{API}/entities", json=gauge(), headers=holder)
    assert made.status_code == 404
    assert made.json()["type"] == NGSI_ERR + "NonexistentTenant"
    listed = await towns.http.get("/admin/tenants", headers=towns.as_("operator"))
    assert [t["name"] for t in listed.json()] == sorted([OWNER, NEIGHBOUR, OTHER])
    assert listed.json()[0]["displayName"] == {"en": "Marugame"}


async def test_a_grant_shows_only_what_it_shares(towns: Platform) -> None:
    await seed(towns)
    await towns.share(
        {"grantee": {"tenant": NEIGHBOUR}, "types": ["RiverGauge"], "attrs": ["level"]}
    )
    neighbour = towns.as_(f"{NEIGHBOUR}:reader", tenant=OWNER)
    found = await towns.http.get(
        f"{API}/entities", params={"type": "RiverGauge,Shelter", "count": "true"}, headers=neighbour
    )
    assert found.status_code == 200
    assert found.headers["NGSILD-Results-Count"] == "2"
    assert sorted(e["id"] for e in found.json()) == [
        "urn:ngsi-ld:RiverGauge:g1",
        "urn:ngsi-ld:RiverGauge:g2",
    ]
    assert all(set(e) == {"id", "type", "level"} for e in found.json())
    # Outside the grant is as if it did not exist: 404, never 403.
    shelter = await towns.http.get(f"{API}/entities/urn:ngsi-ld:Shelter:s1", headers=neighbour)
    assert shelter.status_code == 404
    # Hidden attributes cannot be probed with q.
    probed = await towns.http.get(
        f"{API}/entities", params={"type": "RiverGauge", "q": 'alert=="none"'}, headers=neighbour
    )
    assert probed.json() == []
    types = await towns.http.get(f"{API}/types", headers=neighbour)
    assert types.json()["typeList"] == ["RiverGauge"]
    attributes = await towns.http.get(f"{API}/attributes", headers=neighbour)
    assert attributes.json()["attributeList"] == ["level"]
    written = await towns.http.patch(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:g1/attrs/level",
        json={"value": 9},
        headers=neighbour,
    )
    assert written.status_code == 403


async def test_a_grant_narrowed_by_q_and_listed_with_who_made_it(towns: Platform) -> None:
    await seed(towns)
    grant = await towns.share(
        {"grantee": {"tenant": NEIGHBOUR}, "types": ["RiverGauge"], "q": "level>2"}
    )
    assert grant["createdBy"].endswith(f"{OWNER}_admin") and grant["createdAt"]
    neighbour = towns.as_(f"{NEIGHBOUR}:reader", tenant=OWNER)
    found = await towns.http.get(
        f"{API}/entities", params={"type": "RiverGauge"}, headers=neighbour
    )
    assert [e["id"] for e in found.json()] == ["urn:ngsi-ld:RiverGauge:g2"]
    listed = await towns.http.get("/admin/grants", headers=towns.member(OWNER, "admin"))
    assert [g["id"] for g in listed.json()] == [grant["id"]]
    assert (
        await towns.http.get("/admin/grants", headers=towns.member(NEIGHBOUR, "editor"))
    ).status_code == 403


async def test_a_neighbours_subscription_sees_the_share_and_stops_at_revocation(
    towns: Platform, sink: Sink
) -> None:
    await seed(towns)
    grant = await towns.share(
        {
            "grantee": {"tenant": NEIGHBOUR},
            "permissions": ["subscribe"],
            "types": ["RiverGauge"],
            "attrs": ["level"],
        }
    )
    neighbour = towns.as_(f"{NEIGHBOUR}:subscriber", tenant=OWNER)
    subscription = {
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}, {"type": "Shelter"}],
        "notification": {"endpoint": {"uri": sink.url}},
    }
    made = await towns.http.post(f"{API}/subscriptions", json=subscription, headers=neighbour)
    assert made.status_code == 201, made.text
    editor = towns.member(OWNER, "editor")
    await towns.http.patch(
        f"{API}/entities/urn:ngsi-ld:Shelter:s1/attrs", json={"capacity": 250}, headers=editor
    )
    await towns.http.patch(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:g1/attrs",
        json={"level": 2.2, "alert": "warning"},
        headers=editor,
    )
    await sink.wait_for(1)
    (entity,) = sink.received[0][1]["data"]
    assert entity["id"] == "urn:ngsi-ld:RiverGauge:g1"
    assert set(entity) == {"id", "type", "level"}  # the alert is not shared
    revoked = await towns.http.delete(
        f"/admin/grants/{grant['id']}", headers=towns.member(OWNER, "admin")
    )
    assert revoked.status_code == 204
    await towns.http.patch(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:g2/attrs", json={"level": 4.0}, headers=editor
    )
    with pytest.raises(TimeoutError):
        await sink.wait_for(2, seconds=1.5)
    assert len(sink.received) == 1
    # Its own town's listing of subscriptions does not show it to others.
    theirs = await towns.http.get(f"{API}/subscriptions", headers=towns.member(OWNER, "subscriber"))
    assert theirs.json() == []


async def test_a_subscriber_sees_and_changes_only_its_own_subscriptions(
    towns: Platform, sink: Sink
) -> None:
    subscription = {
        "id": "urn:ngsi-ld:Subscription:alice",
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": sink.url}},
    }
    alice = towns.as_(f"{OWNER}:subscriber", tenant=OWNER, sub="alice")
    bob = towns.as_(f"{OWNER}:subscriber", tenant=OWNER, sub="bob")
    assert (
        await towns.http.post(f"{API}/subscriptions", json=subscription, headers=alice)
    ).status_code == 201
    mine = await towns.http.get(
        f"{API}/subscriptions/urn:ngsi-ld:Subscription:alice", headers=alice
    )
    assert mine.status_code == 200
    for answer in (
        await towns.http.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:alice", headers=bob),
        await towns.http.delete(f"{API}/subscriptions/urn:ngsi-ld:Subscription:alice", headers=bob),
    ):
        assert answer.status_code == 404
    assert (await towns.http.get(f"{API}/subscriptions", headers=bob)).json() == []
    editor = towns.member(OWNER, "editor")
    assert len((await towns.http.get(f"{API}/subscriptions", headers=editor)).json()) == 1


async def test_api_keys_are_shown_once_and_revocable(towns: Platform) -> None:
    admin = towns.member(OWNER, "admin")
    made = await towns.http.post(
        "/admin/apikeys", json={"name": "gateway", "role": "editor"}, headers=admin
    )
    assert made.status_code == 201
    secret = made.json()["key"]
    listed = await towns.http.get("/admin/apikeys", headers=admin)
    assert secret not in listed.text and listed.json()[0]["name"] == "gateway"
    gateway = {"Authorization": f"Bearer {secret}", "NGSILD-Tenant": OWNER}
    assert (
        await towns.http.post(f"{API}/entities", json=gauge(), headers=gateway)
    ).status_code == 201
    elsewhere = {**gateway, "NGSILD-Tenant": NEIGHBOUR}
    assert (
        await towns.http.post(f"{API}/entities", json=gauge(), headers=elsewhere)
    ).status_code == 403
    key_id = made.json()["id"]
    assert (await towns.http.delete(f"/admin/apikeys/{key_id}", headers=admin)).status_code == 204
    assert (await towns.http.get(f"{API}/types", headers=gateway)).status_code == 401
    operator_key = await towns.http.post(
        "/admin/apikeys", json={"name": "root", "role": "operator"}, headers=admin
    )
    assert operator_key.status_code == 403  # a town's admin cannot make platform keys


async def test_quotas_answer_429_with_retry_after(tmp_path: Path) -> None:
    async with platform(tmp_path / "q") as towns:
        operator = towns.as_("operator")
        changed = await towns.http.patch(
            f"/admin/tenants/{OWNER}", json={"quotas": {"maxEntities": 1}}, headers=operator
        )
        assert changed.status_code == 200
        editor = towns.member(OWNER, "editor")
        assert (
            await towns.http.post(f"{API}/entities", json=gauge("urn:x:1"), headers=editor)
        ).status_code == 201
        over = await towns.http.post(f"{API}/entities", json=gauge("urn:x:2"), headers=editor)
        assert over.status_code == 429 and int(over.headers["Retry-After"]) > 0
        await towns.http.patch(
            f"/admin/tenants/{NEIGHBOUR}",
            json={"quotas": {"requestsPerSecond": 1}},
            headers=operator,
        )
        reader = towns.member(NEIGHBOUR, "reader")
        answers = [
            (await towns.http.get(f"{API}/types", headers=reader)).status_code for _ in range(4)
        ]
        assert answers[:2] == [200, 200] and answers[-1] == 429


async def test_egress_refuses_metadata_and_denied_names(tmp_path: Path) -> None:
    overrides = {"auth": {"egress": {"deny": ["127.0.0.0/8"]}}}
    async with platform(tmp_path / "e", **overrides) as towns:
        subscriber = towns.member(OWNER, "subscriber")
        for uri in ("http://169.254.169.254/latest/meta-data", "http://localhost:8080/notify"):
            body = {
                "type": "Subscription",
                "entities": [{"type": "RiverGauge"}],
                "notification": {"endpoint": {"uri": uri}},
            }
            refused = await towns.http.post(f"{API}/subscriptions", json=body, headers=subscriber)
            assert refused.status_code == 400, uri
            assert "refused" in refused.json()["detail"]


async def test_deleting_a_tenant_removes_everything_it_held(towns: Platform) -> None:
    await seed(towns)
    editor = {**towns.member(OWNER, "editor"), "Content-Type": "application/json"}
    hosted = await towns.http.post(
        f"{API}/jsonldContexts", json={"@context": {"x": "urn:x"}}, headers=editor
    )
    assert hosted.status_code == 201
    operator = towns.as_("operator")
    assert (await towns.http.delete(f"/admin/tenants/{OWNER}", headers=operator)).status_code == 204
    gone = await towns.http.get(f"{API}/types", headers=towns.member(OWNER, "reader"))
    assert gone.status_code == 404 and gone.json()["type"] == NGSI_ERR + "NonexistentTenant"
    again = await towns.http.post("/admin/tenants", json={"name": OWNER}, headers=operator)
    assert again.status_code == 201
    fresh = await towns.http.get(f"{API}/types", headers=towns.member(OWNER, "reader"))
    assert fresh.json()["typeList"] == []
    context = hosted.headers["Location"]
    assert (await towns.http.get(context, headers=towns.member(OWNER, "reader"))).status_code == 404
    body = {"id": "urn:ngsi-ld:X:1", "type": "X", "@context": context}
    used = await towns.http.post(
        f"{API}/entities", json=body, headers={**editor, "Content-Type": "application/ld+json"}
    )
    assert used.status_code == 400
    assert "no @context is hosted" in used.json()["detail"]


async def test_unauthenticated_health_and_operator_only_metrics(towns: Platform) -> None:
    health = await towns.http.get("/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # no paths, versions
    assert (await towns.http.get("/metrics")).status_code == 401
    assert (
        await towns.http.get("/metrics", headers=towns.member(OWNER, "editor"))
    ).status_code == 403
    assert (await towns.http.get("/metrics", headers=towns.as_("operator"))).status_code == 200


async def test_without_authentication_everything_works_as_before(client: httpx.AsyncClient) -> None:
    assert (
        await client.post(f"{API}/entities", json=gauge(), headers={"NGSILD-Tenant": "kyoto"})
    ).status_code == 201
    assert (await client.get("/admin/tenants")).status_code == 200


async def test_a_town_admin_sees_only_its_own_metrics(towns: Platform, sink: Sink) -> None:
    for town in (OWNER, NEIGHBOUR):
        body = {
            "type": "Subscription",
            "entities": [{"type": "RiverGauge"}],
            "notification": {"endpoint": {"uri": sink.url}},
        }
        made = await towns.http.post(
            f"{API}/subscriptions", json=body, headers=towns.member(town, "subscriber")
        )
        assert made.status_code == 201
    mine = await towns.http.get("/metrics", headers=towns.member(OWNER, "admin"))
    assert mine.status_code == 200
    samples = [line for line in mine.text.splitlines() if line and not line.startswith("#")]
    assert samples == [f'toshi_subscriptions{{tenant="{OWNER}"}} 1']
    everything = await towns.http.get("/metrics", headers=towns.as_("operator"))
    assert (
        f'tenant="{NEIGHBOUR}"' in everything.text and "toshi_notification_lag" in everything.text
    )


async def test_a_joining_subscription_through_a_grant_gets_no_unshared_linked_entity(
    towns: Platform, sink: Sink
) -> None:
    await seed(towns)
    editor = towns.member(OWNER, "editor")
    bridge = {"id": "urn:ngsi-ld:Bridge:sanjo", "type": "Bridge", "load": 12}
    assert (
        await towns.http.post(f"{API}/entities", json=bridge, headers=editor)
    ).status_code == 201
    await towns.share(
        {"grantee": {"tenant": NEIGHBOUR}, "permissions": ["subscribe"], "types": ["RiverGauge"]}
    )
    body = {
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": sink.url}, "join": "inline"},
    }
    neighbour = towns.as_(f"{NEIGHBOUR}:subscriber", tenant=OWNER)
    assert (
        await towns.http.post(f"{API}/subscriptions", json=body, headers=neighbour)
    ).status_code == 201
    await towns.http.patch(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:g1/attrs", json={"level": 2.5}, headers=editor
    )
    await sink.wait_for(1)
    assert "load" not in str(sink.received[0][1])  # the bridge is not shared
    joined = await towns.http.get(
        f"{API}/entities/urn:ngsi-ld:RiverGauge:g1", params={"join": "inline"}, headers=neighbour
    )
    assert joined.status_code == 200 and "load" not in joined.text
