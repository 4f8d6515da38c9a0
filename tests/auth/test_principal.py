"""Roles, principals and the role claims of different issuers: pure functions, no I/O."""

from __future__ import annotations

import pytest
from broker.auth.cache import TokenCache
from broker.auth.claims import RoleRule, claim_at, roles_from_claims
from broker.auth.principal import Principal, require, require_operator
from broker.auth.roles import Role, parse_role
from broker.ngsild.errors import Forbidden


def test_roles_are_ordered_and_named() -> None:
    assert Role.READER < Role.SUBSCRIBER < Role.EDITOR < Role.ADMIN
    assert parse_role(" Editor ") is Role.EDITOR and Role.EDITOR.label == "editor"
    assert parse_role("operator") is None and parse_role("owner") is None


def test_a_principal_answers_per_tenant() -> None:
    alice = Principal("alice", "https://id.example", {"takamatsu": Role.EDITOR})

    assert alice.role_in("takamatsu") is Role.EDITOR and alice.role_in("kagawa") is None
    assert alice.may("takamatsu", Role.READER) and alice.may("takamatsu", Role.EDITOR)
    assert not alice.may("takamatsu", Role.ADMIN) and not alice.may("kagawa", Role.READER)
    assert alice.id == "https://id.example alice"


def test_roles_cannot_be_changed_behind_a_principals_back() -> None:
    roles = {"takamatsu": Role.READER}
    alice = Principal("alice", "https://id.example", roles)
    roles["takamatsu"] = Role.ADMIN

    assert alice.role_in("takamatsu") is Role.READER
    with pytest.raises(TypeError):
        alice.roles["kagawa"] = Role.ADMIN  # type: ignore[index]


def test_bound_roles_add_to_a_principal_and_the_higher_role_wins() -> None:
    alice = Principal("alice", "https://id.example", {"takamatsu": Role.EDITOR})

    more = alice.with_roles({"takamatsu": Role.READER, "kagawa": Role.ADMIN})

    assert more.roles == {"takamatsu": Role.EDITOR, "kagawa": Role.ADMIN}
    assert alice.with_roles({}) is alice


def test_subscribers_manage_their_own_subscriptions_editors_all() -> None:
    sub = Principal("s", "https://id.example", {"t": Role.SUBSCRIBER})
    editor = Principal("e", "https://id.example", {"t": Role.EDITOR})
    reader = Principal("r", "https://id.example", {"t": Role.READER})

    assert sub.may_manage_subscription("t", sub.id)
    assert not sub.may_manage_subscription("t", editor.id)
    assert editor.may_manage_subscription("t", sub.id)
    assert not reader.may_manage_subscription("t", reader.id)


def test_forbidden_names_only_the_tenant_asked_for() -> None:
    alice = Principal("alice", "https://id.example", {"kagawa": Role.ADMIN})

    with pytest.raises(Forbidden) as caught:
        require(alice, "takamatsu", Role.READER)
    assert caught.value.status == 403
    assert "kagawa" not in caught.value.detail and "admin" not in caught.value.detail
    assert "takamatsu" in caught.value.detail
    with pytest.raises(Forbidden):
        require_operator(alice)
    require(alice, "kagawa", Role.EDITOR)


@pytest.mark.parametrize(
    ("claims", "rule", "roles", "operator"),
    [
        ({"toshi_roles": ["takamatsu:editor"]}, RoleRule(), {"takamatsu": Role.EDITOR}, False),
        (
            {"realm_access": {"roles": ["Takamatsu:admin", "offline_access", "x:owner"]}},
            RoleRule("realm_access.roles"),
            {"takamatsu": Role.ADMIN},
            False,
        ),
        (
            {"toshi_roles": ["editor", "reader", "kagawa:reader"]},
            RoleRule(default_tenant="takamatsu"),
            {"takamatsu": Role.EDITOR, "kagawa": Role.READER},
            False,
        ),
        ({"toshi_roles": ["editor"]}, RoleRule(), {}, False),
        (
            {"toshi_roles": "takamatsu:reader operator"},
            RoleRule(),
            {"takamatsu": Role.READER},
            True,
        ),
        (
            {"toshi_roles": [":editor", "*:operator", "../x:admin"]},
            RoleRule(),
            {"": Role.EDITOR},
            True,
        ),
        (
            {"tenants": {"takamatsu": ["reader", "subscriber"], "*": "operator", "k": 3}},
            RoleRule("tenants", "map"),
            {"takamatsu": Role.SUBSCRIBER},
            True,
        ),
        ({"toshi_roles": {"not": "a list"}}, RoleRule(), {}, False),
        ({}, RoleRule("realm_access.roles"), {}, False),
    ],
)
def test_roles_from_claims(claims, rule, roles, operator) -> None:
    found = roles_from_claims(claims, rule)

    assert (found.roles, found.operator) == (roles, operator)


def test_claim_paths_stop_where_a_step_is_missing() -> None:
    assert claim_at({"a": {"b": [1]}}, "a.b") == [1]
    assert claim_at({"a": [{"b": 1}]}, "a.b") is None


def test_the_token_cache_is_bounded_and_forgets_at_the_deadline() -> None:
    cache: TokenCache[str] = TokenCache(2)
    cache.put("one", "1", deadline=100)
    cache.put("two", "2", deadline=100)
    assert cache.get("one", now=10) == "1"  # now "two" is the least recently used
    cache.put("three", "3", deadline=100)

    assert cache.get("two", now=10) is None and len(cache) == 2
    assert cache.get("one", now=100) is None and len(cache) == 1
    off: TokenCache[str] = TokenCache(0)
    off.put("one", "1", deadline=100)
    assert off.get("one", now=0) is None
