"""Operations a registration covers, and the operation groups (GS CIM 009 v1.8.1 §4.20,
Table 4.20-1; v1.9.1 §5.2.9 ``operations``).

A registration lists operation names or group names; without ``operations`` it covers
``federationOps``. ``covers`` expands groups, so a caller asks for one operation by name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from broker.ngsild.errors import BadRequestData

RETRIEVE_ENTITY: Final = "retrieveEntity"
QUERY_ENTITY: Final = "queryEntity"
QUERY_BATCH: Final = "queryBatch"
CREATE_ENTITY: Final = "createEntity"
UPDATE_ENTITY: Final = "updateEntity"
APPEND_ATTRS: Final = "appendAttrs"
UPDATE_ATTRS: Final = "updateAttrs"
DELETE_ATTRS: Final = "deleteAttrs"
DELETE_ENTITY: Final = "deleteEntity"
MERGE_ENTITY: Final = "mergeEntity"
REPLACE_ENTITY: Final = "replaceEntity"
REPLACE_ATTRS: Final = "replaceAttrs"
CREATE_BATCH: Final = "createBatch"
UPSERT_BATCH: Final = "upsertBatch"
UPDATE_BATCH: Final = "updateBatch"
DELETE_BATCH: Final = "deleteBatch"
MERGE_BATCH: Final = "mergeBatch"
PURGE_ENTITY: Final = "purgeEntity"
RETRIEVE_TYPES: Final = "retrieveEntityTypes"
RETRIEVE_ATTR_TYPES: Final = "retrieveAttrTypes"

_DISCOVERY: Final = (
    RETRIEVE_TYPES,
    "retrieveEntityTypeDetails",
    "retrieveEntityTypeInfo",
    RETRIEVE_ATTR_TYPES,
    "retrieveAttrTypeDetails",
    "retrieveAttrTypeInfo",
)
_SUBSCRIPTION: Final = (
    "createSubscription",
    "updateSubscription",
    "retrieveSubscription",
    "querySubscription",
    "deleteSubscription",
)
_TEMPORAL: Final = (
    "createTemporal",
    "upsertTemporal",
    "appendAttrsTemporal",
    "deleteAttrsTemporal",
    "updateAttrsTemporal",
    "deleteAttrInstanceTemporal",
    "deleteTemporal",
    "retrieveTemporal",
    "queryTemporal",
)
_WRITES: Final = (
    CREATE_ENTITY,
    UPDATE_ENTITY,
    APPEND_ATTRS,
    UPDATE_ATTRS,
    DELETE_ATTRS,
    DELETE_ENTITY,
    MERGE_ENTITY,
    REPLACE_ENTITY,
    REPLACE_ATTRS,
    CREATE_BATCH,
    UPSERT_BATCH,
    UPDATE_BATCH,
    DELETE_BATCH,
    MERGE_BATCH,
    PURGE_ENTITY,
)
GROUPS: Final[dict[str, frozenset[str]]] = {
    "federationOps": frozenset(
        (RETRIEVE_ENTITY, QUERY_ENTITY, QUERY_BATCH, *_DISCOVERY, *_SUBSCRIPTION)
    ),
    "updateOps": frozenset((UPDATE_ENTITY, UPDATE_ATTRS, REPLACE_ENTITY, REPLACE_ATTRS)),
    "retrieveOps": frozenset((RETRIEVE_ENTITY, QUERY_ENTITY)),
    "redirectionOps": frozenset(
        (*_WRITES, RETRIEVE_ENTITY, QUERY_ENTITY, QUERY_BATCH, *_DISCOVERY, *_TEMPORAL)
    ),
}
DEFAULT_OPERATIONS: Final = ("federationOps",)
KNOWN: Final = frozenset(
    (RETRIEVE_ENTITY, QUERY_ENTITY, QUERY_BATCH, *_DISCOVERY, *_SUBSCRIPTION, *_TEMPORAL)
).union(_WRITES, GROUPS)
WRITES: Final = frozenset(_WRITES) | {
    name for name in _TEMPORAL if not name.startswith(("retrieve", "query"))
}
"""Operations that change data: an auxiliary registration may not offer them (§5.9.2.4)."""


def expand(names: Iterable[str]) -> frozenset[str]:
    """The individual operations ``names`` (operations or groups) stand for."""
    found: set[str] = set()
    for name in names:
        found |= GROUPS.get(name, {name})
    return frozenset(found)


def check_operations(value: object) -> tuple[str, ...]:
    """The ``operations`` member: a non-empty array of known operation or group names."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise BadRequestData("'operations' must be a non-empty array of operation names")
    unknown = sorted(set(value) - KNOWN)
    if unknown:
        raise BadRequestData(f"unknown operation(s) {', '.join(unknown)}")
    return tuple(value)
