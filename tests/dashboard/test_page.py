"""The dashboard in a real headless Chromium against a real ``toshi serve`` (issue 18)."""

from __future__ import annotations

import signal
import socket
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import BrowserContext

from tests.dashboard.town import (
    API,
    definition,
    level_colors,
    open_dashboard,
    poll,
    river_town,
    screenshot,
    seed,
    start_broker,
    wait_painted,
)
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e

SANJO = "urn:ngsi-ld:WaterObserved:kamo-sanjo"


def expected_levels() -> dict[str, str]:
    """Each seeded entity's level, worked out here from the definition's thresholds."""
    layers = {layer["type"]: layer for layer in definition()["layers"]["json"]}
    found = {}
    for entity in river_town():
        layer = layers.get(entity["type"])
        if layer is None:
            continue
        value = entity[layer["attribute"]]["value"]
        if "values" in layer:
            found[entity["id"]] = layer["values"][value]
            continue
        level = "normal"
        for threshold in layer["thresholds"]:
            if value >= threshold["value"]:
                level = threshold["level"]
        found[entity["id"]] = level
    return found


def test_the_map_shows_the_seeded_gauges_in_their_levels_colours(
    town: Broker, context: BrowserContext
) -> None:
    page = open_dashboard(context, town.url)
    levels, colors = expected_levels(), level_colors()
    assert page.evaluate("toshiDashboard.count()") == len(levels)
    for entity_id, level in levels.items():
        wait_painted(page, entity_id, colors[level])
    assert page.inner_text("#title") == definition()["title"]["languageMap"]["en"]
    alerts = page.locator("#alerts li").all_inner_texts()
    assert any("Kujo evacuation order" in text for text in alerts)
    screenshot(page, "map-seeded")
    page.click("#lang")
    assert page.inner_text("#title") == definition()["title"]["languageMap"]["ja"]
    screenshot(page, "map-seeded-ja")


def test_a_patch_over_the_api_recolours_the_gauge_within_a_second(
    town: Broker, context: BrowserContext
) -> None:
    page = open_dashboard(context, town.url)
    colors = level_colors()
    wait_painted(page, SANJO, colors["caution"])  # 2.7 m
    started = time.monotonic()
    reply = httpx.patch(f"{town.url}{API}/entities/{SANJO}/attrs/height", json={"value": 3.9})
    assert reply.status_code == 204
    wait_painted(page, SANJO, colors["danger"], timeout=1_000)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    screenshot(page, "map-after-patch")


def test_the_page_works_with_the_tile_server_cut(tmp_path: Path, context: BrowserContext) -> None:
    with socket.socket() as closed:  # a port nobody listens on: connections are refused
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    tiles = f"http://127.0.0.1:{port}/tiles/{{z}}/{{x}}/{{y}}.png"
    broker = start_broker(tmp_path, {"TOSHI_DASHBOARD__TILE_URL": tiles})
    try:
        seed(broker.url, river_town())
        failed: list[str] = []
        context.on("requestfailed", lambda request: failed.append(request.url))
        # And cut at the browser too, whatever the operating system does with the port.
        context.route(
            f"http://127.0.0.1:{port}/**", lambda route: route.abort("internetdisconnected")
        )
        page = open_dashboard(context, broker.url)
        colors = level_colors()
        for entity_id, level in expected_levels().items():
            wait_painted(page, entity_id, colors[level])
        assert any("/tiles/" in url for url in failed)  # the page did try the base map
        # The districts are drawn from the definition's GeoJSON: inside each, the canvas shows
        # its fill; outside all of them, nothing.
        for feature in definition()["districts"]["json"]["features"]:
            ring = feature["geometry"]["coordinates"][0]
            lon = (ring[0][0] + ring[2][0]) / 2 + 0.012  # off-centre: no marker there
            lat = (ring[0][1] + ring[2][1]) / 2 + 0.008
            assert page.evaluate("([x, y]) => toshiDashboard.paintedAt(x, y)", [lon, lat])
        assert (
            page.evaluate("([x, y]) => toshiDashboard.paintedAt(x, y)", [135.750, 35.012]) is None
        )
        reply = httpx.patch(f"{broker.url}{API}/entities/{SANJO}/attrs/height", json={"value": 1.0})
        assert reply.status_code == 204
        wait_painted(page, SANJO, colors["normal"], timeout=1_000)
        screenshot(page, "map-without-tiles")
    finally:
        broker.stop(signal.SIGTERM)


def test_after_a_drop_the_page_reconnects_with_the_latest_state(
    town: Broker, context: BrowserContext
) -> None:
    page = open_dashboard(context, town.url)
    colors = level_colors()
    wait_painted(page, SANJO, colors["caution"])
    town.stop(signal.SIGTERM)  # the stream drops; the page keeps what it has and retries
    page.wait_for_function("document.getElementById('status').dataset.state !== 'live'")
    town.start()  # same port, same data
    # Changed before the page is back (it retries every 2 s): only a snapshot can show it.
    reply = httpx.patch(f"{town.url}{API}/entities/{SANJO}/attrs/height", json={"value": 0.5})
    assert reply.status_code == 204
    page.wait_for_function("document.body.dataset.snapshot >= 2", timeout=10_000)
    wait_painted(page, SANJO, colors["normal"])
    assert page.get_attribute("#status", "data-state") == "live"
    # And live again after it.
    httpx.patch(f"{town.url}{API}/entities/{SANJO}/attrs/height", json={"value": 3.3})
    wait_painted(page, SANJO, colors["evacuation"], timeout=1_000)


def test_a_deleted_gauge_leaves_the_map(town: Broker, context: BrowserContext) -> None:
    page = open_dashboard(context, town.url)
    count = page.evaluate("toshiDashboard.count()")
    assert httpx.delete(f"{town.url}{API}/entities/{SANJO}").status_code == 204
    poll(page, "n => toshiDashboard.count() === n", count - 1, 1_000)
    assert page.evaluate("id => toshiDashboard.level(id)", SANJO) is None


def test_the_history_chart_shows_one_point_per_aggregated_period(
    town: Broker, context: BrowserContext
) -> None:
    # Eight readings 30 minutes apart over the last four hours: in the 6 h view, aggregated
    # by the Temporal API in 10-minute periods, each is alone in its period.
    now = datetime.now(UTC)
    readings = [now - timedelta(minutes=30 * k + 5) for k in range(8)]
    for k, at in enumerate(sorted(readings)):
        fragment = {"value": 1.0 + k / 10, "observedAt": at.isoformat().replace("+00:00", "Z")}
        reply = httpx.patch(f"{town.url}{API}/entities/{SANJO}/attrs/height", json=fragment)
        assert reply.status_code == 204
    page = open_dashboard(context, town.url)
    page.evaluate("id => toshiDashboard.select(id)", SANJO)
    page.wait_for_function("document.getElementById('chart').dataset.state === 'ready'")
    error = page.get_attribute("#chart", "data-error")
    assert error is None, f"the Temporal API answered: {error}"
    # (The reading the entity was created with was observed on 2026-11-23, days before.)
    inside = len(readings)
    assert page.locator("#chart svg circle.pt").count() == inside
    assert page.get_attribute("#chart", "data-points") == str(inside)
    screenshot(page, "history-chart")
