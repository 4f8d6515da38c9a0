"""Signing in to the dashboard through the town's OpenID Provider: authorization code with
PKCE, in a real Chromium, against the real node oidc-provider of tests/oidc (issue 18)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from tests.auth.test_oidc_provider import AUDIENCE, PROVIDER
from tests.dashboard.town import API, open_dashboard, river_town, screenshot
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e
TOWN = "kamogawa"


@pytest.fixture
def signed_platform(tmp_path: Path) -> Iterator[Broker]:
    """A broker trusting a provider whose users are editors of the town."""
    broker = Broker(tmp_path / "data", log=tmp_path / "toshi.log")
    node = shutil.which("node")
    assert node is not None, "Node.js is needed: install node (20 or later)"
    roles = json.dumps([f"{TOWN}:editor"])
    redirect = f"{broker.url}/dashboard"
    provider = subprocess.Popen(
        [node, str(PROVIDER / "provider.mjs"), AUDIENCE, roles, redirect],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert provider.stdout is not None
        line = provider.stdout.readline()
        assert line.startswith("READY "), line
        issuer = line.split()[1]
        broker.env = {
            "TOSHI_AUTH__ENABLED": "true",
            "TOSHI_AUTH__ISSUERS": json.dumps([{"issuer": issuer, "audiences": [AUDIENCE]}]),
            "TOSHI_TENANTS__EXPLICIT": "false",  # the editor's first write creates the town
            "TOSHI_DASHBOARD__OIDC_ISSUER": issuer,
        }
        broker.start()
        yield broker
        broker.stop(signal.SIGTERM)
    finally:
        provider.terminate()
        provider.communicate(timeout=10)


def test_a_member_signs_in_with_pkce_and_sees_the_town(
    signed_platform: Broker, context: BrowserContext
) -> None:
    broker = signed_platform
    anonymous = open_dashboard(context, broker.url, f"?tenant={TOWN}")
    assert anonymous.get_attribute("body", "data-ready") in ("denied", "error")
    assert anonymous.is_visible("#signin")
    anonymous.click("#signin")
    # The provider's own login and consent pages.
    anonymous.wait_for_selector("input[name=login]")
    anonymous.fill("input[name=login]", "hanako")
    anonymous.fill("input[name=password]", "any")
    anonymous.click("button[type=submit]")
    anonymous.wait_for_selector("button[autofocus], button[type=submit]")
    anonymous.click("button[type=submit]")
    anonymous.wait_for_url(f"{broker.url}/dashboard?tenant={TOWN}", timeout=15_000)
    token = anonymous.evaluate("JSON.parse(sessionStorage.getItem('toshi.token')).access")
    # The token the page got is the town's credential on the API, like any client's.
    headers = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": TOWN}
    reply = httpx.post(
        f"{broker.url}{API}/entityOperations/upsert", json=river_town(), headers=headers
    )
    assert reply.status_code in (201, 204), reply.text
    page = anonymous  # the token lives in this tab's sessionStorage
    page.reload()
    page.wait_for_function("document.body.dataset.snapshot >= 1", timeout=15_000)
    assert page.get_attribute("body", "data-ready") == "true"
    assert page.evaluate("toshiDashboard.count()") > 0
    assert page.is_visible("#signout")
    screenshot(page, "signed-in")
