"""The pure parts of broker/auth import no I/O: they decide, the other modules act."""

from __future__ import annotations

from pathlib import Path

from tests.unit.test_architecture import FORBIDDEN, imported_modules

AUTH = Path(__file__).resolve().parents[2] / "broker" / "auth"
PURE = (
    "roles",
    "principal",
    "claims",
    "cache",
    "keyformat",
    "grants",
    "narrowing",
    "grant_docs",
    "egress_policy",
)
IO = {"broker.auth.jwks", "broker.auth.egress", "broker.auth.apikeys", "joserfc"}


def test_pure_auth_modules_import_no_io() -> None:
    offenders = {}
    for name in PURE:
        modules = imported_modules(AUTH / f"{name}.py")
        bad = {m for m in modules if any(m == f or m.startswith(f + ".") for f in FORBIDDEN | IO)}
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}
