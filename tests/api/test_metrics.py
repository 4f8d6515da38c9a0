"""``/metrics``: delivery counters, queue depth, lag and subscriptions, in Prometheus format."""

from __future__ import annotations

import asyncio
import re

import httpx

from tests.api.test_subscriptions import subscription
from tests.conftest import API, gauge
from tests.http_sink import Sink

JSON = {"Content-Type": "application/json"}


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{key}="{value}"' for key, value in labels.items())
    pattern = re.escape(name + (f"{{{wanted}}}" if labels else "")) + r" (\S+)"
    match = re.search(r"^" + pattern + "$", text, re.MULTILINE)
    assert match is not None, f"{name} {labels} not in metrics"
    return float(match.group(1))


async def test_metrics_count_deliveries_per_receiver_and_subscriptions_per_tenant(
    client: httpx.AsyncClient, sink: Sink
) -> None:
    await client.post(f"{API}/subscriptions", json=subscription(sink), headers=JSON)
    for level in (1.0, 2.0):
        body = {**gauge(level=level), "id": f"urn:ngsi-ld:RiverGauge:{level}"}
        await client.post(f"{API}/entities", json=body, headers=JSON)
    await sink.wait_for(2)
    await asyncio.sleep(0.05)  # the outcome is counted just after the receiver answers
    got = await client.get("/metrics")
    assert got.status_code == 200
    assert got.headers["content-type"].startswith("text/plain; version=0.0.4")
    text = got.text
    origin = sink.url.removesuffix("/notify")
    assert sample(text, "toshi_notifications_sent_total", origin=origin) == 2
    assert sample(text, "toshi_notifications_dropped_total", origin=origin) == 0
    assert sample(text, "toshi_notification_queue_depth", origin=origin) == 0
    assert sample(text, "toshi_notification_lag_seconds_count") == 2
    assert sample(text, "toshi_notification_lag_seconds_bucket", le="+Inf") == 2
    assert sample(text, "toshi_subscriptions", tenant="") == 1
    assert "# TYPE toshi_notifications_sent_total counter" in text
