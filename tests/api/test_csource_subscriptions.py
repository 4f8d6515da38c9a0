"""Registration subscriptions over HTTP (GS CIM 009 v1.8.1 §5.11), notified to a real local
HTTP receiver."""

from __future__ import annotations

import asyncio

import httpx

from tests.api.test_registrations import REGS, registration
from tests.conftest import API
from tests.http_sink import Sink

JSON = {"Content-Type": "application/json"}
SUBS = f"{API}/csourceSubscriptions"


def csource_subscription(sink: Sink, **members: object) -> dict:
    return {
        "id": "urn:ngsi-ld:Subscription:registry",
        "type": "Subscription",
        "entities": [{"type": "RiverGauge"}],
        "notification": {"endpoint": {"uri": sink.url}},
        **members,
    }


async def test_registration_changes_are_notified_with_their_reason(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    created = await client.post(SUBS, json=csource_subscription(sink), headers=JSON)
    assert created.status_code == 201, created.text
    await client.post(REGS, json=registration(), headers=JSON)
    await sink.wait_for(1)
    reg_id = registration()["id"]
    await client.patch(f"{REGS}/{reg_id}", json={"endpoint": "http://b.example"}, headers=JSON)
    await sink.wait_for(2)
    moved = [{"entities": [{"type": "RainGauge"}]}]
    await client.patch(f"{REGS}/{reg_id}", json={"information": moved}, headers=JSON)
    await sink.wait_for(3)
    reasons = [body["triggerReason"] for _, body in sink.received]
    assert reasons == ["newlyMatching", "updated", "noLongerMatching"]
    first = sink.received[0][1]
    assert first["subscriptionId"] == "urn:ngsi-ld:Subscription:registry"
    assert [reg["id"] for reg in first["data"]] == [reg_id]
    for _ in range(100):  # the receiver's 200 reaches the broker a moment after the body
        got = await client.get(f"{SUBS}/urn:ngsi-ld:Subscription:registry")
        if got.json()["notification"].get("timesSent") == 3:
            break
        await asyncio.sleep(0.02)
    assert got.json()["notification"]["timesSent"] == 3


async def test_a_new_subscription_is_told_what_already_matches(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    await client.post(REGS, json=registration(), headers=JSON)
    other = registration("urn:r:rain", information=[{"entities": [{"type": "RainGauge"}]}])
    await client.post(REGS, json=other, headers=JSON)
    await client.post(SUBS, json=csource_subscription(sink), headers=JSON)
    await sink.wait_for(1)
    _, body = sink.received[0]
    assert body["triggerReason"] == "newlyMatching"
    assert [reg["id"] for reg in body["data"]] == [registration()["id"]]
    listed = await client.get(SUBS)
    assert [sub["id"] for sub in listed.json()] == ["urn:ngsi-ld:Subscription:registry"]
    assert (await client.delete(f"{SUBS}/urn:ngsi-ld:Subscription:registry")).status_code == 204
    assert (await client.get(f"{SUBS}/urn:ngsi-ld:Subscription:registry")).status_code == 404
