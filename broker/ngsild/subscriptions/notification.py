"""The Notification a subscription's receiver gets (GS CIM 009 v1.8.1 §5.3.1, §6.3.13).

Pure: the entity is rendered with the subscription's @context and notification parameters
(``attributes``, ``format``, ``sysAttrs``, ``lang``); the HTTP headers follow ``endpoint.accept``
(``application/json`` carries the @context in a ``Link`` header, ``application/ld+json`` in the
body), add the tenant (``NGSILD-Tenant``) and the subscription's ``receiverInfo`` pairs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any, Final

import orjson

from broker.ngsild.entity import EntityDoc
from broker.ngsild.linked import render_joined
from broker.ngsild.render import (
    CONCISE,
    NORMALIZED,
    SHOWN_MEMBERS,
    SIMPLIFIED,
    View,
    render_entity,
)
from broker.ngsild.subscriptions.subscription import Subscription
from broker.ngsild.terms import TermTable, body_context, context_link_header

JSON_LD = "application/ld+json"
JOINED: Final = ("flat", "inline")
"""``notification.join`` values that show linked entities."""
_FORMATS = {"normalized": NORMALIZED, "concise": CONCISE, "keyValues": SIMPLIFIED}


def notification_view(sub: Subscription) -> View:
    """How the subscription wants entities shown.

    ``notification.pick``/``omit`` (v1.8 §5.2.14) project the notified entities as the query
    parameters of the same names do (§4.21): entity members among ``id``, ``type``, ``scope``,
    and attribute IRIs.
    """
    params = sub.notification
    attrs = None if params.attributes is None else frozenset(params.attributes)
    members, omitted = SHOWN_MEMBERS, frozenset[str]()
    if params.pick is not None:
        members = SHOWN_MEMBERS.intersection(params.pick)
        attrs = frozenset(params.pick).difference(SHOWN_MEMBERS)
    if params.omit is not None:
        members = members.difference(params.omit)
        omitted = frozenset(params.omit).difference(SHOWN_MEMBERS)
    return View(
        format=_FORMATS.get(params.format, SIMPLIFIED),
        sys_attrs=params.sys_attrs,
        attrs=attrs,
        omitted=omitted,
        members=members,
        lang=sub.lang,
        dataset_ids=None if sub.dataset_ids is None else frozenset(sub.dataset_ids),
    )


def notification_body(
    sub: Subscription,
    docs: list[EntityDoc],
    terms: TermTable,
    *,
    now: str,
    linked: Mapping[str, EntityDoc] | None = None,
) -> dict[str, Any]:
    """The Notification object for ``docs`` (compacted with the subscription's ``terms``).

    ``linked`` holds the entities ``docs`` link to, for subscriptions that ``join`` them.
    """
    view = notification_view(sub)
    join = sub.notification.join
    if linked is not None and join in JOINED:
        levels = sub.notification.join_level or 1
        data = render_joined(docs, terms, view, linked, levels, join)
    else:
        data = [render_entity(doc, terms, view) for doc in docs]
    body: dict[str, Any] = {
        "id": f"urn:ngsi-ld:Notification:{uuid.uuid4()}",
        "type": "Notification",
        "subscriptionId": sub.id,
        "notifiedAt": now,
        "data": data,
    }
    if sub.notification.endpoint.accept == JSON_LD:
        # Each entity carries the @context too, so a receiver that files entities one by one
        # can still expand them (the conformance suite checks data[i]["@context"]).
        context = body_context(terms)
        for entity in data:
            entity["@context"] = context
        body = {"@context": context, **body}
    return body


def notification_request(
    sub: Subscription, body: dict[str, Any], terms: TermTable, *, tenant: str
) -> tuple[bytes, dict[str, str]]:
    """The bytes to POST and their headers."""
    endpoint = sub.notification.endpoint
    headers = {
        "Content-Type": endpoint.accept if endpoint.accept == JSON_LD else "application/json"
    }
    if endpoint.accept != JSON_LD:
        headers["Link"] = context_link_header(terms.link_url)
    if tenant:
        headers["NGSILD-Tenant"] = tenant
    headers.update(endpoint.receiver_info or ())
    return orjson.dumps(body), headers
