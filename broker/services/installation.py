"""This installation's id: generated once and kept in the store.

It tells this Toshi from any other on a shared MQTT broker (``TOSHI_MQTT__CLIENT_ID`` and
``TOSHI_MQTT__SHARED_GROUP`` default to names made from it), survives restarts and upgrades,
and is shared by the replicas of one store (MongoDB): they are one installation. It is a record
of the default tenant (kind ``installation``), written through the store port, so every backend
keeps it the same way.

Replicas of a new MongoDB store that start at the same instant may each write an id; each then
uses what it reads back, so they agree unless their writes and reads interleave exactly, and a
replica left with the other id agrees again from its next start.
"""

from __future__ import annotations

import secrets
from typing import Final

from broker.store.base import Store

KIND: Final = "installation"
"""Record kind of the installation id, in the default tenant."""
_KEY: Final = "id"


async def installation_id(store: Store) -> str:
    """The id of the installation ``store`` belongs to, made (12 hex digits) on first use."""
    default = await store.tenant("", create=True)
    found = _stored(await default.records(KIND))
    if found is not None:
        return found
    # 48 random bits: two installations on one broker share an id with odds of about 1e-14.
    await default.save_record(KIND, _KEY, {"id": secrets.token_hex(6)})
    found = _stored(await default.records(KIND))
    if found is None:  # our own write vanished: the store is broken, not the data
        raise RuntimeError("the store did not keep the installation id it was given")
    return found


def _stored(docs: list[dict[str, object]]) -> str | None:
    for doc in docs:
        value = doc.get("id")
        if isinstance(value, str) and value:
            return value
    return None
