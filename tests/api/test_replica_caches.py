"""What a replica does with the records another replica saved: the services' ``changed`` hooks,
which the ``Follower`` calls for each change the shared store reports (docs/design.md, "Several
replicas"). One broker on a real SQLite directory stands for replica B; the records replica A
would have saved are real records, made by B's own API and then removed from B's memory."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from broker.services.following import Follower
from broker.store.base import RecordChange

from tests.conftest import API, broker_client, gauge, make_settings
from tests.http_sink import Sink

JSON = {"Content-Type": "application/json"}
SUB = "urn:ngsi-ld:Subscription:other-replica"


def gauges_to(sink: Sink) -> dict[str, Any]:
    """A subscription to every RiverGauge, notifying ``sink``."""
    return {
        "id": SUB,
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": sink.url}},
    }


def runtime(client: broker_client) -> Any:
    return client.app.state.runtime


async def saved(rt: Any, kind: str) -> list[dict[str, Any]]:
    store = await rt.store.tenant("")
    records: list[dict[str, Any]] = await store.records(kind)
    return records


@pytest.fixture
async def replica(tmp_path: Any) -> Any:
    app = broker_client(make_settings(tmp_path / "data"))
    http = await app.__aenter__()
    try:
        yield app, http
    finally:
        await app.__aexit__()


async def test_a_subscription_made_elsewhere_notifies_this_replicas_writes_until_deleted(
    replica: tuple[broker_client, httpx.AsyncClient], sink: Sink
) -> None:
    app, http = replica
    rt = runtime(app)
    assert (
        await http.post(f"{API}/subscriptions", json=gauges_to(sink), headers=JSON)
    ).status_code == 201
    (doc,) = await saved(rt, "subscription")
    await http.delete(f"{API}/subscriptions/{SUB}")
    assert (await http.post(f"{API}/entities", json=gauge(), headers=JSON)).status_code == 201
    await asyncio.sleep(0.2)
    assert sink.received == []

    await rt.subscriptions.changed(RecordChange("", "subscription", SUB, doc, origin="a"))
    assert (await http.get(f"{API}/subscriptions/{SUB}")).status_code == 200
    patch = {"value": 2.5}
    await http.patch(f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1/attrs/level", json=patch)
    await sink.wait_for(1)

    held = rt.subscriptions._registry.get("", SUB)
    counted = {**doc, "times_sent": 7, "last_success": "2030-01-01T00:00:00Z"}
    await rt.subscriptions.changed(RecordChange("", "subscription", SUB, counted, origin="a"))
    assert rt.subscriptions._registry.get("", SUB) is held  # status only: nothing restarted

    await rt.subscriptions.changed(RecordChange("", "subscription", SUB, None))
    assert (await http.get(f"{API}/subscriptions/{SUB}")).status_code == 404
    await http.patch(f"{API}/entities/urn:ngsi-ld:RiverGauge:kamo-1/attrs/level", json=patch)
    await asyncio.sleep(0.3)
    assert len(sink.received) == 1


async def test_registrations_and_devices_made_elsewhere_are_served_here(
    replica: tuple[broker_client, httpx.AsyncClient],
) -> None:
    app, http = replica
    rt = runtime(app)
    registration = {
        "id": "urn:ngsi-ld:ContextSourceRegistration:elsewhere",
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Bridge"}]}],
        "endpoint": "http://127.0.0.1:9/",
    }
    made = await http.post(f"{API}/csourceRegistrations", json=registration, headers=JSON)
    assert made.status_code == 201, made.text
    (reg_doc,) = await saved(rt, "csourceRegistration")
    rt.registrations.drop_tenant("")  # B had not heard of it
    path = f"{API}/csourceRegistrations/{registration['id']}"
    assert (await http.get(path)).status_code == 404
    change = RecordChange("", "csourceRegistration", registration["id"], reg_doc, "a")
    await rt.registrations.changed(change)
    assert (await http.get(path)).status_code == 200
    await rt.registrations.changed(RecordChange("", "csourceRegistration", change.key, None))
    assert (await http.get(path)).status_code == 404


async def test_a_reload_makes_the_caches_hold_exactly_what_the_store_holds(
    replica: tuple[broker_client, httpx.AsyncClient], sink: Sink
) -> None:
    app, http = replica
    rt = runtime(app)
    assert (
        await http.post(f"{API}/subscriptions", json=gauges_to(sink), headers=JSON)
    ).status_code == 201
    (doc,) = await saved(rt, "subscription")
    stale = {**doc, "id": "urn:ngsi-ld:Subscription:gone"}
    await rt.subscriptions.changed(RecordChange("", "subscription", stale["id"], stale, "a"))
    assert len(rt.subscriptions.list("")) == 2

    class StoreRecords:
        """The store's records as the follower reads them, by key (what a shared store's
        replication answers)."""

        replica = "b"

        async def records(self, tenant: str, kind: str) -> dict[str, dict[str, Any]]:
            docs = await (await rt.store.tenant(tenant)).records(kind)
            return {doc["id"]: doc for doc in docs}

    follower = Follower(rt.store, StoreRecords())  # type: ignore[arg-type]
    follower.add(rt.subscriptions)
    await follower.reload(None)
    assert [sub.id for sub in rt.subscriptions.list("")] == [SUB]


async def test_a_tenant_created_elsewhere_is_known_here_until_deleted(tmp_path: Any) -> None:
    from broker.ngsild.errors import NonexistentTenant
    from broker.services.tenants import Quotas, Tenant, TenantService
    from broker.settings import TenantSettings
    from broker.store.sqlite import SqliteStore

    store = SqliteStore(tmp_path)
    await store.start()
    try:
        service = TenantService(store, TenantSettings(), explicit=True)
        await service.start()
        with pytest.raises(NonexistentTenant):
            service.require("kyoto")
        kyoto = Tenant("kyoto", {}, Quotas(0, 0, 0.0), None, "2030-01-01T00:00:00Z")
        await service.changed(RecordChange("", "tenant", "kyoto", kyoto.as_json(), "a"))
        service.require("kyoto")
        assert service.held_keys("tenant") == {("", "kyoto")}
        await service.changed(RecordChange("", "tenant", "kyoto", None))
        with pytest.raises(NonexistentTenant):
            service.require("kyoto")
    finally:
        await store.close()
