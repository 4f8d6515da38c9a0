"""Roles a principal holds in a tenant, ordered so that a higher role includes the lower ones."""

from __future__ import annotations

from enum import IntEnum


class Role(IntEnum):
    """A principal's role in one tenant; ``a >= b`` means ``a`` may do all that ``b`` may.

    The platform-wide *operator* (tenants, metrics, health) is not a tenant role but a flag on
    the principal (``Principal.operator``), so that running the platform never implies reading
    a town's data.
    """

    READER = 1
    """Retrieve and query entities, discovery (types, attributes, @contexts)."""
    SUBSCRIBER = 2
    """A reader that also manages its own subscriptions."""
    EDITOR = 3
    """A subscriber that may also write entities and manage every subscription of the tenant."""
    ADMIN = 4
    """An editor that also manages tenant settings, devices, API keys, role bindings, grants."""

    @property
    def label(self) -> str:
        """The role's name as written in claims, records and APIs (``"editor"``)."""
        return self.name.lower()


OPERATOR = "operator"
"""How the platform operator flag is written where roles are (claims, API key requests)."""


def parse_role(text: str) -> Role | None:
    """The role called ``text`` (case-insensitive), or None if there is no such role."""
    try:
        return Role[text.strip().upper()]
    except KeyError:
        return None
