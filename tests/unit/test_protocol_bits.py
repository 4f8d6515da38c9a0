"""Media types, tenants and entity maps: small pure pieces of the HTTP binding."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from broker.api.media import content_type, context_link, negotiate
from broker.ngsild.errors import BadRequestData, NotAcceptable, UnsupportedMediaType
from broker.ngsild.tenants import tenant_from_header
from broker.services.entity_maps import EntityMapService


def test_content_types() -> None:
    assert content_type("application/json; charset=utf-8") == "application/json"
    assert content_type("application/merge-patch+json", merge_patch=True) == "application/json"
    with pytest.raises(UnsupportedMediaType):
        content_type("text/plain")
    with pytest.raises(UnsupportedMediaType):
        content_type(None)


def test_accept_negotiation() -> None:
    offered = ("application/json", "application/ld+json", "application/geo+json")
    assert negotiate(None, offered) == "application/json"
    assert negotiate("application/ld+json", offered) == "application/ld+json"
    assert negotiate("text/html;q=1, application/geo+json;q=0.5", offered) == "application/geo+json"
    assert negotiate("*/*", offered) == "application/json"
    with pytest.raises(NotAcceptable):
        negotiate("text/html", offered)


def test_accept_ties_go_to_the_servers_order_and_zero_weights_exclude() -> None:
    # GS CIM 009 §6.3.4: at equal weight the broker's preference (JSON first) decides; a type
    # weighted 0 is refused even when a wildcard would match it (RFC 9110 §12.5.1).
    offered = ("application/json", "application/ld+json", "application/geo+json")
    assert negotiate("application/ld+json, application/json", offered) == "application/json"
    assert negotiate("application/geo+json, application/json", offered) == "application/json"
    assert negotiate("application/json;q=0, */*", offered) == "application/ld+json"
    assert negotiate("*/*, application/json;q=0", offered) == "application/ld+json"
    assert negotiate("application/ld+json;q=abc", offered) == "application/ld+json"


def test_context_link_header() -> None:
    header = (
        '<https://x.org/c.jsonld>; rel="http://www.w3.org/ns/json-ld#context"; '
        'type="application/ld+json"'
    )
    assert context_link(header) == "https://x.org/c.jsonld"
    assert context_link('<https://x.org/a>; rel="next"') is None


@pytest.mark.parametrize("header", ["../etc", "a/b", "Town Hall", "x" * 64, "-lead", "é"])
def test_tenant_names_that_could_escape_are_refused(header: str) -> None:
    with pytest.raises(BadRequestData):
        tenant_from_header(header)


def test_tenant_names_are_case_folded() -> None:
    assert tenant_from_header("Kyoto-City") == tenant_from_header("kyoto-city") == "kyoto-city"
    assert tenant_from_header(None) == ""


def test_entity_maps_expire_and_are_per_tenant() -> None:
    now = [datetime(2026, 11, 1, tzinfo=UTC)]
    maps = EntityMapService(clock=lambda: now[0])
    first = maps.record("a", None, ["urn:x:1"])
    assert maps.record("a", first.id, ["urn:x:2"]) is first
    assert first.entries == {"urn:x:1": ["@none"], "urn:x:2": ["@none"]}
    assert maps.get("b", first.id) is None
    now[0] += timedelta(hours=2)
    assert maps.get("a", first.id) is None
    assert maps.record("a", first.id, []).id != first.id
