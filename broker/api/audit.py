"""The audit log: one structured line per write and per admin action (issue 12).

One JSON object per line: when, who (the principal id, or ``null`` with authentication off),
which tenant, the operation (method and route), the ids in the path, and the status answered.
Reads are not logged (they are the bulk of the traffic and change nothing); refused writes are,
since an attempt is what an auditor looks for.

The lines are handed to the runtime's ``broker.audit.AuditTrail``, which writes them in batches.
"""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_READS = frozenset({"GET", "HEAD", "OPTIONS"})


class AuditLog:
    """ASGI middleware adding the audit line once each write has been answered."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _READS:
            await self.app(scope, receive, send)
            return
        status = [500]

        async def send_noting_status(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_noting_status)
        finally:
            runtime = getattr(scope["app"].state, "runtime", None)
            if runtime is not None and runtime.audit is not None:
                runtime.audit.add(_line(scope, status[0]))


def _line(scope: Scope, status: int) -> bytes:
    access = scope.get("state", {}).get("access")
    route = scope.get("route")
    return orjson.dumps(
        {
            "at": datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "audit": "toshi",
            "principal": None if access is None else access.who,
            "tenant": None if access is None else access.tenant,
            "operation": f"{scope['method']} {getattr(route, 'path', scope['path'])}",
            "ids": {k: str(v) for k, v in scope.get("path_params", {}).items()},
            "status": status,
        }
    )
