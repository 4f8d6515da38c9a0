"""The NGSI-LD core stays pure: no I/O, no web framework, no database below broker/ngsild."""

from __future__ import annotations

import ast
from pathlib import Path

FORBIDDEN = {
    "asyncio",
    "socket",
    "sqlite3",
    "httpx",
    "aiohttp",
    "fastapi",
    "starlette",
    "pymongo",
    "paho",
    "aiomqtt",
    "os",
    "subprocess",
    "threading",
    "requests",
    "urllib.request",
    "broker.store",
    "broker.api",
    "broker.services",
    "broker.contexts",
}
CORE = Path(__file__).resolve().parents[2] / "broker" / "ngsild"


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_ngsild_core_imports_no_io_or_framework_modules() -> None:
    offenders = {}
    for path in CORE.rglob("*.py"):
        bad = {
            m
            for m in imported_modules(path)
            if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)
        }
        if bad:
            offenders[str(path.relative_to(CORE))] = sorted(bad)
    assert offenders == {}
