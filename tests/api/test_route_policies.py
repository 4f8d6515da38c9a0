"""Every route of the application declares exactly one access policy (issue 12).

The routes are enumerated from the application itself, so a route added without a policy
fails here rather than being reachable by anyone.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from broker.api.access import Need, Policy
from broker.app import create_app

# FastAPI's own documentation routes: the OpenAPI description of the API is public.
DOCUMENTATION = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def endpoints(routes: Iterable[Any]) -> Iterator[Any]:
    """Every endpoint, also those of included routers (FastAPI ≥ 0.165 keeps those as one
    ``_IncludedRouter`` route each, with their effective routes as candidates)."""
    for route in routes:
        included = getattr(route, "effective_candidates", None)
        if included is not None:
            yield from endpoints(included())
        else:
            yield route


def policies() -> dict[tuple[str, str], list[Need]]:
    found: dict[tuple[str, str], list[Need]] = {}
    for route in endpoints(create_app().routes):
        if not hasattr(route, "dependant"):
            assert getattr(route, "path", None) in DOCUMENTATION, route
            continue
        needs = [d.call.need for d in route.dependant.dependencies if isinstance(d.call, Policy)]
        for method in sorted(route.methods):
            found[(method, route.path)] = needs
    return found


def test_every_route_declares_one_policy() -> None:
    declared = policies()
    assert len(declared) > 40
    assert {route: needs for route, needs in declared.items() if len(needs) != 1} == {}


def test_writes_need_more_than_reads() -> None:
    declared = policies()
    assert declared[("GET", "/ngsi-ld/v1/entities")] == [Need.READ]
    assert declared[("POST", "/ngsi-ld/v1/entityOperations/query")] == [Need.READ]
    assert declared[("POST", "/ngsi-ld/v1/entities")] == [Need.WRITE]
    assert declared[("DELETE", "/ngsi-ld/v1/entities")] == [Need.WRITE]
    assert declared[("POST", "/ngsi-ld/v1/subscriptions")] == [Need.SUBSCRIBE]
    assert declared[("GET", "/iot/devices")] == [Need.ADMIN]
    assert declared[("GET", "/metrics")] == [Need.OPERATOR]
    assert declared[("GET", "/health")] == [Need.PUBLIC]


def test_the_dashboard_page_is_public_and_its_data_is_read() -> None:
    declared = policies()
    for path in (
        "/dashboard",
        "/dashboard/config.json",
        "/dashboard/static/{path:path}",
        "/dashboard/vendor/leaflet/{path:path}",
    ):
        assert declared[("GET", path)] == [Need.PUBLIC]
    # The live stream shows what a query shows, under the same policy as GET /entities.
    assert declared[("GET", "/dashboard/events")] == [Need.READ]
