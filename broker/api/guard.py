"""Checks every request passes before routing, and the tenant echo on every response.

A raw ASGI middleware (not Starlette's ``BaseHTTPMiddleware``, which costs a task per request):

* POST, PATCH and PUT must say ``Content-Length`` (GS CIM 009 v1.8.1 §6.3.4): a bare 411 without
  a body otherwise, decided before anything else, the tenant included;
* a body over the configured cap is refused with 413 before it is read;
* the tenant a request named is echoed in ``NGSILD-Tenant`` on the response (§6.3.14);
* a trailing slash is ignored (``…/attrs/``), as FIWARE IoT Agents send it;
* an empty entity id (``/entities//attrs``) or attribute name (``/attrs//…``) is a 400, not
  an unknown route.
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.ngsild.errors import BadRequestData, PayloadTooLarge
from broker.ngsild.tenants import tenant_from_header

_BODY_METHODS = frozenset({"POST", "PATCH", "PUT"})


class RequestGuard:
    """Wraps the API application; see the module docstring."""

    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if len(path) > 1 and path.endswith("/"):
            scope = {**scope, "path": path.rstrip("/") or "/"}
        empty = _empty_segment(path)
        if empty is not None:
            error = BadRequestData(f"the {empty} in the path is empty")
            await _respond(send, 400, orjson.dumps(error.problem()), None)
            return
        length: bytes | None = None
        tenant: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                length = value
            elif name == b"ngsild-tenant":
                tenant = value
        if scope["method"] in _BODY_METHODS:
            refusal = self._refusal(length)
            if refusal is not None:
                await _respond(send, *refusal, _echo(tenant))
                return
        echo = _echo(tenant)
        if echo is None:
            await self.app(scope, receive, send)
            return

        async def send_with_tenant(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), echo]
            await send(message)

        await self.app(scope, receive, send_with_tenant)

    def _refusal(self, length: bytes | None) -> tuple[int, bytes] | None:
        if length is None:
            return 411, b""
        if not length.isdigit():
            return 400, orjson.dumps(BadRequestData("invalid Content-Length").problem())
        if int(length) > self.max_body_bytes:
            error = PayloadTooLarge(f"the body exceeds {self.max_body_bytes} bytes")
            return 413, orjson.dumps(error.problem())
        return None


def _echo(tenant: bytes | None) -> tuple[bytes, bytes] | None:
    if tenant is None:
        return None
    try:
        name = tenant_from_header(tenant.decode("latin-1"))
    except BadRequestData:
        return None
    return (b"ngsild-tenant", name.encode()) if name else None


async def _respond(send: Send, status: int, body: bytes, echo: Any) -> None:
    headers = [(b"content-length", str(len(body)).encode())]
    if body:
        headers.append((b"content-type", b"application/json"))
    if echo is not None:
        headers.append(echo)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _empty_segment(path: str) -> str | None:
    """What an empty path segment stands for (``/entities//…``, ``/attrs//…``), if any."""
    if "/entities//" in path:
        return "entity id"
    if "/attrs//" in path:
        return "attribute name"
    return None
