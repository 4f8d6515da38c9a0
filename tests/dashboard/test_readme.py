"""The README's "Dashboard" section, run as written against a real ``toshi serve``, with the
page open in a real Chromium between its two commands (issue 18's acceptance)."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

from tests.dashboard.town import ROOT, level_colors, open_dashboard, screenshot, wait_painted
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e
README = ROOT / "README.md"


def commands() -> list[str]:
    text = README.read_text()
    section = text[text.index("## Dashboard") : text.index("## Sharing between towns")]
    (block,) = re.findall(r"```sh\n(.*?)```", section, flags=re.S)
    joined = block.replace("\\\n", " ")
    return [line for line in joined.splitlines() if line.strip() and not line.startswith("#")]


def run(command: str, broker: Broker) -> None:
    command = command.replace("localhost:1026", broker.url.removeprefix("http://"))
    done = subprocess.run(
        ["bash", "-c", f"{command} -sS -o /dev/null -w '%{{http_code}}'"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout in ("201", "204"), (command, done.stdout, done.stderr)


def test_the_readme_dashboard_works_as_written(tmp_path: Path, context: BrowserContext) -> None:
    broker = Broker(tmp_path / "data")
    broker.start()
    try:
        seed, change = commands()
        run(seed, broker)
        page = open_dashboard(context, broker.url)
        colors = level_colors()
        sanjo = "urn:ngsi-ld:WaterObserved:kamo-sanjo"
        wait_painted(page, sanjo, colors["caution"])
        started = time.monotonic()
        run(change, broker)
        wait_painted(page, sanjo, colors["danger"], timeout=1_000)
        assert time.monotonic() - started < 1.0
        screenshot(page, "readme-dashboard")
    finally:
        broker.stop()
