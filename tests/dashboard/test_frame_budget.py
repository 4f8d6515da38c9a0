"""5,000 gauges on the map and 50 updates a second: the page keeps its frame rate (issue 18)."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext

from tests.dashboard.load import FRAME_PROBE, FRAME_RESULT, Updates, create_gauges
from tests.dashboard.town import (
    definition,
    level_colors,
    open_dashboard,
    poll,
    screenshot,
    seed,
    start_broker,
)
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e

GAUGES = 5000
RATE = 50.0
SECONDS = 6.0
FRAME_MS = 1000 / 30


REDRAWN_DIFFERS = """() => {
  const { map, renderer, markers } = toshiDashboard.state.map;
  if (renderer._redrawRequest) {  // a change still to be drawn: draw it first
    L.Util.cancelAnimFrame(renderer._redrawRequest);
    renderer._redraw();
  }
  const canvas = renderer._container, ctx = canvas.getContext("2d");
  const box = canvas.getBoundingClientRect(), mapBox = map.getContainer().getBoundingClientRect();
  const scale = canvas.width / box.width;
  const read = () => ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  const patched = read();
  renderer._everything = true;
  renderer._redraw();
  const whole = read();
  let differ = 0;
  for (const marker of markers.values()) {
    const point = map.latLngToContainerPoint(marker.getLatLng());
    const x = Math.round((point.x + mapBox.left - box.left) * scale);
    const y = Math.round((point.y + mapBox.top - box.top) * scale);
    if (x < 1 || y < 1 || x >= canvas.width - 1 || y >= canvas.height - 1) continue;
    let off = 0;
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const i = ((y + dy) * canvas.width + x + dx) * 4;
        if ([0, 1, 2].some((k) => Math.abs(whole[i + k] - patched[i + k]) > 30)) off += 1;
      }
    }
    if (off > 4) differ += 1;
  }
  return differ;
}"""
"""How many markers' middles (3 x 3 pixels) the canvas shows otherwise than drawing the whole
map anew. Level colours differ by 60 and more in some channel; the antialiasing of a stroke
edge drawn under a clip may differ by a few dozen levels, on a pixel or two of a middle that
another marker's edge crosses."""


@pytest.fixture
def crowded(tmp_path: Path) -> Iterator[Broker]:
    running = start_broker(tmp_path)
    seed(running.url, [definition()])
    create_gauges(running.url, GAUGES)
    yield running
    running.stop(signal.SIGTERM)


def test_5000_gauges_and_50_updates_a_second_keep_30_frames_a_second(
    crowded: Broker, context: BrowserContext
) -> None:
    page = open_dashboard(context, crowded.url)
    assert page.evaluate("toshiDashboard.count()") == GAUGES
    updates = Updates(crowded.url, GAUGES, RATE)
    # (The first drawing of 5,000 markers is the snapshot's, before the updates begin.)
    before = page.evaluate(
        "() => { const s = toshiDashboard.state.stats; s.longestWorkMs = 0; return {...s}; }"
    )
    page.evaluate(FRAME_PROBE)
    updates.start()
    time.sleep(SECONDS)
    frames = page.evaluate(FRAME_RESULT)
    updates.stop()
    after = page.evaluate("({...toshiDashboard.state.stats})")
    busy = (after["workMs"] - before["workMs"]) / 1000 / frames["seconds"]
    print(
        f"frame budget: {frames['fps']:.1f} fps (longest frame {frames['longestMs']:.0f} ms), "
        f"page script {busy:.1%} of the time, longest step {after['longestWorkMs']:.1f} ms, "
        f"{updates.sent} updates in {SECONDS} s"
    )
    assert updates.failed == 0
    assert updates.sent >= RATE * SECONDS * 0.8  # the load really was there
    # What the page itself spends: each step well inside a 30 fps frame (33 ms), and in all a
    # small part of the main thread. (The frames a second also depend on what else the
    # machine runs; benchmarks/dashboard.py --browser reports them, with the aim of 30.)
    assert after["longestWorkMs"] < FRAME_MS, after
    assert busy < 0.25, busy
    assert frames["fps"] > 0
    # The latest state of every gauge that changed reached the page and its marker.
    layer = definition()["layers"]["json"][0]
    colors = level_colors()
    wanted = {}
    for entity, value in updates.latest.items():
        level = "normal"
        for threshold in layer["thresholds"]:
            if value >= threshold["value"]:
                level = threshold["level"]
        wanted[entity] = colors[level]
    # (Markers overlap among 5,000, so colours are read from the markers, not the canvas.)
    poll(
        page,
        "w => Object.entries(w).every(([id, c]) => toshiDashboard.markerColor(id) === c)",
        wanted,
        2_000,
    )
    # Drawn only where markers changed, the map is what drawing it all anew paints, pixel
    # for pixel (overlapping markers included).
    assert page.evaluate(REDRAWN_DIFFERS) == 0
    screenshot(page, "frame-budget-5000")
