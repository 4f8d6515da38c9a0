"""Where notifications may go: default refusals, allow/deny lists, tenants, real DNS."""

from __future__ import annotations

import pytest
from broker.auth.egress import EgressGuard
from broker.auth.egress_policy import EgressPolicy, EgressRules, parse_rule
from broker.settings import EgressRuleSettings, EgressSettings


def guard(**settings: object) -> EgressGuard:
    return EgressGuard.from_settings(EgressSettings(**settings))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://169.254.10.1:8080/",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://[::ffff:169.254.169.254]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://metadata/",
        "http://METADATA.google.internal./",
        "ftp://example.org/",
        "http:///nohost",
    ],
)
async def test_link_local_and_metadata_endpoints_are_refused_by_default(url) -> None:
    refusal = await guard().check_endpoint(url, "takamatsu")

    assert refusal is not None
    assert "takamatsu" not in refusal.message


async def test_the_refusal_names_the_rule() -> None:
    refusal = await guard().check_endpoint("http://169.254.169.254/", "takamatsu")

    assert refusal is not None and refusal.rule == "deny 169.254.0.0/16"
    assert refusal.message == (
        "notification endpoint 169.254.169.254 is refused by the platform's egress rule "
        "'deny 169.254.0.0/16'"
    )


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8080/notify", "mqtt://10.1.2.3/", "https://[::1]/", "http://192.168.1.9/"],
)
async def test_loopback_and_private_receivers_are_allowed_by_default(url) -> None:
    assert await guard().check_endpoint(url, "takamatsu") is None


async def test_a_name_that_resolves_to_a_refused_address_is_refused() -> None:
    # localhost resolves to 127.0.0.1 (and ::1): deny loopback, and the name is refused too.
    strict = guard(deny=["127.0.0.0/8", "::1/128"])

    refusal = await strict.check_endpoint("http://localhost:9000/notify", "takamatsu")

    assert refusal is not None and refusal.rule in {"deny 127.0.0.0/8", "deny ::1/128"}
    assert "'localhost'" in refusal.message
    assert await guard().check_endpoint("http://localhost:9000/notify", "takamatsu") is None


async def test_a_name_that_does_not_resolve_yet_is_left_to_the_delivery_check() -> None:
    # Refusing it would make a receiver's DNS outage the client's error; every delivery checks
    # the address actually reached (test below).
    assert await guard().check_endpoint("http://no-such-host.invalid/", "takamatsu") is None


async def test_tenant_rules_only_narrow_the_platforms() -> None:
    settings = guard(
        tenants={
            "takamatsu": EgressRuleSettings(deny=["10.0.0.0/8"]),
            "kagawa": EgressRuleSettings(allow=["169.254.169.254", "10.0.0.0/8"]),
        }
    )

    narrowed = await settings.check_endpoint("http://10.1.2.3/", "takamatsu")
    assert narrowed is not None and narrowed.message.endswith(
        "is refused by this tenant's egress rule 'deny 10.0.0.0/8'"
    )
    assert await settings.check_endpoint("http://10.1.2.3/", "other") is None
    # A tenant's allow-list cannot reopen what the platform denies, and it shuts the rest.
    assert await settings.check_endpoint("http://169.254.169.254/", "kagawa") is not None
    assert await settings.check_endpoint("http://10.9.9.9/", "kagawa") is None
    outside = await settings.check_endpoint("http://192.168.1.1/", "kagawa")
    assert outside is not None and outside.rule == "allow-list"
    assert "kagawa" not in outside.message and "takamatsu" not in outside.message


def test_allow_lists_take_networks_and_host_names() -> None:
    policy = EgressPolicy(EgressRules.parse(allow=["*.takamatsu.example", "192.0.2.0/24"]))

    assert policy.check_address("198.51.100.7", "iot.takamatsu.example", "t") is None
    assert policy.check_address("192.0.2.10", "elsewhere.example", "t") is None
    assert policy.check_address("198.51.100.7", "takamatsu.example", "t") is not None
    assert policy.check_address("198.51.100.7", "eviltakamatsu.example", "t") is not None


def test_deny_wins_and_is_checked_on_the_connected_address() -> None:
    rules = EgressRules.parse(allow=["*.takamatsu.example"], deny=["169.254.0.0/16"])
    policy = EgressPolicy(rules)

    # The name was fine when the subscription was made; now it resolves to metadata.
    refusal = policy.check_address("169.254.169.254", "iot.takamatsu.example", "t")

    assert refusal is not None and refusal.rule == "deny 169.254.0.0/16"
    assert guard().check_address("::ffff:169.254.169.254", "x.example", "t") is not None


def test_rules_are_networks_or_host_names() -> None:
    assert parse_rule("10.0.0.1/8").network is not None
    assert parse_rule("*.Town.Example.").host == ".town.example"
    for bad in ("", "*.", "http://x", "a..b", "10.0.0.0/33x"):
        with pytest.raises(ValueError, match="egress rule"):
            parse_rule(bad)


def test_tenant_rules_can_be_replaced_at_run_time() -> None:
    egress = guard()
    egress.set_tenant_rules("takamatsu", EgressRules.parse(deny=["192.0.2.0/24"]))
    assert egress.check_address("192.0.2.1", None, "takamatsu") is not None
    egress.set_tenant_rules("takamatsu", None)
    assert egress.check_address("192.0.2.1", None, "takamatsu") is None
