"""Subscriptions out: the JSON a client retrieves (GS CIM 009 v1.8.1 §5.8.3, §5.2.12) and the
lossless JSON document stores keep.

A retrieval shows the members the client sent, names compacted with the request's @context,
plus the read-only members: ``status`` (``active``, ``paused`` or ``expired``, computed against
``now``), the delivery status inside ``notification`` and, with ``sysAttrs``, createdAt and
modifiedAt. ``q``, ``geoQ``, ``scopeQ`` and ``csf`` are shown as sent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from broker.ngsild.query.model import Selector
from broker.ngsild.query.types import TypeExpr
from broker.ngsild.render import SHOWN_MEMBERS
from broker.ngsild.subscriptions.notification_params import (
    ACCEPT,
    FORMAT,
    SHOW_CHANGES,
    SYS_ATTRS,
    Endpoint,
    Notification,
)
from broker.ngsild.subscriptions.subscription import (
    IS_ACTIVE,
    SUBSCRIPTION_TYPE,
    Subscription,
    status,
)
from broker.ngsild.terms import TermTable

_TRIGGER_ORDER: Final = (
    "entityCreated",
    "entityUpdated",
    "entityDeleted",
    "attributeCreated",
    "attributeUpdated",
    "attributeDeleted",
)


def render_subscription(
    sub: Subscription, terms: TermTable, *, now: str, sys_attrs: bool = False
) -> dict[str, Any]:
    """``sub`` as a client sees it, names compacted with ``terms`` (no ``@context`` member)."""
    body: dict[str, Any] = {"id": sub.id, "type": SUBSCRIPTION_TYPE}
    optional: dict[str, Any] = {
        "subscriptionName": sub.name,
        "description": sub.description,
        "entities": None if sub.entities is None else [_selector(s, terms) for s in sub.entities],
        "watchedAttributes": None if sub.watched is None else _names(sorted(sub.watched), terms),
        "notificationTrigger": [t for t in _TRIGGER_ORDER if t in sub.triggers],
        "timeInterval": sub.time_interval,
        "q": sub.q,
        "geoQ": sub.geo,
        "scopeQ": sub.scope_q,
        "csf": sub.csf,
        "lang": sub.lang,
        "datasetId": None if sub.dataset_ids is None else list(sub.dataset_ids),
        "jsonldContext": sub.jsonld_context,
        "isActive": None if IS_ACTIVE in sub.defaulted else sub.is_active,
        "expiresAt": sub.expires_at,
        "throttling": sub.throttling,
        "notification": _notification(sub, terms),
        "status": status(sub, now),
    }
    body.update((name, value) for name, value in optional.items() if value is not None)
    if sys_attrs:
        body["createdAt"] = sub.created_at
        body["modifiedAt"] = sub.modified_at
    return body


def _selector(selector: Selector, terms: TermTable) -> dict[str, Any]:
    item: dict[str, Any] = {}
    if selector.ids is not None:
        item["id"] = selector.ids[0] if len(selector.ids) == 1 else list(selector.ids)
    if selector.id_pattern is not None:
        item["idPattern"] = selector.id_pattern
    if selector.types is not None:
        item["type"] = type_text(selector.types, terms)
    return item


def type_text(expr: TypeExpr, terms: TermTable) -> str:
    """A type expression in disjunctive normal form as ``type`` text (``A;B|C``)."""
    return "|".join(
        ";".join(sorted(terms.compact(iri) for iri in alternative)) for alternative in expr
    )


def _names(iris: Any, terms: TermTable) -> list[str]:
    return [name if name in SHOWN_MEMBERS else terms.compact(name) for name in iris]


def _notification(sub: Subscription, terms: TermTable) -> dict[str, Any]:
    notification = sub.notification
    defaulted = sub.defaulted
    body: dict[str, Any] = {}
    if notification.attributes is not None:
        body["attributes"] = _names(notification.attributes, terms)
    for member, value in (("pick", notification.pick), ("omit", notification.omit)):
        if value is not None:
            body[member] = _names(value, terms)
    if FORMAT not in defaulted:
        body["format"] = notification.format
    if SYS_ATTRS not in defaulted:
        body["sysAttrs"] = notification.sys_attrs
    if SHOW_CHANGES not in defaulted:
        body["showChanges"] = notification.show_changes
    if notification.join is not None:
        body["join"] = notification.join
    if notification.join_level is not None:
        body["joinLevel"] = notification.join_level
    body["endpoint"] = _endpoint(notification.endpoint, show_accept=ACCEPT not in defaulted)
    body.update(_delivery(sub))
    return body


def _endpoint(endpoint: Endpoint, *, show_accept: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"uri": endpoint.uri}
    if show_accept:
        body["accept"] = endpoint.accept
    if endpoint.receiver_info is not None:
        body["receiverInfo"] = [{"key": k, "value": v} for k, v in endpoint.receiver_info]
    if endpoint.notifier_info is not None:
        body["notifierInfo"] = [{"key": k, "value": v} for k, v in endpoint.notifier_info]
    return body


def _delivery(sub: Subscription) -> dict[str, Any]:
    # §5.2.14: status is "ok" or "failed" after the last attempt; absent before any attempt,
    # as are the counters (a new subscription reads back as it was created).
    body: dict[str, Any] = {}
    members = (
        ("timesSent", sub.times_sent or None),
        ("timesFailed", sub.times_failed or None),
        ("lastNotification", sub.last_notification),
        ("lastSuccess", sub.last_success),
        ("lastFailure", sub.last_failure),
    )
    body.update((name, value) for name, value in members if value is not None)
    if sub.last_failure is not None and (
        sub.last_success is None
        or datetime.fromisoformat(sub.last_failure) >= datetime.fromisoformat(sub.last_success)
    ):
        body["status"] = "failed"
    elif sub.last_success is not None:
        body["status"] = "ok"
    return body


def to_doc(sub: Subscription) -> dict[str, Any]:
    """``sub`` as plain JSON for stores; ``from_doc`` gives it back unchanged."""
    doc = {name: getattr(sub, name) for name in Subscription.__dataclass_fields__}
    doc["entities"] = None if sub.entities is None else [_selector_doc(s) for s in sub.entities]
    doc["watched"] = None if sub.watched is None else sorted(sub.watched)
    doc["triggers"] = sorted(sub.triggers)
    doc["dataset_ids"] = None if sub.dataset_ids is None else list(sub.dataset_ids)
    doc["defaulted"] = sorted(sub.defaulted)
    doc["notification"] = _notification_doc(sub.notification)
    return doc


def from_doc(doc: dict[str, Any]) -> Subscription:
    """The subscription ``to_doc`` stored."""
    fields = dict(doc)
    entities = doc["entities"]
    fields["entities"] = None if entities is None else tuple(_selector_of(s) for s in entities)
    fields["watched"] = None if doc["watched"] is None else frozenset(doc["watched"])
    fields["triggers"] = frozenset(doc["triggers"])
    fields["dataset_ids"] = _tuple(doc["dataset_ids"])
    fields["defaulted"] = frozenset(doc["defaulted"])
    fields["notification"] = _notification_of(doc["notification"])
    return Subscription(**fields)


def _selector_doc(selector: Selector) -> dict[str, Any]:
    types = selector.types
    return {
        "types": None if types is None else [sorted(alternative) for alternative in types],
        "ids": None if selector.ids is None else list(selector.ids),
        "id_pattern": selector.id_pattern,
    }


def _selector_of(doc: dict[str, Any]) -> Selector:
    types = doc["types"]
    return Selector(
        types=None if types is None else tuple(frozenset(a) for a in types),
        ids=_tuple(doc["ids"]),
        id_pattern=doc["id_pattern"],
    )


def _notification_doc(notification: Notification) -> dict[str, Any]:
    doc = {name: getattr(notification, name) for name in Notification.__dataclass_fields__}
    for name in ("attributes", "pick", "omit"):
        doc[name] = None if doc[name] is None else list(doc[name])
    endpoint = notification.endpoint
    doc["endpoint"] = {
        "uri": endpoint.uri,
        "accept": endpoint.accept,
        "receiver_info": _pairs_doc(endpoint.receiver_info),
        "notifier_info": _pairs_doc(endpoint.notifier_info),
    }
    return doc


def _notification_of(doc: dict[str, Any]) -> Notification:
    fields = dict(doc)
    for name in ("attributes", "pick", "omit"):
        fields[name] = _tuple(doc[name])
    endpoint = doc["endpoint"]
    fields["endpoint"] = Endpoint(
        uri=endpoint["uri"],
        accept=endpoint["accept"],
        receiver_info=_pairs_of(endpoint["receiver_info"]),
        notifier_info=_pairs_of(endpoint["notifier_info"]),
    )
    return Notification(**fields)


def _pairs_doc(pairs: tuple[tuple[str, str], ...] | None) -> list[list[str]] | None:
    return None if pairs is None else [[key, value] for key, value in pairs]


def _pairs_of(pairs: list[list[str]] | None) -> tuple[tuple[str, str], ...] | None:
    return None if pairs is None else tuple((key, value) for key, value in pairs)


def _tuple(items: list[str] | None) -> tuple[str, ...] | None:
    return None if items is None else tuple(items)
