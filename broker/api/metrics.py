"""``GET /metrics``: what operators watch, in Prometheus text format.

Notification delivery per receiver origin (sent, failed, retried, dropped, queue depth), the
submit-to-acknowledgement lag, and subscriptions per tenant; components such as the ingest
adapter add their own families through ``Runtime.metric_sources``. Operators see everything; a
tenant's admin sees only the series labelled with its tenant.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from itertools import accumulate

from fastapi import APIRouter, Depends, Request, Response

from broker.api.access import Need, Policy, access_of
from broker.api.requests import runtime
from broker.notify.dispatcher import LAG_BUCKETS, Dispatcher
from broker.prometheus import CONTENT_TYPE, Family, render

router = APIRouter(tags=["Operations"])


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    dependencies=[Depends(Policy(Need.OPERATOR, or_admin=True))],
)
async def metrics(request: Request) -> Response:
    state = runtime(request)
    families = [*_delivery(state.dispatcher), _subscriptions(state.subscriptions.count_by_tenant())]
    for source in state.metric_sources:
        families.extend(source())
    access = access_of(request)
    if access.tenant_admin:  # a town's admin sees its own series, nothing of the platform's
        families = _of_tenant(families, access.tenant)
    return Response(render(families), media_type=CONTENT_TYPE)


def _of_tenant(families: list[Family], tenant: str) -> list[Family]:
    mine = []
    for family in families:
        samples = [s for s in family.samples if ("tenant", tenant) in s[1]]
        if samples:
            mine.append(replace(family, samples=samples))
    return mine


def _delivery(dispatcher: Dispatcher) -> list[Family]:
    counters = dispatcher.origin_counters()
    described = {
        "sent": "Notifications the receiver acknowledged (2xx, or MQTT publish done).",
        "failed": "Notifications given up: refused, or the retry budget spent.",
        "retried": "Delivery attempts that were retried.",
        "dropped": "Notifications dropped from a full receiver queue (oldest first).",
    }
    families = []
    for member, text in described.items():
        family = Family(f"toshi_notifications_{member}_total", "counter", text)
        for origin, counted in counters.items():
            family.add(getattr(counted, member), (("origin", origin),))
        families.append(family)
    depth = Family(
        "toshi_notification_queue_depth", "gauge", "Notifications waiting per receiver origin."
    )
    for origin, counted in counters.items():
        depth.add(counted.queued, (("origin", origin),))
    lag = dispatcher.lag
    families.append(depth)
    families.append(
        Family(
            "toshi_notification_lag_seconds",
            "histogram",
            "Time from a committed change's notification being queued to its acknowledgement.",
        ).histogram(LAG_BUCKETS, list(accumulate(lag.buckets)), lag.total)
    )
    return families


def _subscriptions(by_tenant: Counter[str]) -> Family:
    family = Family("toshi_subscriptions", "gauge", "Subscriptions per tenant ('' is the default).")
    for tenant, count in sorted(by_tenant.items()):
        family.add(count, (("tenant", tenant),))
    return family
