"""Subscriptions: the client's JSON → a validated, expanded ``Subscription`` (GS CIM 009 v1.8.1
§5.2.12 Subscription, §5.2.14 NotificationParams, §5.2.15 Endpoint, §5.8.1 and §5.8.2).

Theory of operation. Each member of a Subscription has one parser in ``_MEMBERS`` that turns its
JSON value into field values of the dataclass. Creation runs the parsers of the members present
over the defaults; an update (PATCH) runs the parsers of the fragment's members over the stored
subscription, and a ``null`` puts an optional member back to its default. Both then check the
rules that tie members together (``_check_together``), so a fragment cannot produce a
subscription a creation would refuse.

Names (entity types, watched and notified attributes, pick/omit) are expanded once, with the
request's @context. ``q``, ``geoQ``, ``scopeQ`` and ``csf`` are kept as the text/JSON the client
sent, because their names can only be expanded faithfully with the @context they were written
in (kept in ``context``); ``parse_filters`` turns them into query trees with that context's terms.

Members that have a default and were not given are listed in ``defaulted`` so that a retrieval
shows what the client sent and not the defaults (the conformance suite compares exactly).
Read-only members sent by a client (``status``, ``timesSent``, ``createdAt``...) and unknown
members are ignored, as Table 5.2.12-2 asks.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, TypeVar
from urllib.parse import unquote

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_datetime, check_uri
from broker.ngsild.query.geo import GeoQuery, parse_geo_object
from broker.ngsild.query.model import Selector
from broker.ngsild.query.params import attribute_names, parse_selectors
from broker.ngsild.query.qlang import QExpr, parse_q
from broker.ngsild.query.scopeq import ScopeExpr, parse_scope_query
from broker.ngsild.query.types import is_plain, type_names
from broker.ngsild.subscriptions.changes import ATTRIBUTE_CREATED, ATTRIBUTE_UPDATED, TRIGGERS
from broker.ngsild.subscriptions.notification_params import (
    NOTIFICATION_DEFAULTS,
    Notification,
    notification_defaulted,
    parse_notification,
    strings,
)
from broker.ngsild.terms import TermTable

SUBSCRIPTION_TYPE: Final = "Subscription"
DEFAULT_TRIGGERS: Final = frozenset({ATTRIBUTE_CREATED, ATTRIBUTE_UPDATED})
"""Table 5.2.12-1: without ``notificationTrigger``, attribute creations and updates notify."""


# Members with defaults, named as on the wire; listed in Subscription.defaulted when not given.
IS_ACTIVE: Final = "isActive"

_T = TypeVar("_T")
_Parser = Callable[[Any, TermTable, str], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription as stores keep it (also as JSON, see ``subscription_render.to_doc``).

    Attributes:
        id: the subscription URI.
        entities: entity selectors with expanded types (``None``: any entity).
        watched: watched attribute IRIs (``None``: any attribute).
        triggers: the notification triggers.
        q: the ``q`` text as given. geo: the ``geoQ`` object as given. scope_q: ``scopeQ`` text.
        csf: the context source filter text. lang: the language filter.
        notification: the notification parameters.
        throttling: minimum seconds between two notifications.
        time_interval: seconds between periodic notifications.
        expires_at: when the subscription expires (UTC date-time).
        is_active: whether the client wants notifications (``False``: paused).
        name: ``subscriptionName``. description: free text.
        dataset_ids: ``datasetId`` filter (URIs). jsonld_context: @context URI for notifications.
        context: the @context the subscription was created with (to expand q, geoQ, ...).
        created_at, modified_at: system timestamps.
        defaulted: wire names of members that took their default (not shown on retrieval).
        times_sent, times_failed, last_notification, last_success, last_failure: delivery
            status kept by the notification engine.
        owner: the principal that created it (with authentication on).
        shared_by: for a subscription of another town made through a sharing grant, that
            principal as it was at creation; its notifications show only what is shared.
    """

    id: str
    notification: Notification
    created_at: str
    modified_at: str
    entities: tuple[Selector, ...] | None = None
    watched: frozenset[str] | None = None
    triggers: frozenset[str] = DEFAULT_TRIGGERS
    q: str | None = None
    geo: dict[str, Any] | None = None
    scope_q: str | None = None
    csf: str | None = None
    lang: str | None = None
    throttling: float | None = None
    time_interval: float | None = None
    expires_at: str | None = None
    is_active: bool = True
    name: str | None = None
    description: str | None = None
    dataset_ids: tuple[str, ...] | None = None
    jsonld_context: str | None = None
    context: Any = None
    defaulted: frozenset[str] = field(default=frozenset())
    times_sent: int = 0
    times_failed: int = 0
    last_notification: str | None = None
    last_success: str | None = None
    last_failure: str | None = None
    owner: str | None = None
    shared_by: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Filters:
    """The parsed ``q``, ``geoQ``, ``scopeQ`` and ``csf`` of a subscription.

    ``plain_types`` is set when the entity selectors are nothing but type alternatives (no ids,
    patterns or ``;`` combinations): selecting an entity is then one set intersection, which
    the matcher uses instead of the general evaluator on the hot path of every write.
    """

    q: QExpr | None = None
    geo: GeoQuery | None = None
    scope: ScopeExpr | None = None
    csf: QExpr | None = None
    plain_types: frozenset[str] | None = None


def parse_subscription(body: Any, terms: TermTable, *, now: str, context: Any) -> Subscription:
    """Validate a ``POST /subscriptions`` body (§5.8.1) and expand its names with ``terms``.

    Args:
        body: the parsed JSON body (its ``@context`` member is the caller's business).
        terms: the term table of the request's @context.
        now: the current UTC time; becomes createdAt/modifiedAt, and expiresAt must be later.
        context: the @context to keep with the subscription.

    Raises:
        BadRequestData: the body breaks a rule of §5.2.12-§5.2.15.
    """
    if not isinstance(body, dict):
        raise BadRequestData("a subscription must be a JSON object")
    _check_type(body.get("type"), required=True)
    if "notification" not in body:
        raise BadRequestData("a subscription needs a 'notification' member")
    sub_id = body.get("id")
    fields: dict[str, Any] = {
        "id": new_id() if sub_id is None else check_uri(sub_id, "subscription id"),
        "created_at": now,
        "modified_at": now,
        "context": context,
        "defaulted": frozenset({IS_ACTIVE}),
    }
    for member, value in body.items():
        _apply_member(fields, member, value, terms, now)
    subscription = Subscription(**fields)
    _check_together(subscription, terms)
    return subscription


def apply_patch(sub: Subscription, fragment: Any, terms: TermTable, *, now: str) -> Subscription:
    """``sub`` updated with a ``PATCH /subscriptions/{id}`` fragment (§5.8.2).

    Each member of the fragment replaces the stored one (``notification`` as a whole); ``null``
    removes an optional member. Pausing and resuming is ``isActive``; the status follows.

    Raises:
        BadRequestData: the fragment is not an object, changes the id, removes a mandatory
            member, or the result breaks a rule of §5.2.12.
    """
    if not isinstance(fragment, dict):
        raise BadRequestData("a subscription fragment must be a JSON object")
    _check_type(fragment.get("type"), required=False)
    if "id" in fragment and fragment["id"] != sub.id:
        raise BadRequestData("the id of a subscription cannot be changed")
    fields = {name: getattr(sub, name) for name in Subscription.__dataclass_fields__}
    for member, value in fragment.items():
        if value is None:
            _remove_member(fields, member)
        else:
            _apply_member(fields, member, value, terms, now)
    fields["modified_at"] = now
    updated = Subscription(**fields)
    _check_together(updated, terms)
    return updated


def parse_filters(sub: Subscription, terms: TermTable) -> Filters:
    """The query trees of ``sub``'s q, geoQ, scopeQ and csf, expanded with ``terms`` (the term
    table of ``sub.context``).

    Raises:
        BadRequestData: one of them is not valid.
    """
    return Filters(
        q=None if sub.q is None else parse_q(_url_decoded(sub.q), terms.expand),
        geo=None if sub.geo is None else parse_geo_object(sub.geo, terms.expand),
        scope=None if sub.scope_q is None else parse_scope_query(sub.scope_q),
        csf=None if sub.csf is None else parse_q(sub.csf, terms.expand),
        plain_types=_plain_types(sub.entities),
    )


def _plain_types(selectors: tuple[Selector, ...] | None) -> frozenset[str] | None:
    if not selectors:
        return None
    names: set[str] = set()
    for selector in selectors:
        if selector.types is None or selector.ids or selector.id_pattern:
            return None
        if not is_plain(selector.types):
            return None
        names.update(type_names(selector.types))
    return frozenset(names)


def _url_decoded(q: str) -> str:
    # Clients copy q from URLs (the conformance suite sends "name==\"Eiffel%20Tower\""), and
    # "%" has no meaning in the q grammar outside quoted values, so decoding cannot change a
    # query that was written unencoded except for a literal "%XX" inside a string value.
    return unquote(q) if "%" in q else q


def status(sub: Subscription, now: str) -> str:
    """``expired`` once expiresAt has passed, else ``paused`` or ``active`` (§5.2.12)."""
    if sub.expires_at is not None and _moment(sub.expires_at) <= _moment(now):
        return "expired"
    return "active" if sub.is_active else "paused"


def new_id() -> str:
    """A fresh subscription URI (§5.8.1.4: generated when the client gives none)."""
    return f"urn:ngsi-ld:Subscription:{uuid.uuid4()}"


def _check_type(value: Any, *, required: bool) -> None:
    if value is None and not required:
        return
    if value != SUBSCRIPTION_TYPE:
        raise BadRequestData(f"a subscription's type must be 'Subscription', got {value!r}")


def _apply_member(
    fields: dict[str, Any], member: str, value: Any, terms: TermTable, now: str
) -> None:
    parser = _MEMBERS.get(member)
    if parser is None:
        return  # read-only, @context, id, type or unknown: nothing to store
    fields.update(parser(value, terms, now))
    defaulted = set(fields["defaulted"])
    if member == IS_ACTIVE:
        defaulted.discard(IS_ACTIVE)
    if member == "notification":
        defaulted = (defaulted - NOTIFICATION_DEFAULTS) | notification_defaulted(value)
    fields["defaulted"] = frozenset(defaulted)


def _remove_member(fields: dict[str, Any], member: str) -> None:
    if member in ("notification", "type", "id"):
        raise BadRequestData(f"'{member}' is mandatory and cannot be removed")
    names = _FIELDS_OF.get(member)
    if names is None:
        return
    for name in names:
        fields[name] = Subscription.__dataclass_fields__[name].default
    if member == IS_ACTIVE:
        fields["defaulted"] = fields["defaulted"] | {IS_ACTIVE}


def _check_together(sub: Subscription, terms: TermTable) -> None:
    # Table 5.2.12-1 restrictions that involve more than one member.
    if sub.entities is None and sub.watched is None:
        raise BadRequestData("a subscription needs 'entities' or 'watchedAttributes' (or both)")
    if sub.time_interval is not None and sub.watched is not None:
        raise BadRequestData("'timeInterval' cannot be combined with 'watchedAttributes'")
    if sub.time_interval is not None and sub.throttling is not None:
        raise BadRequestData("'timeInterval' cannot be combined with 'throttling'")
    parse_filters(sub, terms)


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _entities(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    return {"entities": parse_selectors(value, terms)}


def _watched(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    return {"watched": frozenset(attribute_names(strings(value, "watchedAttributes"), terms))}


def _triggers(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    names = strings(value, "notificationTrigger")
    unknown = sorted(set(names) - TRIGGERS)
    if unknown:
        raise BadRequestData(
            f"unknown notificationTrigger value(s) {', '.join(unknown)}; "
            f"use {', '.join(sorted(TRIGGERS))}"
        )
    return {"triggers": frozenset(names)}


def _text_member(member: str, name: str, check: Callable[[str], Any] | None = None) -> _Parser:
    def parse(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
        if not isinstance(value, str) or not value:
            raise BadRequestData(f"'{member}' must be a non-empty string")
        if check is not None:
            check(value)
        return {name: value}

    return parse


def _geo(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    parse_geo_object(value, terms.expand)
    return {"geo": value}


def _seconds(member: str, name: str) -> _Parser:
    def parse(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BadRequestData(f"'{member}' must be a positive number of seconds, got {value!r}")
        return {name: value}

    return parse


def _expires_at(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    moment = check_datetime(value, "expiresAt")
    if _moment(moment) <= _moment(now):
        raise BadRequestData(f"expiresAt {moment} is not in the future")
    return {"expires_at": moment}


def _is_active(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    if not isinstance(value, bool):
        raise BadRequestData(f"'isActive' must be true or false, got {value!r}")
    return {"is_active": value}


def _dataset_ids(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    items = strings(value, "datasetId")
    return {"dataset_ids": tuple(check_uri(item, "datasetId") for item in items)}


def _jsonld_context(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    return {"jsonld_context": check_uri(value, "jsonldContext")}


def _notification(value: Any, terms: TermTable, now: str) -> dict[str, Any]:
    return {"notification": parse_notification(value, terms)}


_MEMBERS: Final[dict[str, _Parser]] = {
    "entities": _entities,
    "watchedAttributes": _watched,
    "notificationTrigger": _triggers,
    "q": _text_member("q", "q"),
    "geoQ": _geo,
    "scopeQ": _text_member("scopeQ", "scope_q", parse_scope_query),
    "csf": _text_member("csf", "csf"),
    "lang": _text_member("lang", "lang"),
    "subscriptionName": _text_member("subscriptionName", "name"),
    "description": _text_member("description", "description"),
    "throttling": _seconds("throttling", "throttling"),
    "timeInterval": _seconds("timeInterval", "time_interval"),
    "expiresAt": _expires_at,
    "isActive": _is_active,
    "datasetId": _dataset_ids,
    "jsonldContext": _jsonld_context,
    "notification": _notification,
}

_FIELDS_OF: Final[dict[str, tuple[str, ...]]] = {
    "entities": ("entities",),
    "watchedAttributes": ("watched",),
    "notificationTrigger": ("triggers",),
    "q": ("q",),
    "geoQ": ("geo",),
    "scopeQ": ("scope_q",),
    "csf": ("csf",),
    "lang": ("lang",),
    "subscriptionName": ("name",),
    "description": ("description",),
    "throttling": ("throttling",),
    "timeInterval": ("time_interval",),
    "expiresAt": ("expires_at",),
    "isActive": ("is_active",),
    "datasetId": ("dataset_ids",),
    "jsonldContext": ("jsonld_context",),
}
