"""Tenant names (GS CIM 009 v1.8.1 §4.14, §6.3.14 ``NGSILD-Tenant``).

A tenant name ends up as a database or file name, so it is held to a strict pattern and folded to
lower case: ``Town`` and ``town`` are the same tenant, and ``../x`` is no tenant at all.
"""

from __future__ import annotations

import re
from typing import Final

from broker.ngsild.errors import BadRequestData

DEFAULT_TENANT: Final = ""
"""The tenant a request targets when it names none."""

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}\Z")


def tenant_from_header(header: str | None) -> str:
    """The normalised tenant for an ``NGSILD-Tenant`` header value (absent → default)."""
    if header is None:
        return DEFAULT_TENANT
    name = header.strip().lower()
    if not name:
        return DEFAULT_TENANT
    if not _NAME.match(name):
        raise BadRequestData(
            f"invalid tenant {header!r}: use 1-63 letters, digits, '-' or '_', "
            "starting with a letter or digit"
        )
    return name
