"""Registration subscriptions: which registrations a subscription watches and what it is told
(GS CIM 009 v1.8.1 §5.11, §5.3.2 CsourceNotification, §5.2.12 used for csource subscriptions).

A csource subscription is a Subscription document (same members); it selects registrations
whose information can hold the entities and watched attributes it names (``matching``), and
whose own members satisfy its ``q``, ``geoQ``, ``scopeQ`` and ``csf`` (``discovery.as_entity``).
A change of a registration is told with the reason of §5.11.1: ``newlyMatching`` (it matches
now and did not before — creations included), ``updated`` (it matched and still does) and
``noLongerMatching`` (it matched before — deletions included). The registration is shown with
only the RegistrationInfo elements that match (§5.11.6).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import replace
from typing import Any, Final

from broker.ngsild.query.model import EntityQuery, matches
from broker.ngsild.query.types import type_names
from broker.ngsild.registrations.discovery import as_entity
from broker.ngsild.registrations.documents import render_registration
from broker.ngsild.registrations.matching import Target, matching_infos
from broker.ngsild.registrations.registration import Registration, RegistrationInfo
from broker.ngsild.subscriptions.subscription import Filters, Subscription
from broker.ngsild.terms import TermTable

NEWLY_MATCHING: Final = "newlyMatching"
UPDATED: Final = "updated"
NO_LONGER_MATCHING: Final = "noLongerMatching"


def targets_of(sub: Subscription) -> list[Target]:
    """What a csource subscription selects, one target per entity selector."""
    attrs = None if sub.watched is None else frozenset(sub.watched)
    if not sub.entities:
        return [Target(attrs=attrs)]
    return [
        Target(
            ids=selector.ids,
            id_pattern=selector.id_pattern,
            types=None if selector.types is None else frozenset(type_names(selector.types)),
            attrs=attrs,
        )
        for selector in sub.entities
    ]


def relevant(
    sub: Subscription, filters: Filters, reg: Registration, expand: Callable[[str], str]
) -> Registration | None:
    """``reg`` reduced to the RegistrationInfos ``sub`` watches, or ``None`` if it does not
    match at all."""
    infos: list[RegistrationInfo] = []
    for target in targets_of(sub):
        infos.extend(info for info in matching_infos(reg, target) if info not in infos)
    if not infos:
        return None
    if filters.q is not None or filters.geo is not None or filters.scope is not None:
        doc = as_entity(reg, expand)
        if not matches(EntityQuery(q=filters.q, geo=filters.geo, scope=filters.scope), doc):
            return None
    if filters.csf is not None and not matches(EntityQuery(q=filters.csf), as_entity(reg, expand)):
        return None
    return replace(reg, information=tuple(infos))


def _typed_as_arrays(body: dict[str, Any]) -> dict[str, Any]:
    # EntityInfo.type is "a type or an array of types"; notifications use the array form,
    # which receivers (the ETSI suite among them) read as a list.
    for info in body.get("information", []):
        for entity in info.get("entities", []):
            if isinstance(entity.get("type"), str):
                entity["type"] = [entity["type"]]
    return body


def trigger_reason(before: bool, after: bool) -> str | None:
    """The reason a registration change is told for, or ``None`` if it is not."""
    if after:
        return UPDATED if before else NEWLY_MATCHING
    return NO_LONGER_MATCHING if before else None


def csource_notification(
    sub: Subscription,
    registrations: list[Registration],
    reason: str,
    terms: TermTable,
    *,
    now: str,
) -> dict[str, Any]:
    """The CsourceNotification body (§5.3.2)."""
    return {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "ContextSourceNotification",
        "subscriptionId": sub.id,
        "notifiedAt": now,
        "data": [_typed_as_arrays(render_registration(reg, terms)) for reg in registrations],
        "triggerReason": reason,
    }
