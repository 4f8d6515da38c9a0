"""Tenant database names of the MongoDB store (``broker.store.mongo_names``): within MongoDB's
limits, and never the same database for two tenants or two installations."""

from __future__ import annotations

import re

import pytest
from broker.store.mongo_names import (
    MAX_BASE_NAME,
    check_base,
    is_installation_database,
    tenant_database_name,
)
from hypothesis import given
from hypothesis import strategies as st

tenants = st.from_regex(r"_?[a-z0-9][a-z0-9_-]{0,62}", fullmatch=True)
bases = st.sampled_from(["toshi", "city", "toshi-production", "t", "x" * MAX_BASE_NAME, "a-b"])
# What MongoDB refuses in database names (any platform), and its length limit.
FORBIDDEN = re.compile(r"[/\\. \"$*<>:|?\x00]")


def test_short_tenants_keep_their_readable_name() -> None:
    assert tenant_database_name("toshi", "") == "toshi"
    assert tenant_database_name("toshi", "kyoto") == "toshi-t-kyoto"
    assert tenant_database_name("city", "a_b-c") == "city-t-a_b-c"


def test_the_brokers_own_store_tenants_have_databases_too() -> None:
    # Snapshots keep their frozen entities in a store tenant named _snapshot-<hex>.
    assert tenant_database_name("toshi", "_snapshot-1a2b") == "toshi-t-_snapshot-1a2b"
    assert tenant_database_name("toshi", "_snapshot-1a2b") != tenant_database_name(
        "toshi", "snapshot-1a2b"
    )


@given(base=bases, tenant=tenants)
def test_every_name_is_one_mongodb_accepts(base: str, tenant: str) -> None:
    name = tenant_database_name(base, tenant)
    assert len(name) <= 63
    assert not FORBIDDEN.search(name)
    assert name == name.lower() or name.startswith(base)  # only the base may have capitals
    assert is_installation_database(base, name)


@given(base=bases, first=tenants, second=tenants)
def test_two_tenants_never_share_a_database(base: str, first: str, second: str) -> None:
    if first != second:
        assert tenant_database_name(base, first) != tenant_database_name(base, second)


def test_a_long_name_cannot_be_forged_by_a_short_tenant() -> None:
    long = "k" * 63
    hashed = tenant_database_name("toshi", long)
    assert hashed.startswith("toshi-h-") and len(hashed) == 63
    # A tenant literally named after the digest lands in the verbatim family.
    forged = hashed.removeprefix("toshi-h-")
    assert tenant_database_name("toshi", forged) == f"toshi-t-{forged}" != hashed
    near = ["k" * 55, "k" * 56, "k" * 62 + "x"]
    assert len({tenant_database_name("toshi", n) for n in [*near, long]}) == 4


@given(first=tenants, second=tenants)
def test_installations_with_prefix_bases_never_share_a_database(first: str, second: str) -> None:
    # "toshi" and "toshi-x" may share a server; neither's names are the other's.
    a, b = "toshi", "toshi-x"
    assert tenant_database_name(a, first) != tenant_database_name(b, second)
    assert not is_installation_database(b, tenant_database_name(a, first))


@pytest.mark.parametrize(
    "base", ["", "to.shi", "a/b", "toshi-t-x", "x-h-y", "toshi-", "toshi-t", "x" * 32]
)
def test_bases_that_could_collide_or_that_mongodb_refuses_are_refused(base: str) -> None:
    with pytest.raises(ValueError, match="base database"):
        check_base(base)


def test_unnormalised_tenant_names_are_a_bug() -> None:
    with pytest.raises(ValueError, match="normalised"):
        tenant_database_name("toshi", "Kyoto")
