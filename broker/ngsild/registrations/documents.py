"""Registrations out: what a client retrieves (GS CIM 009 v1.8.1 §5.10.1, Table 5.2.9-1) and
the lossless JSON document stores keep.

A retrieval shows the members the client sent, names compacted with the request's @context,
plus, once requests were forwarded to the source, its delivery status (``status``,
``timesSent``, ``timesFailed``, ``lastSuccess``, ``lastFailure``) and, with
``sysAttrs``, createdAt and modifiedAt. ``mode`` and ``operations`` are shown with their
defaults, as the spec's examples do. ``contextSourceInfo`` is shown to whoever may read the
registration: it is the registrant's own configuration, only logs must never carry it.
"""

from __future__ import annotations

from dataclasses import asdict, fields
from typing import Any

from broker.ngsild.registrations import operations as ops
from broker.ngsild.registrations.registration import (
    REGISTRATION_TYPE,
    EntityInfo,
    Registration,
    RegistrationInfo,
)
from broker.ngsild.terms import TermTable


def render_registration(
    reg: Registration, terms: TermTable, *, sys_attrs: bool = False
) -> dict[str, Any]:
    """``reg`` as a client sees it (no ``@context`` member)."""
    body: dict[str, Any] = {"id": reg.id, "type": REGISTRATION_TYPE}
    optional: dict[str, Any] = {
        "registrationName": reg.name,
        "description": reg.description,
        "endpoint": reg.endpoint,
        "information": [_info(info, terms) for info in reg.information],
        "tenant": reg.tenant,
        "observationInterval": reg.observation_interval,
        "managementInterval": reg.management_interval,
        **reg.geo,
        "expiresAt": reg.expires_at,
        "contextSourceInfo": None
        if reg.context_source_info is None
        else [{"key": key, "value": value} for key, value in reg.context_source_info],
        "scope": None
        if reg.scope is None
        else (reg.scope[0] if len(reg.scope) == 1 else list(reg.scope)),
        "mode": reg.effective_mode,
        "operations": list(reg.operations or ops.DEFAULT_OPERATIONS),
        "management": reg.management,
        "refreshRate": reg.refresh_rate,
    }
    body.update((name, value) for name, value in optional.items() if value is not None)
    body.update((terms.compact(name), value) for name, value in reg.extra.items())
    if reg.times_sent:  # Table 5.2.9-1: the delivery status exists once something was sent
        failed = (reg.last_failure or "") > (reg.last_success or "")
        body["status"] = "failed" if failed else "ok"
        body["timesSent"] = reg.times_sent
        body["timesFailed"] = reg.times_failed
        times = {"lastSuccess": reg.last_success, "lastFailure": reg.last_failure}
        body.update((name, value) for name, value in times.items() if value is not None)
    if sys_attrs:
        body["createdAt"] = reg.created_at
        body["modifiedAt"] = reg.modified_at
    return body


def _info(info: RegistrationInfo, terms: TermTable) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if info.entities is not None:
        item["entities"] = [_entity(entity, terms) for entity in info.entities]
    if info.property_names is not None:
        item["propertyNames"] = [terms.compact(name) for name in info.property_names]
    if info.relationship_names is not None:
        item["relationshipNames"] = [terms.compact(name) for name in info.relationship_names]
    return item


def _entity(entity: EntityInfo, terms: TermTable) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if entity.id is not None:
        item["id"] = entity.id
    if entity.id_pattern is not None:
        item["idPattern"] = entity.id_pattern
    item["type"] = terms.compact(entity.type)
    return item


def to_doc(reg: Registration) -> dict[str, Any]:
    """The JSON document stores keep (every field, names expanded)."""
    return asdict(reg)


def from_doc(doc: dict[str, Any]) -> Registration:
    """The inverse of ``to_doc``."""
    values = {f.name: doc.get(f.name, f.default) for f in fields(Registration)}
    values["information"] = tuple(
        RegistrationInfo(
            None
            if info["entities"] is None
            else tuple(EntityInfo(**entity) for entity in info["entities"]),
            None if info["property_names"] is None else tuple(info["property_names"]),
            None if info["relationship_names"] is None else tuple(info["relationship_names"]),
        )
        for info in doc["information"]
    )
    for name in ("operations", "scope"):
        if values[name] is not None:
            values[name] = tuple(values[name])
    if values["context_source_info"] is not None:
        values["context_source_info"] = tuple(tuple(p) for p in values["context_source_info"])
    values["geo"] = dict(doc.get("geo") or {})
    values["extra"] = dict(doc.get("extra") or {})
    return Registration(**values)
