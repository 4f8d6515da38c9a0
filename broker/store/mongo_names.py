"""Database names for tenants: one MongoDB database per tenant, and no two tenants share one.

MongoDB limits database names to 63 characters (and refuses two that differ only in case);
tenant names (``broker.ngsild.tenants``) are lower case, ``[a-z0-9][a-z0-9_-]*``, at most 63
characters. The default tenant uses the base database itself. Another tenant uses
``<base>-t-<tenant>`` when that fits, else ``<base>-h-<digest>``, the digest being the SHA-256 of
the tenant name cut to what fits. The two forms differ at the letter after the base, so a
verbatim name can never equal a hashed one; verbatim names are distinct because tenant names
are; hashed names are distinct unless SHA-256 collides on the ``_MIN_DIGEST`` hex digits left
(the base name is limited so that at least 116 bits remain).
"""

from __future__ import annotations

import hashlib
import re
from typing import Final

from broker.ngsild.tenants import DEFAULT_TENANT

VERBATIM_INFIX: Final = "-t-"
HASHED_INFIX: Final = "-h-"
MAX_DATABASE_NAME: Final = 63
_MIN_DIGEST: Final = 29
MAX_BASE_NAME: Final = MAX_DATABASE_NAME - len(HASHED_INFIX) - _MIN_DIGEST
# A leading underscore marks the broker's own store tenants (a snapshot's frozen copy,
# ``_snapshot-<hex>``); client tenant names never start with one.
_TENANT: Final = re.compile(r"_?[a-z0-9][a-z0-9_-]{0,62}\Z")
# MongoDB's forbidden characters in database names (any platform).
_BASE: Final = re.compile(r"[^/\\. \"$*<>:|?\x00]+\Z")
# Nothing in a base that an infix could continue: then the names of two installations sharing a
# server differ too (if base A is a prefix of base B, B would have to go on with "-", "-t" or
# "-h" for one of B's names to be one of A's).
_INFIX_LIKE: Final = re.compile(r"-[th](?:-|\Z)|-\Z")


def check_base(base: str) -> str:
    """``base`` if it can name an installation's databases; raises ``ValueError`` otherwise."""
    if not _BASE.match(base) or len(base) > MAX_BASE_NAME:
        raise ValueError(
            f"MongoDB database {base!r} cannot be Toshi's base database: use at most "
            f'{MAX_BASE_NAME} characters without / \\ . space " $ * < > : | ?'
        )
    if _INFIX_LIKE.search(base):
        raise ValueError(
            f"MongoDB database {base!r} cannot be Toshi's base database: it must not contain "
            "'-t-' or '-h-', nor end with '-', '-t' or '-h'"
        )
    return base


def tenant_database_name(base: str, tenant: str) -> str:
    """The database of ``tenant`` in the installation whose base database is ``base``."""
    if tenant == DEFAULT_TENANT:
        return base
    if not _TENANT.match(tenant):
        raise ValueError(f"{tenant!r} is not a normalised tenant name")
    name = f"{base}{VERBATIM_INFIX}{tenant}"
    if len(name) <= MAX_DATABASE_NAME:
        return name
    room = MAX_DATABASE_NAME - len(base) - len(HASHED_INFIX)
    return f"{base}{HASHED_INFIX}{hashlib.sha256(tenant.encode()).hexdigest()[:room]}"


def is_installation_database(base: str, name: str) -> bool:
    """Whether ``name`` is the base database or a tenant database of ``base``."""
    return name == base or name.startswith((base + VERBATIM_INFIX, base + HASHED_INFIX))
