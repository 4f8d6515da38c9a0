"""API keys and role bindings on a real SQLite store, across restarts; the Authenticator."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from broker.auth import keyformat
from broker.auth.apikeys import API_KEY, ApiKeyService
from broker.auth.authenticator import Authenticator, bearer_token
from broker.auth.bindings import RoleBindings
from broker.auth.principal import API_KEY_ISSUER, AuthMethod
from broker.auth.roles import Role
from broker.ngsild.errors import AuthFailure, BadRequestData, ResourceNotFound, Unauthorized
from broker.store.base import Store
from broker.store.sqlite import SqliteStore

ADMIN = "https://id.takamatsu.example admin"
Opener = Callable[[], Awaitable[Store]]


@pytest.fixture
async def open_store(tmp_path: Path) -> AsyncIterator[Opener]:
    """Opens a started SQLite store on the same directory each time (a broker restart)."""
    opened: list[Store] = []

    async def open_one() -> Store:
        store = SqliteStore(tmp_path / "data")
        await store.start()
        opened.append(store)
        return store

    yield open_one
    for store in opened:
        await store.close()


async def test_a_key_is_shown_once_and_stored_only_as_a_digest(open_store: Opener) -> None:
    store = await open_store()
    keys = ApiKeyService(store)
    await keys.start()

    key, secret = await keys.create("takamatsu", "river gauges gateway", Role.EDITOR, ADMIN)

    assert secret.startswith("toshi_") and len(secret) == 6 + 16 + 1 + 64
    assert keyformat.key_id_of(secret) == key.id
    (record,) = await (await store.tenant("takamatsu")).records(API_KEY)
    assert secret not in json.dumps(record) and secret[23:] not in json.dumps(record)
    assert record["digest"] == keyformat.digest(secret)
    assert "digest" not in key.as_json()


async def test_a_key_authenticates_as_its_tenant_and_role(open_store: Opener) -> None:
    keys = ApiKeyService(await open_store())
    await keys.start()
    key, secret = await keys.create("takamatsu", "gateway", Role.EDITOR, ADMIN)

    principal = keys.verify(secret)

    assert (principal.subject, principal.issuer) == (key.id, API_KEY_ISSUER)
    assert principal.roles == {"takamatsu": Role.EDITOR} and not principal.operator
    assert principal.method is AuthMethod.API_KEY and principal.expires_at is None


async def test_revoked_wrong_and_foreign_keys_are_refused(open_store: Opener) -> None:
    keys = ApiKeyService(await open_store())
    await keys.start()
    key, secret = await keys.create("takamatsu", "gateway", Role.READER, ADMIN)
    wrong = secret[:-1] + ("0" if secret[-1] != "0" else "1")

    for bad in (wrong, "toshi_nonsense", keyformat.new_key()[1]):
        with pytest.raises(Unauthorized) as caught:
            keys.verify(bad)
        assert caught.value.reason is AuthFailure.UNKNOWN_KEY
    with pytest.raises(ResourceNotFound):
        await keys.revoke("kagawa", key.id)  # another tenant's admin cannot see it
    await keys.revoke("takamatsu", key.id)
    with pytest.raises(Unauthorized):
        keys.verify(secret)
    assert keys.list("takamatsu") == []


async def test_keys_survive_a_restart_and_revocations_too(open_store: Opener) -> None:
    first = ApiKeyService(await open_store())
    await first.start()
    kept, kept_secret = await first.create("takamatsu", "kept", Role.READER, ADMIN)
    gone, gone_secret = await first.create("kagawa", "gone", Role.ADMIN, ADMIN)
    _, operator_secret = await first.create("", "ops", None, ADMIN, operator=True)
    await first.revoke("kagawa", gone.id)

    again = ApiKeyService(await open_store())
    await again.start()

    assert again.verify(kept_secret).roles == {"takamatsu": Role.READER}
    assert again.verify(operator_secret).operator
    assert [key.id for key in again.list("takamatsu")] == [kept.id]
    with pytest.raises(Unauthorized):
        again.verify(gone_secret)


async def test_a_key_must_grant_something_and_have_a_name(open_store: Opener) -> None:
    keys = ApiKeyService(await open_store())
    with pytest.raises(BadRequestData):
        await keys.create("takamatsu", "nothing", None, ADMIN)
    with pytest.raises(BadRequestData):
        await keys.create("takamatsu", "  ", Role.READER, ADMIN)


async def test_bindings_add_roles_and_survive_a_restart(open_store: Opener) -> None:
    bindings = RoleBindings(await open_store())
    await bindings.start()
    await bindings.bind("takamatsu", "https://id.kagawa.example", "bob", Role.READER, ADMIN)
    await bindings.bind("takamatsu", "https://id.kagawa.example", "bob", Role.EDITOR, ADMIN)
    await bindings.bind("kagawa", "https://id.kagawa.example", "bob", Role.ADMIN, ADMIN)

    again = RoleBindings(await open_store())
    await again.start()

    assert again.roles_of("https://id.kagawa.example", "bob") == {
        "takamatsu": Role.EDITOR,
        "kagawa": Role.ADMIN,
    }
    assert [b.subject for b in again.list("takamatsu")] == ["bob"]
    await again.unbind("kagawa", "https://id.kagawa.example", "bob")
    with pytest.raises(ResourceNotFound):
        await again.unbind("kagawa", "https://id.kagawa.example", "bob")
    third = RoleBindings(await open_store())
    await third.start()
    assert third.roles_of("https://id.kagawa.example", "bob") == {"takamatsu": Role.EDITOR}


async def test_the_authenticator_takes_api_keys_as_bearer_tokens(open_store: Opener) -> None:
    store = await open_store()
    keys, bindings = ApiKeyService(store), RoleBindings(store)
    key, secret = await keys.create("takamatsu", "gateway", Role.READER, ADMIN)
    await bindings.bind("kagawa", API_KEY_ISSUER, key.id, Role.SUBSCRIBER, ADMIN)
    front = Authenticator(None, keys, bindings)

    principal = await front.authenticate(f"bearer  {secret} ")

    assert principal.roles == {"takamatsu": Role.READER, "kagawa": Role.SUBSCRIBER}
    with pytest.raises(Unauthorized) as caught:
        await front.authenticate("Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln")
    assert caught.value.reason is AuthFailure.WRONG_ISSUER
    with pytest.raises(Unauthorized) as caught:
        await Authenticator(None).authenticate(f"Bearer {secret}")
    assert caught.value.reason is AuthFailure.UNKNOWN_KEY


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, AuthFailure.MISSING),
        ("  ", AuthFailure.MISSING),
        ("Basic YTpi", AuthFailure.MALFORMED),
    ],
)
def test_only_bearer_credentials_are_read(header, reason) -> None:
    with pytest.raises(Unauthorized) as caught:
        bearer_token(header)
    assert caught.value.reason is reason
    assert bearer_token("Bearer abc") == "abc"
