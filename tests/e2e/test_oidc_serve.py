"""A real `toshi serve` with authentication on, and tokens from a real OpenID Provider.

The provider (node-oidc-provider, `tests/oidc/provider.mjs`) issues client_credentials access
tokens whose `toshi_roles` claim makes the client an editor of takamatsu and a reader of kagawa.
Toshi is told only the issuer URL and audience: it finds the keys by OIDC discovery.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.auth.test_oidc_provider import AUDIENCE, provider
from tests.e2e.broker_process import Broker

pytestmark = pytest.mark.e2e
__all__ = ["provider"]  # the fixture, shared with tests/auth
API = "/ngsi-ld/v1"


def client_token(issuer: str) -> str:
    with httpx.Client(timeout=10) as http:
        metadata = http.get(f"{issuer}/.well-known/openid-configuration").json()
        reply = http.post(
            metadata["token_endpoint"],
            data={"grant_type": "client_credentials", "scope": "ngsi-ld"},
            auth=("toshi-test", "toshi-test-secret"),
        )
    assert reply.status_code == 200, reply.text
    return str(reply.json()["access_token"])


@pytest.fixture
def broker(tmp_path: Path, provider: str) -> Iterator[Broker]:
    issuers = [{"issuer": provider, "audiences": [AUDIENCE]}]
    running = Broker(
        tmp_path / "data",
        {"TOSHI_AUTH__ENABLED": "true", "TOSHI_AUTH__ISSUERS": json.dumps(issuers)},
    )
    running.start()
    yield running
    running.stop(signal.SIGTERM)


def test_a_provider_token_opens_exactly_its_towns(
    broker: Broker, provider: str, tmp_path: Path
) -> None:
    token = client_token(provider)
    gauge = {"id": "urn:ngsi-ld:RiverGauge:oidc", "type": "RiverGauge", "level": 2.0}
    with httpx.Client(base_url=broker.url, timeout=10) as http:
        assert http.post(f"{API}/entities", json=gauge).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        for town in ("takamatsu", "kagawa"):
            # Explicit tenants: they do not exist until an operator creates them.
            absent = http.get(f"{API}/types", headers={**bearer, "NGSILD-Tenant": town})
            assert absent.status_code == 404
    # The first operator's key is made on the store, as the README says.
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "broker",
            "keys",
            "create",
            "--operator",
            "--name",
            "setup",
            "--store",
            f"sqlite:///{broker.data}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    operator_key = made.stdout.strip().splitlines()[-1]
    broker.stop(signal.SIGTERM)  # a running broker loads keys when it starts
    broker.start()
    with httpx.Client(base_url=broker.url, timeout=10) as http:
        operator = {"Authorization": f"Bearer {operator_key}"}
        for town in ("takamatsu", "kagawa"):
            assert (
                http.post("/admin/tenants", json={"name": town}, headers=operator).status_code
                == 201
            )
        editor = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": "takamatsu"}
        assert http.post(f"{API}/entities", json=gauge, headers=editor).status_code == 201
        reader = {"Authorization": f"Bearer {token}", "NGSILD-Tenant": "kagawa"}
        assert http.post(f"{API}/entities", json=gauge, headers=reader).status_code == 403
        assert http.get(f"{API}/types", headers=reader).status_code == 200
