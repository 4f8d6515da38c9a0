"""The store port's history part: what the Temporal API needs from a tenant's store.

Writes append history through the ``history`` argument of ``EntityStore.create``/``update``/
``delete`` (``broker.ngsild.temporal.history.History``), inside the same transaction as the
entity, exactly as the notification ``Journal`` does; this protocol covers reading history and
the Temporal API's own edits. A backend that keeps no history does not implement it, and the
temporal service answers OperationNotSupported for it.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

from broker.ngsild.entity import Instance
from broker.ngsild.temporal.query import HistorySelection
from broker.ngsild.temporal.render import AttributeAggregate, AttributeHistory


@runtime_checkable
class HistoryStore(Protocol):
    """The attribute history of one tenant."""

    async def history(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeHistory]]:
        """Per entity, the selected instances of each attribute and datasetId, oldest first."""

    async def aggregate(
        self, entity_ids: list[str], selection: HistorySelection
    ) -> dict[str, list[AttributeAggregate]]:
        """Per entity, each selected attribute's aggregation periods (computed by the store)."""

    async def delete_history(
        self, entity_id: str, attr: str | None = None, dataset_id: str | None = None
    ) -> int:
        """Forget an entity's history, or one attribute's; how many series were removed."""

    async def instance(self, entity_id: str, attr: str, instance_id: str) -> Instance | None:
        """One stored instance, or ``None``."""

    async def replace_instance(
        self, entity_id: str, attr: str, instance_id: str, instance: Instance, modified: str
    ) -> bool:
        """Overwrite one instance (keeping its instanceId and createdAt); whether it existed."""

    async def delete_instance(self, entity_id: str, attr: str, instance_id: str) -> bool:
        """Remove one instance; whether it existed."""

    async def trim_history(self, recorded_before: int, limit: int) -> int:
        """Remove up to ``limit`` instances recorded before an instant (µs); how many."""
