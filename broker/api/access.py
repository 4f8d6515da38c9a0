"""Who may call a route: one policy per route, declared beside it (issue 12).

Every route of the application declares what it needs in its decorator, for example
``@router.get("/entities", dependencies=[READ])``; nothing else decides who may call it, and a
test enumerates the application's routes so that a route without a policy cannot be added.
The needs, from least to most:

- ``PUBLIC``: anyone (health, the OpenAPI document).
- ``READ``: retrieve, query and discovery in a tenant — a ``reader`` of it, or a town it
  granted read access to, which then sees only what the grant covers.
- ``SUBSCRIBE``: create and change one's own subscriptions (``subscriber``).
- ``WRITE``: every entity write (``editor``).
- ``ADMIN``: the tenant's settings, devices, dead letters, keys and grants (``admin``).
- ``OPERATOR``: the platform: tenants and metrics of all of them (``operator``).

The policy is a FastAPI dependency, so it runs before the handler and before the body is read.
"""

from __future__ import annotations

from enum import IntEnum

from fastapi import Request
from fastapi.params import Depends


class Need(IntEnum):
    """What a route needs, ordered: each includes those below it (except ``OPERATOR``,
    which is platform-wide rather than per tenant)."""

    PUBLIC = 0
    READ = 1
    SUBSCRIBE = 2
    WRITE = 3
    ADMIN = 4
    OPERATOR = 5


class Policy:
    """The dependency a route declares; checks the caller before the handler runs."""

    def __init__(self, need: Need) -> None:
        self.need = need

    def __repr__(self) -> str:
        return f"Policy({self.need.name})"

    async def __call__(self, request: Request) -> None:
        request.state.need = self.need


def policy(need: Need) -> Depends:
    """The ``Depends`` a route lists in ``dependencies=[...]``."""
    return Depends(Policy(need))


PUBLIC = policy(Need.PUBLIC)
READ = policy(Need.READ)
SUBSCRIBE = policy(Need.SUBSCRIBE)
WRITE = policy(Need.WRITE)
ADMIN = policy(Need.ADMIN)
OPERATOR = policy(Need.OPERATOR)
