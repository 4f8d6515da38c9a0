"""Shared fixtures: a broker app on a real SQLite directory, and a real @context server."""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from broker import doc_cache
from broker.app import create_app
from broker.settings import Settings

pytest_plugins = ["tests.mqtt_fixtures", "tests.http_sink"]

# Every cache hit in the suite is compared with a fresh parse and a fresh rendering, so a reader
# that changes a shared document in place fails the test that does it (broker.doc_cache).
doc_cache.SHARED.check = True
API = "/ngsi-ld/v1"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


@dataclass
class ContextServer:
    """A real HTTP server handing out @context documents; counts requests per path."""

    base: str
    documents: dict[str, object]
    hits: dict[str, int] = field(default_factory=dict)

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"


@pytest.fixture
def context_server() -> Iterator[ContextServer]:
    documents: dict[str, object] = {
        "city.jsonld": {
            "@context": {
                "city": "https://example.org/city#",
                "RiverGauge": "city:RiverGauge",
                "level": "city:level",
                "bridge": "city:bridge",
            }
        },
        "broken.jsonld": {"@context": {"level": {"@id": 42}}},
    }
    hits: dict[str, int] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            hits[name] = hits.get(name, 0) + 1
            if name not in documents:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(documents[name]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/ld+json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ContextServer(f"http://127.0.0.1:{server.server_port}", documents, hits)
    finally:
        server.shutdown()
        server.server_close()


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return Settings(store=f"sqlite:///{data_dir}", **overrides)  # type: ignore[arg-type]


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client for a broker app whose store is a real SQLite directory in tmp_path."""
    async with broker_client(make_settings(tmp_path / "data")) as http:
        yield http


class broker_client:  # noqa: N801 - used like a function: `async with broker_client(...)`
    """Run the app's lifespan around an httpx client talking to it in-process (ASGI)."""

    def __init__(self, settings: Settings, *, raise_app_exceptions: bool = True) -> None:
        self.app = create_app(settings)
        self._raise = raise_app_exceptions
        self._lifespan = self.app.router.lifespan_context(self.app)
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> httpx.AsyncClient:
        await self._lifespan.__aenter__()
        transport = httpx.ASGITransport(app=self.app, raise_app_exceptions=self._raise)
        self._http = httpx.AsyncClient(transport=transport, base_url="http://toshi")
        return self._http

    async def __aexit__(self, *exc: object) -> None:
        assert self._http is not None
        await self._http.aclose()
        await self._lifespan.__aexit__(None, None, None)


def link(url: str) -> str:
    return f'<{url}>; rel="http://www.w3.org/ns/json-ld#context"; type="application/ld+json"'


def gauge(entity_id: str = "urn:ngsi-ld:RiverGauge:kamo-1", level: float = 1.5) -> dict:
    """A river gauge entity as a town would publish it (terms from the core @vocab)."""
    return {
        "id": entity_id,
        "type": "RiverGauge",
        "level": {
            "type": "Property",
            "value": level,
            "unitCode": "MTR",
            "observedAt": "2026-11-23T01:00:00Z",
        },
        "alert": {"type": "Property", "value": "none"},
        "bridge": {"type": "Relationship", "object": "urn:ngsi-ld:Bridge:sanjo"},
        "location": {
            "type": "GeoProperty",
            "value": {"type": "Point", "coordinates": [135.77, 35.01]},
        },
        "name": {"type": "LanguageProperty", "languageMap": {"ja": "鴨川", "en": "Kamo River"}},
    }
