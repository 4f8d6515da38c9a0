"""Three towns on one platform with authentication on, for tests of who may do what.

A real token issuer (``tests/auth/issuer.py``: keys made here, JWKS over real HTTP) signs each
caller's token; roles travel in the ``toshi_roles`` claim as ``<tenant>:<role>``. The platform
operator creates the three tenants through the admin API, as an installation would.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.auth.issuer import AUDIENCE, Issuer, rsa_key, serve_issuer
from tests.conftest import broker_client, make_settings

TOWNS = ("takamatsu", "marugame", "zentsuji")
OWNER, NEIGHBOUR, OTHER = TOWNS
"""The town that shares, the one it shares with, and one that gets nothing."""
ROLES = ("reader", "subscriber", "editor", "admin")


@dataclass
class Platform:
    """The running broker, its issuer, and a way to act as anyone."""

    http: httpx.AsyncClient
    issuer: Issuer

    def token(self, *roles: str, subject: str | None = None, **claims: Any) -> str:
        """A token holding ``roles`` (``"takamatsu:editor"``, ``"operator"``)."""
        subject = (
            claims.pop("sub", None) or subject or "-".join(roles).replace(":", "_") or "nobody"
        )
        return str(self.issuer.token(sub=subject, toshi_roles=list(roles), **claims))

    def as_(self, *roles: str, tenant: str | None = None, **claims: Any) -> dict[str, str]:
        """Headers of a request by a holder of ``roles``, in ``tenant``."""
        headers = {"Authorization": f"Bearer {self.token(*roles, **claims)}"}
        if tenant is not None:
            headers["NGSILD-Tenant"] = tenant
        return headers

    def member(self, town: str, role: str) -> dict[str, str]:
        """A request by a ``role`` of ``town``, in ``town``."""
        return self.as_(f"{town}:{role}", tenant=town)

    async def share(self, body: dict[str, Any], owner: str = OWNER) -> dict[str, Any]:
        """A grant made by ``owner``'s admin."""
        made = await self.http.post("/admin/grants", json=body, headers=self.member(owner, "admin"))
        assert made.status_code == 201, made.text
        return dict(made.json())


def auth_settings(issuer: Issuer, data: Path, **overrides: Any) -> Any:
    return make_settings(
        data,
        auth={
            "enabled": True,
            "issuers": [{"issuer": issuer.url, "audiences": [AUDIENCE]}],
            **overrides.pop("auth", {}),
        },
        **overrides,
    )


@asynccontextmanager
async def platform(data: Path, **overrides: Any) -> AsyncIterator[Platform]:
    """The broker with authentication on and the three towns created by the operator."""
    with serve_issuer(rsa_key("k1")) as issuer:
        async with broker_client(auth_settings(issuer, data, **overrides)) as http:
            running = Platform(http, issuer)
            operator = running.as_("operator")
            for town in TOWNS:
                made = await http.post(
                    "/admin/tenants",
                    json={"name": town, "displayName": {"en": town.title()}},
                    headers=operator,
                )
                assert made.status_code == 201, made.text
            yield running
