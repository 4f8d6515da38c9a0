"""ImplicitlyCreated @contexts: what a subscription's @context becomes when no URL stands for it."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.conftest import API, ContextServer, broker_client, gauge, make_settings
from tests.http_sink import Sink

JSON = {"Content-Type": "application/json"}
LD = {"Content-Type": "application/ld+json"}
CITY = {"city": "https://example.org/city#", "RiverGauge": "city:RiverGauge", "level": "city:level"}


def subscription(sink: Sink, number: int, context: object) -> dict:
    return {
        "id": f"urn:ngsi-ld:Subscription:river-{number}",
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": sink.url}, "attributes": ["level"]},
        "@context": context,
    }


async def test_a_subscription_context_without_one_url_is_hosted_for_its_notifications(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    created = await client.post(
        f"{API}/subscriptions", json=subscription(sink, 1, [CITY]), headers=LD
    )
    assert created.status_code == 201, created.text
    got = (await client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:river-1")).json()
    implicit = got["jsonldContext"]
    assert implicit.startswith("http://toshi/ngsi-ld/v1/jsonldContexts/")
    path = implicit.removeprefix("http://toshi")
    assert (await client.get(path)).json() == {"@context": [CITY]}
    details = (await client.get(path, params={"details": "true"})).json()
    assert details["kind"] == "ImplicitlyCreated" and details["URL"] == implicit
    listed = await client.get(f"{API}/jsonldContexts", params={"kind": "ImplicitlyCreated"})
    assert listed.json() == [implicit]

    # Notifications in JSON name it, and their short names are those it defines.
    await client.post(f"{API}/entities", json={**gauge(), "@context": [CITY]}, headers=LD)
    await sink.wait_for(1)
    headers, body = sink.received[0]
    assert headers["link"] == (
        f'<{implicit}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'
    )
    assert body["data"][0]["type"] == "RiverGauge"

    # The same @context is hosted once.
    await client.post(f"{API}/subscriptions", json=subscription(sink, 2, [CITY]), headers=LD)
    again = (await client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:river-2")).json()
    assert again["jsonldContext"] == implicit
    assert (await client.delete(path, params={"reload": "true"})).status_code == 400
    assert (await client.delete(path)).status_code == 204


async def test_a_context_one_url_stands_for_makes_none(
    client: httpx.AsyncClient, sink: Sink, context_server: ContextServer
) -> None:
    city = context_server.url("city.jsonld")
    for number, context in enumerate([None, city, [city]]):
        body = subscription(sink, number, context)
        if context is None:
            del body["@context"]
        response = await client.post(
            f"{API}/subscriptions", json=body, headers=JSON if context is None else LD
        )
        assert response.status_code == 201, response.text
        got = (await client.get(f"{API}/subscriptions/{body['id']}")).json()
        assert "jsonldContext" not in got
    implicit = await client.get(f"{API}/jsonldContexts", params={"kind": "ImplicitlyCreated"})
    assert implicit.json() == []


async def test_a_subscription_outlives_the_deletion_of_its_implicit_context(
    tmp_path: Path, sink: Sink
) -> None:
    settings = make_settings(tmp_path / "data")
    async with broker_client(settings) as client:
        created = await client.post(
            f"{API}/subscriptions", json=subscription(sink, 3, [CITY]), headers=LD
        )
        assert created.status_code == 201
        got = (await client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:river-3")).json()
        assert (
            await client.delete(got["jsonldContext"].removeprefix("http://toshi"))
        ).status_code == 204
    async with broker_client(settings) as client:  # a restart: the subscription is loaded
        kept = await client.get(f"{API}/subscriptions/urn:ngsi-ld:Subscription:river-3")
        assert kept.status_code == 200
        await client.post(f"{API}/entities", json={**gauge(), "@context": [CITY]}, headers=LD)
        await sink.wait_for(1)
        assert sink.received[0][1]["data"][0]["type"] == "RiverGauge"
