"""Requests to context sources: one at a time per forward, each with its own deadline.

Theory of operation. Every forwarded request has a deadline, the registration's
``management.timeout`` or ``TOSHI_FEDERATION__TIMEOUT``; past it the source is counted as
failed and the answer goes on without it, so a slow or dead town never holds up or fails the
whole answer. A source that failed ``failures`` times in a row is *cooled down*: not asked at
all for ``cooldown`` seconds, after which one request tries it again. Outcomes are counted in
the registration's status members (timesSent, lastFailure, ...).

httpx carries the requests: forwarded requests are few per client request, need response
bodies, methods other than POST and TLS, and its per-request overhead (about a millisecond) is
small next to a source's own answer time, whereas the raw-stream sender of notifications only
POSTs and discards the body. Request headers are never logged: contextSourceInfo may carry
credentials (``Authorization``) for the source.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from broker.ngsild.registrations.registration import Registration
from broker.services.registrations import RegistrationService
from broker.settings import FederationSettings

_log = logging.getLogger(__name__)
API = "/ngsi-ld/v1"
MAX_REPLY_BYTES = 16 * 1024 * 1024
"""The largest answer of a source that is read (a larger one is left out, warning 111)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """What a source answered."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    invalid: bool = False
    """The body was not JSON, or larger than ``MAX_REPLY_BYTES``: not to be used."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(slots=True)
class _Health:
    failures: int = 0
    cool_until: float = 0.0


class SourceClient:
    """Sends forwarded requests and keeps each source's health."""

    def __init__(self, settings: FederationSettings, registrations: RegistrationService) -> None:
        self._settings = settings
        self._registrations = registrations
        self._http = httpx.AsyncClient(
            follow_redirects=False, limits=httpx.Limits(max_keepalive_connections=64)
        )
        self._health: dict[tuple[str, str], _Health] = {}

    async def close(self) -> None:
        await self._http.aclose()

    def cooling(self, tenant: str, reg: Registration) -> bool:
        """Whether ``reg``'s source is cooled down now."""
        health = self._health.get((tenant, reg.id))
        return health is not None and health.cool_until > time.monotonic()

    async def send(
        self,
        tenant: str,
        reg: Registration,
        method: str,
        path: str,
        *,
        headers: dict[str, str],
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
    ) -> Reply | None:
        """``method path`` at ``reg``'s endpoint; ``None`` when it could not be had in time
        (or the source is cooled down)."""
        if self.cooling(tenant, reg):
            return None
        url = reg.endpoint.rstrip("/") + API + path
        query = _encoded(params)
        if query:
            url += "?" + query
        content = None if body is None else orjson.dumps(body)
        sent = dict(headers)
        if content is not None:
            sent.setdefault("Content-Type", "application/json")
        timeout = reg.timeout(self._settings.timeout)
        try:
            reply = await asyncio.wait_for(self._request(method, url, content, sent), timeout)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            _log.info("context source of registration %s failed: %s", reg.id, type(exc).__name__)
            self._failed(tenant, reg)
            return None
        if reply.status >= 500:
            self._failed(tenant, reg)
        else:
            self._succeeded(tenant, reg)
        return reply

    async def _request(
        self, method: str, url: str, content: bytes | None, headers: dict[str, str]
    ) -> Reply:
        request = self._http.build_request(method, url, content=content, headers=headers)
        answer = await self._http.send(request, stream=True)
        try:
            body = bytearray()
            async for chunk in answer.aiter_bytes():
                body += chunk
                if len(body) > MAX_REPLY_BYTES:  # §6.3.17: not incorporated, warning 111
                    return Reply(answer.status_code, None, dict(answer.headers), invalid=True)
        finally:
            await answer.aclose()
        parsed, invalid = _json(bytes(body))
        return Reply(answer.status_code, parsed, dict(answer.headers), invalid=invalid)

    def _failed(self, tenant: str, reg: Registration) -> None:
        health = self._health.setdefault((tenant, reg.id), _Health())
        health.failures += 1
        if health.failures >= self._settings.failures:
            health.cool_until = time.monotonic() + reg.cooldown(self._settings.cooldown)
            health.failures = 0
        self._registrations.record_outcome(tenant, reg.id, ok=False)

    def _succeeded(self, tenant: str, reg: Registration) -> None:
        self._health.pop((tenant, reg.id), None)
        self._registrations.record_outcome(tenant, reg.id, ok=True)


def _encoded(params: list[tuple[str, str]] | None) -> str:
    # URIs and q expressions travel unescaped where a query allows it (":" in entity ids), as
    # clients write them.
    if not params:
        return ""
    return "&".join(f"{key}={quote(value, safe=':/,;()|!~[]@$*')}" for key, value in params)


def _json(content: bytes) -> tuple[Any, bool]:
    """(parsed body, whether it was invalid)."""
    if not content:
        return None, False
    try:
        return orjson.loads(content), False
    except orjson.JSONDecodeError:
        return None, True
