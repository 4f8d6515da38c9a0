"""The baseline: a bare ASGI app on the same uvicorn/uvloop/httptools stack as Toshi.

It reads the request body and answers 201 to POST and 204 to everything else, empty-bodied:
the least any HTTP server must do for the same requests, so "toshi / echo" is the share of the
machine's HTTP capacity that the broker's own work leaves.
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    status = 201 if scope["method"] == "POST" else 204
    if scope["path"] == "/health":
        status = 200
    await send({"type": "http.response.start", "status": status, "headers": []})
    await send({"type": "http.response.body", "body": b""})
