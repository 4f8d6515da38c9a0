"""Many gauges and a steady stream of updates, shared by the frame-budget test and
``benchmarks/dashboard.py``."""

from __future__ import annotations

import random
import threading
import time
from typing import Any

import httpx

API = "/ngsi-ld/v1"
BOUNDS = (135.755, 34.975, 135.79, 35.05)
"""Where the river town's districts are (docs/dashboard/river-town.json)."""


def gauge_id(n: int) -> str:
    return f"urn:ngsi-ld:WaterObserved:load-{n:05d}"


def gauges(count: int, seed: int = 18) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    west, south, east, north = BOUNDS
    return [
        {
            "id": gauge_id(n),
            "type": "WaterObserved",
            "height": {"type": "Property", "value": round(rng.uniform(0, 4.5), 2)},
            "location": {
                "type": "GeoProperty",
                "value": {
                    "type": "Point",
                    "coordinates": [rng.uniform(west, east), rng.uniform(south, north)],
                },
            },
        }
        for n in range(count)
    ]


def create_gauges(url: str, count: int, headers: dict[str, str] | None = None) -> None:
    everything = gauges(count)
    with httpx.Client(base_url=url, timeout=60, headers=headers) as http:
        for start in range(0, count, 500):
            reply = http.post(
                f"{API}/entityOperations/upsert", json=everything[start : start + 500]
            )
            assert reply.status_code in (201, 204), reply.text


class Updates(threading.Thread):
    """PATCHes ``rate`` gauges a second (open loop, paced) until stopped; each moves its gauge
    to another warning level, so each one recolours a marker."""

    def __init__(self, url: str, count: int, rate: float) -> None:
        super().__init__(daemon=True)
        self.url, self.count, self.rate = url, count, rate
        self.sent = 0
        self.failed = 0
        self.latest: dict[str, float] = {}
        """The last value acknowledged for each gauge (one thread: in the order written)."""
        self._stop_event = threading.Event()

    def run(self) -> None:
        rng = random.Random(7)
        interval = 1 / self.rate
        with httpx.Client(base_url=self.url, timeout=10) as http:
            due = time.monotonic()
            while not self._stop_event.is_set():
                entity = gauge_id(rng.randrange(self.count))
                value = round(rng.uniform(0, 4.5), 2)
                reply = http.patch(f"{API}/entities/{entity}/attrs/height", json={"value": value})
                if reply.status_code == 204:
                    self.sent += 1
                    self.latest[entity] = value
                else:
                    self.failed += 1
                due += interval
                time.sleep(max(0.0, due - time.monotonic()))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


FRAME_PROBE = """() => {
  window.__frames = { count: 0, longest: 0, started: performance.now(), last: performance.now() };
  window.__probing = true;
  const tick = (now) => {
    const f = window.__frames;
    f.longest = Math.max(f.longest, now - f.last);
    f.last = now;
    f.count += 1;
    if (window.__probing) requestAnimationFrame(tick);
  };
  requestAnimationFrame(tick);
}"""
FRAME_RESULT = """() => {
  window.__probing = false;
  const f = window.__frames;
  const seconds = (performance.now() - f.started) / 1000;
  return { fps: f.count / seconds, longestMs: f.longest, seconds };
}"""
"""Frames the page drew while updates arrived (requestAnimationFrame callbacks a second) and
the longest gap between two of them."""
