"""The running broker's parts, built once at start-up by ``broker.app`` and shared by requests."""

from __future__ import annotations

from dataclasses import dataclass

from broker.contexts import ContextLoader
from broker.services.entities import EntityService
from broker.services.entity_maps import EntityMapService
from broker.services.subscriptions import SubscriptionService
from broker.settings import Settings
from broker.store.base import Store


@dataclass(slots=True)
class Runtime:
    """Everything a request handler or an ingest adapter may use."""

    settings: Settings
    store: Store
    contexts: ContextLoader
    entities: EntityService
    entity_maps: EntityMapService
    subscriptions: SubscriptionService
