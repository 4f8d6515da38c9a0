"""Who sees what on the dashboard: the API's own access policy, in a real browser (issue 18).

Four towns on one authenticated platform. Kamogawa holds the river town and shares its river
gauges (and its dashboard definition) with Shimogawa, and to read only with Kawakami; Yamano is
granted nothing. Kamogawa also marks gauges and alerts public: a grant to the principal of the
public view.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from tests.auth.issuer import AUDIENCE, Issuer, rsa_key, serve_issuer
from tests.dashboard.town import (
    API,
    level_colors,
    open_dashboard,
    river_town,
    screenshot,
    seed,
    start_broker,
    wait_painted,
)
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e

OWNER, NEIGHBOUR, OTHER, READER = "kamogawa", "shimogawa", "yamano", "kawakami"
SANJO = "urn:ngsi-ld:WaterObserved:kamo-sanjo"
ALERT = "urn:ngsi-ld:Alert:kujo-evacuation"


@dataclass
class Platform:
    broker: Broker
    issuer: Issuer

    def token(self, *roles: str, subject: str | None = None) -> str:
        subject = subject or "-".join(roles).replace(":", "_")
        return self.issuer.token(sub=subject, toshi_roles=list(roles), exp=int(time.time()) + 3600)

    def headers(self, tenant: str, *roles: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(*roles)}", "NGSILD-Tenant": tenant}


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    with serve_issuer(rsa_key("k1")) as issuer:
        public = issuer.token(sub="public", toshi_roles=[], exp=int(time.time()) + 3600)
        env = {
            "TOSHI_AUTH__ENABLED": "true",
            "TOSHI_AUTH__ISSUERS": json.dumps([{"issuer": issuer.url, "audiences": [AUDIENCE]}]),
            "TOSHI_DASHBOARD__PUBLIC_TOKEN": public,
        }
        broker = start_broker(tmp_path, env)
        running = Platform(broker, issuer)
        operator = {"Authorization": f"Bearer {running.token('operator')}"}
        for town in (OWNER, NEIGHBOUR, OTHER, READER):
            made = httpx.post(f"{broker.url}/admin/tenants", json={"name": town}, headers=operator)
            assert made.status_code == 201, made.text
        seed(broker.url, river_town(), running.headers(OWNER, f"{OWNER}:editor"))
        admin = running.headers(OWNER, f"{OWNER}:admin")
        for grant in (
            {
                "grantee": {"tenant": NEIGHBOUR},
                "permissions": ["read", "subscribe"],
                "types": ["WaterObserved", "Dashboard"],
            },
            {
                "grantee": {"tenant": READER},
                "permissions": ["read"],
                "types": ["WaterObserved", "Dashboard"],
            },
            {
                "grantee": {"issuer": issuer.url, "subject": "public"},
                "permissions": ["read", "subscribe"],
                "types": ["WaterObserved", "Alert", "Dashboard"],
            },
        ):
            made = httpx.post(f"{broker.url}/admin/grants", json=grant, headers=admin)
            assert made.status_code == 201, made.text
        yield running
        broker.stop(signal.SIGTERM)


def test_a_reader_without_a_grant_sees_nothing_of_another_town(
    platform: Platform, context: BrowserContext
) -> None:
    token = platform.token(f"{OTHER}:reader")
    page = open_dashboard(context, platform.broker.url, f"?tenant={OWNER}", token=token)
    assert page.get_attribute("body", "data-ready") == "denied"
    assert page.inner_text("#message") == "You may not see this town's data"
    assert page.evaluate("window.toshiDashboard === undefined")
    screenshot(page, "access-no-grant")
    # Its own town is another matter (empty, and without a definition).
    own = open_dashboard(context, platform.broker.url, f"?tenant={OTHER}", token=token)
    assert own.get_attribute("body", "data-ready") == "error"


def test_a_neighbour_sees_live_exactly_what_the_grant_shares(
    platform: Platform, context: BrowserContext
) -> None:
    token = platform.token(f"{NEIGHBOUR}:subscriber")
    page = open_dashboard(context, platform.broker.url, f"?tenant={OWNER}", token=token)
    gauges = [e["id"] for e in river_town() if e["type"] == "WaterObserved"]
    assert page.evaluate("toshiDashboard.count()") == len(gauges)
    assert page.evaluate("id => toshiDashboard.level(id)", ALERT) is None
    colors = level_colors()
    wait_painted(page, SANJO, colors["caution"])
    editor = platform.headers(OWNER, f"{OWNER}:editor")
    url = f"{platform.broker.url}{API}/entities/{SANJO}/attrs/height"
    assert httpx.patch(url, json={"value": 3.9}, headers=editor).status_code == 204
    wait_painted(page, SANJO, colors["danger"], timeout=1_000)
    # A change to what is not shared never reaches the neighbour's stream.
    alert = f"{platform.broker.url}{API}/entities/{ALERT}/attrs/severity"
    assert httpx.patch(alert, json={"value": "critical"}, headers=editor).status_code == 204
    time.sleep(0.5)
    assert page.evaluate("id => toshiDashboard.level(id)", ALERT) is None
    screenshot(page, "access-neighbour")


def test_a_grant_to_read_is_enough_to_see_changes_live(
    platform: Platform, context: BrowserContext
) -> None:
    # The page only reads: what a viewer may read, it is shown as it changes (a grant to
    # subscribe is for the viewer's own subscriptions through the API).
    token = platform.token(f"{READER}:reader")
    page = open_dashboard(context, platform.broker.url, f"?tenant={OWNER}", token=token)
    gauges = [e["id"] for e in river_town() if e["type"] == "WaterObserved"]
    assert page.evaluate("toshiDashboard.count()") == len(gauges)
    colors = level_colors()
    wait_painted(page, SANJO, colors["caution"])
    editor = platform.headers(OWNER, f"{OWNER}:editor")
    url = f"{platform.broker.url}{API}/entities/{SANJO}/attrs/height"
    assert httpx.patch(url, json={"value": 3.9}, headers=editor).status_code == 204
    wait_painted(page, SANJO, colors["danger"], timeout=1_000)


def test_the_public_view_shows_only_what_the_town_marks_public(
    platform: Platform, context: BrowserContext
) -> None:
    page = open_dashboard(context, platform.broker.url, f"?tenant={OWNER}")
    assert page.inner_text("#who") == "Public view"
    shared = [e["id"] for e in river_town() if e["type"] in ("WaterObserved", "Alert")]
    assert page.evaluate("toshiDashboard.count()") == len(shared)
    assert page.evaluate("id => toshiDashboard.level(id)", ALERT) == "evacuation"
    road = "urn:ngsi-ld:RoadSegment:kawabata-south"
    assert page.evaluate("id => toshiDashboard.level(id)", road) is None
    screenshot(page, "access-public")
