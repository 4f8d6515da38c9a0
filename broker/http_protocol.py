"""uvicorn's httptools protocol, with the ``Location`` header name in its canonical case.

HTTP header names are case-insensitive (RFC 9110 §5.1), and uvicorn writes every name in
lower case. Some clients look ``Location`` up by its exact spelling in a plain dictionary —
the ETSI suite's id check of a created registration or subscription among them — and so
cannot find the id of what they created. Only the header block of a ``201 Created`` is
touched (one ``bytes.replace`` on a write that starts with the status line); bodies and every
other response pass through unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_CREATED = b"HTTP/1.1 201 "
_LOWER = b"\r\nlocation: "
_CANONICAL = b"\r\nLocation: "


class _CanonicalLocation:
    """A transport that writes ``Location`` in canonical case; everything else delegates."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if isinstance(data, bytes) and data.startswith(_CREATED):
            head, sep, rest = data.partition(b"\r\n\r\n")
            data = head.replace(_LOWER, _CANONICAL, 1) + sep + rest
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CanonicalHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` whose transport spells ``Location`` canonically."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CanonicalLocation(transport))  # type: ignore[arg-type]
