"""The river town of ``docs/dashboard`` in a real ``toshi serve``, and a real Chromium."""

from __future__ import annotations

import json
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.e2e.broker_process import Broker

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "dashboard"
ARTIFACTS = ROOT / "tests" / "artifacts"
"""Screenshots of the browser tests (git-ignored)."""
API = "/ngsi-ld/v1"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def river_town() -> list[dict[str, Any]]:
    """The README's example data: the dashboard definition and the town's entities."""
    return list(json.loads((EXAMPLES / "river-town-data.json").read_text()))


def definition() -> dict[str, Any]:
    return dict(json.loads((EXAMPLES / "river-town.json").read_text()))


def level_colors() -> dict[str, str]:
    return {level["id"]: level["color"] for level in definition()["levels"]["json"]}


def seed(url: str, entities: list[dict[str, Any]], headers: dict[str, str] | None = None) -> None:
    reply = httpx.post(
        f"{url}{API}/entityOperations/upsert", json=entities, headers=headers or {}, timeout=30
    )
    assert reply.status_code in (201, 204), reply.text


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (installed by scripts/test).

    One per module: Playwright's sync API keeps an event loop of its own while it runs, which
    the asyncio tests of other modules must not find running."""
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    # The page's content security policy forbids eval, which Playwright's waits use.
    made = browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 800})
    yield made
    made.close()


def start_broker(tmp_path: Path, env: dict[str, str] | None = None) -> Broker:
    running = Broker(tmp_path / "data", env, log=tmp_path / "toshi.log")
    running.start()
    return running


@pytest.fixture
def town(tmp_path: Path) -> Iterator[Broker]:
    """A broker holding the river town, no authentication."""
    running = start_broker(tmp_path)
    seed(running.url, river_town())
    yield running
    if running.process is not None and running.process.poll() is None:
        running.stop(signal.SIGTERM)


def open_dashboard(
    context: BrowserContext, url: str, query: str = "", token: str | None = None
) -> Page:
    """The dashboard, once it has taken its first snapshot (or been refused)."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    if token is not None:
        saved = json.dumps({"access": token, "expires": None})
        page.add_init_script(f"sessionStorage.setItem('toshi.token', {json.dumps(saved)})")
    page.goto(f"{url}/dashboard{query}")
    page.wait_for_function(
        "document.body.dataset.snapshot >= 1 || ['denied', 'error'].includes("
        "document.body.dataset.ready)",
        timeout=15_000,
    )
    assert errors == []
    return page


def painted(page: Page, entity_id: str) -> str | None:
    """The colour the canvas shows at the centre of ``entity_id``'s marker."""
    return page.evaluate("id => toshiDashboard.painted(id)", entity_id)  # type: ignore[no-any-return]


def poll(page: Page, predicate: str, arg: Any, timeout: float) -> None:
    """Wait until ``predicate(arg)`` holds in the page, asking every 20 ms (Playwright's own
    wait_for_function was seen to miss a condition that held, under load)."""
    deadline = time.monotonic() + timeout / 1000
    while not page.evaluate(predicate, arg):
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} ms: {predicate} ({arg!r})")
        time.sleep(0.02)


def wait_painted(page: Page, entity_id: str, color: str, timeout: float = 5_000) -> None:
    """Wait until the canvas shows ``color`` at ``entity_id``'s marker."""
    poll(page, "([id, color]) => toshiDashboard.painted(id) === color", [entity_id, color], timeout)


def screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))
