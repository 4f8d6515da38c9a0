"""Every route of the application × every kind of caller → allowed or refused (issue 12).

The routes are enumerated from the application itself (``test_route_policies.endpoints``), so a
new route is covered the day it is added. For each one and each caller — no token, the
platform operator, every role of the tenant's own town, a neighbour town that was granted read
and subscribe, a town that was granted nothing — the answer must be 401, 403, or get past the
policy (any other answer: the handler ran), as the route's declared need says.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from broker.api.access import Policy
from broker.app import create_app
from broker.auth.access import Need

from tests.api.test_route_policies import endpoints
from tests.towns import NEIGHBOUR, OTHER, OWNER, ROLES, Platform, platform

ERR = "urn:toshi:errors:"
PATH_VALUES = {
    "entityId": "urn:ngsi-ld:RiverGauge:nowhere",
    "attrId": "level",
    "subscriptionId": "urn:ngsi-ld:Subscription:nowhere",
    "type_name": "RiverGauge",
    "attr_name": "level",
    "entityMapId": "nowhere",
    "snapshotId": "urn:ngsi-ld:Snapshot:nowhere",
    "device_id": "nowhere",
    "name": "nowhere",
    "grant_id": "nowhere",
    "key_id": "nowhere",
    "contextId": "nowhere",
    "path": "app.js",
    "instanceId": "urn:ngsi-ld:Instance:nowhere",
    "registrationId": "urn:ngsi-ld:ContextSourceRegistration:nowhere",
}
ROLE_RANK = {role: rank for rank, role in enumerate(ROLES, start=1)}
NEED_RANK = {Need.READ: 1, Need.SUBSCRIBE: 2, Need.WRITE: 3, Need.ADMIN: 4}


def routes() -> list[tuple[str, str, Need, bool, bool]]:
    """(method, path, need, or_admin, or_operator) of every endpoint with a policy."""
    found = set()
    for route in endpoints(create_app().routes):
        dependant = getattr(route, "dependant", None)
        for dependency in () if dependant is None else dependant.dependencies:
            policy = dependency.call
            if isinstance(policy, Policy):
                found.update(
                    (m, route.path, policy.need, policy.or_admin, policy.or_operator)
                    for m in route.methods
                )
    return sorted(found)


def url(path: str) -> str:
    return re.sub(r"\{(\w+)(?::path)?\}", lambda m: PATH_VALUES[m.group(1)], path)


def expected(caller: str, need: Need, or_admin: bool, or_operator: bool) -> str:
    """'pass', 401 or 403 for ``caller`` on a route needing ``need`` in the owner's tenant."""
    if need is Need.PUBLIC:
        return "pass"
    if caller == "anonymous":
        return "401"
    if need is Need.OPERATOR:
        return "pass" if caller == "operator" or (or_admin and caller == "own admin") else "403"
    if caller == "operator" and or_operator:
        return "pass"
    if caller.startswith("own "):
        return "pass" if ROLE_RANK[caller.removeprefix("own ")] >= NEED_RANK[need] else "403"
    if caller == "neighbour reader":
        return "pass" if need is Need.READ else "403"
    if caller == "neighbour subscriber":
        return "pass" if need in (Need.READ, Need.SUBSCRIBE) else "403"
    return "403"  # the operator in a town, a town granted nothing


CALLERS = [
    "anonymous",
    "operator",
    *(f"own {role}" for role in ROLES),
    "neighbour reader",
    "neighbour subscriber",
    "other admin",
]


def headers_of(towns: Platform, caller: str) -> dict[str, str]:
    tenant = {"NGSILD-Tenant": OWNER}
    if caller == "anonymous":
        return tenant
    if caller == "operator":
        return {**towns.as_("operator"), **tenant}
    if caller.startswith("own "):
        return towns.as_(f"{OWNER}:{caller.removeprefix('own ')}", tenant=OWNER)
    if caller.startswith("neighbour "):
        return towns.as_(f"{NEIGHBOUR}:{caller.removeprefix('neighbour ')}", tenant=OWNER)
    return towns.as_(f"{OTHER}:admin", tenant=OWNER)


@pytest.fixture
async def towns(tmp_path: Path) -> AsyncIterator[Platform]:
    async with platform(tmp_path / "data") as running:
        await running.share(
            {
                "grantee": {"tenant": NEIGHBOUR},
                "permissions": ["subscribe"],
                "types": ["RiverGauge"],
            }
        )
        yield running


async def test_every_route_answers_every_caller_as_its_policy_says(towns: Platform) -> None:
    table = routes()
    assert len(table) > 50
    wrong = []
    for method, path, need, or_admin, or_operator in table:
        for caller in CALLERS:
            answer = await towns.http.request(
                method,
                url(path),
                headers={**headers_of(towns, caller), "Content-Type": "application/json"},
                content=b"{}" if method in ("POST", "PATCH", "PUT") else None,
            )
            kind = answer.json().get("type", "") if answer.content.startswith(b"{") else ""
            got = (
                "401"
                if kind == ERR + "Unauthorized"
                else "403"
                if kind == ERR + "Forbidden"
                else "pass"
            )
            want = expected(caller, need, or_admin, or_operator)
            if got != want:
                wrong.append(f"{caller}: {method} {path} -> {answer.status_code} ({want} expected)")
    assert wrong == []
