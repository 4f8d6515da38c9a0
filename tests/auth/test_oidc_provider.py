"""A token from a real, certified OpenID Provider (node-oidc-provider), verified by Toshi.

The provider runs as a Node.js process on a free loopback port (``tests/oidc/provider.mjs``,
installed by ``scripts/test`` with ``npm ci --prefix tests/oidc``). The verifier is given only the
issuer URL: it finds the JWKS by discovery, as it would for a town's Keycloak.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from broker.auth.claims import RoleRule
from broker.auth.jwks import RemoteKeys
from broker.auth.roles import Role
from broker.auth.tokens import TokenVerifier, TrustedIssuer
from broker.ngsild.errors import AuthFailure, Unauthorized

PROVIDER = Path(__file__).resolve().parents[1] / "oidc"
AUDIENCE = "https://toshi.test/ngsi-ld"
ROLES = ["takamatsu:editor", "kagawa:reader", "offline_access"]


@pytest.fixture(scope="module")
def provider() -> Iterator[str]:
    """The issuer URL of a running oidc-provider; fails (never skips) if it cannot run."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("Node.js is needed for the OpenID Provider tests: install node (20 or later)")
    if not (PROVIDER / "node_modules" / "oidc-provider").is_dir():
        pytest.fail("oidc-provider is not installed: run npm ci --prefix tests/oidc")
    process = subprocess.Popen(
        [node, str(PROVIDER / "provider.mjs"), AUDIENCE, json.dumps(ROLES)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # the provider prints READY once it listens
        if not line.startswith("READY "):
            process.kill()
            _, errors = process.communicate(timeout=10)
            pytest.fail(f"the OpenID Provider did not start: {line!r} {errors}")
        yield line.split()[1]
    finally:
        process.terminate()
        process.communicate(timeout=10)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=10) as client:
        yield client


async def access_token(http: httpx.AsyncClient, issuer: str) -> str:
    """A client_credentials access token (RFC 6749 §4.4), found via discovery."""
    metadata = (await http.get(f"{issuer}/.well-known/openid-configuration")).json()
    reply = await http.post(
        metadata["token_endpoint"],
        data={"grant_type": "client_credentials", "scope": "ngsi-ld"},
        auth=("toshi-test", "toshi-test-secret"),
    )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


async def test_a_real_providers_access_token_is_accepted_with_its_roles(provider, http) -> None:
    token = await access_token(http, provider)
    trusted = TrustedIssuer(provider, frozenset({AUDIENCE}), ("RS256",), RoleRule("toshi_roles"))
    verify = TokenVerifier([(trusted, RemoteKeys(http, provider))])

    principal = await verify.verify(token)

    assert principal.issuer == provider and principal.subject == "toshi-test"
    assert principal.roles == {"takamatsu": Role.EDITOR, "kagawa": Role.READER}
    assert principal.expires_at is not None and principal.expires_at.timestamp() > time.time()


async def test_a_real_providers_token_for_another_audience_is_refused(provider, http) -> None:
    token = await access_token(http, provider)
    trusted = TrustedIssuer(provider, frozenset({"https://another.service"}), ("RS256",))
    verify = TokenVerifier([(trusted, RemoteKeys(http, provider))])

    with pytest.raises(Unauthorized) as caught:
        await verify.verify(token)
    assert caught.value.reason is AuthFailure.WRONG_AUDIENCE
