"""Whether a change notifies a subscription (GS CIM 009 v1.8.1 §5.8, §5.11): the exact test the
subscription engine runs on the candidates ``subscription_index`` found.

A change notifies an active, change-driven subscription (not a periodic one) when the entity —
after the change, or before it for a deletion — is selected by one of its entity selectors, when
it fires one of the subscription's triggers on a watched attribute (any attribute without
``watchedAttributes``), and when ``q``, ``geoQ`` and ``scopeQ`` hold for it.
"""

from __future__ import annotations

from broker.ngsild.query.model import EntityQuery, matches
from broker.ngsild.query.types import type_names
from broker.ngsild.subscriptions.changes import ENTITY_DELETED, Change, Fired
from broker.ngsild.subscriptions.index import IndexKeys
from broker.ngsild.subscriptions.subscription import Filters, Subscription, status


def index_keys(sub: Subscription) -> IndexKeys:
    """Where the index files ``sub``: its selectors' types, else its watched attributes."""
    if sub.entities and all(s.types is not None for s in sub.entities):
        names = {name for s in sub.entities if s.types is not None for name in type_names(s.types)}
        return IndexKeys(types=frozenset(names))
    return IndexKeys(attributes=sub.watched or frozenset())


def notifies(sub: Subscription, filters: Filters, change: Change, fired: Fired, now: str) -> bool:
    """Whether ``change`` (which fired ``fired``) is to be notified to ``sub`` at ``now``."""
    if sub.time_interval is not None or status(sub, now) != "active":
        return False
    if not _fires_watched(sub, fired):
        return False
    deleted = ENTITY_DELETED in fired.entity or change.after is None
    doc = change.before if deleted else change.after
    if doc is None:
        return False
    if (
        filters.plain_types is not None
        and filters.scope is None
        and (deleted or (filters.q is None and filters.geo is None))
    ):
        return not filters.plain_types.isdisjoint(doc["type"])
    query = EntityQuery(
        selectors=sub.entities,
        q=None if deleted else filters.q,
        geo=None if deleted else filters.geo,
        scope=filters.scope,
    )
    return matches(query, doc)


def _fires_watched(sub: Subscription, fired: Fired) -> bool:
    watched = sub.watched
    if fired.entity & sub.triggers and (
        watched is None or watched & fired.changed_attributes or ENTITY_DELETED in fired.entity
    ):
        return True
    return any(
        trigger in sub.triggers and (watched is None or attr in watched)
        for attr, trigger in fired.attributes.items()
    )
