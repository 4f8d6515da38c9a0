"""The whole of broker/auth built from TOSHI_AUTH__* settings, over a real SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from broker.auth.assembly import build_auth
from broker.auth.roles import Role
from broker.settings import Settings
from broker.store.sqlite import SqliteStore

from tests.auth.issuer import AUDIENCE, Issuer, closed_port_url, rsa_key, serve_issuer


async def test_settings_from_the_environment_build_working_services(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline = Issuer(closed_port_url(), [rsa_key("offline")])
    keys_file = tmp_path / "prefecture.jwks.json"
    keys_file.write_text(json.dumps(offline.jwks()))
    with serve_issuer(rsa_key("town")) as town:
        issuers = [
            {"issuer": town.url, "audiences": [AUDIENCE], "default_tenant": "Takamatsu"},
            {
                "issuer": offline.url,
                "audiences": [AUDIENCE],
                "keys_file": str(keys_file),
                "roles_claim": "realm_access.roles",
            },
        ]
        monkeypatch.setenv("TOSHI_AUTH__ENABLED", "true")
        monkeypatch.setenv("TOSHI_AUTH__ISSUERS", json.dumps(issuers))
        monkeypatch.setenv("TOSHI_AUTH__EGRESS__DENY", '["10.0.0.0/8"]')
        settings = Settings()
        store = SqliteStore(tmp_path / "data")
        await store.start()
        auth = build_auth(settings.auth, store)
        try:
            await auth.start()
            front = auth.authenticator

            town_user = await front.authenticate(f"Bearer {town.token(toshi_roles=['editor'])}")
            prefect = await front.authenticate(
                f"Bearer {offline.token(realm_access={'roles': ['kagawa:admin']})}"
            )
            assert auth.api_keys is not None
            _, secret = await auth.api_keys.create("kagawa", "gateway", Role.READER, prefect.id)
            machine = await front.authenticate(f"Bearer {secret}")

            assert auth.enabled
            assert town_user.roles == {"takamatsu": Role.EDITOR}
            assert prefect.roles == {"kagawa": Role.ADMIN}
            assert machine.roles == {"kagawa": Role.READER}
            assert await auth.egress.check_endpoint("http://10.0.0.1/", "kagawa") is not None
            assert await auth.egress.check_endpoint("http://169.254.169.254/", "kagawa")
        finally:
            await auth.close()
            await store.close()
