"""Following Relationships through a tenant's store: the entities linked entities reach.

Used for ``join`` (GS CIM 009 v1.8.1 §4.5.23) by queries, retrievals and notifications alike.
One store query per level, whatever the number of relationships.
"""

from __future__ import annotations

from broker.ngsild.entity import EntityDoc
from broker.ngsild.linked import hops
from broker.ngsild.query import EntityQuery
from broker.ngsild.render import View
from broker.store.base import EntityStore


async def linked_entities(
    store: EntityStore, roots: list[EntityDoc], view: View, levels: int
) -> dict[str, EntityDoc]:
    """The entities reachable from ``roots`` within ``levels`` Relationship hops, by id
    (the roots included)."""
    found: dict[str, EntityDoc] = {doc["id"]: doc for doc in roots}
    frontier = [(doc, view) for doc in roots]
    for _ in range(levels):
        wanted = {
            target: target_view
            for doc, doc_view in frontier
            for target, target_view in hops(doc, doc_view)
            if target not in found
        }
        if not wanted:
            break
        page = await store.query(EntityQuery(ids=tuple(wanted), limit=len(wanted)))
        found.update((doc["id"], doc) for doc in page.entities)
        frontier = [(doc, wanted[doc["id"]]) for doc in page.entities]
    return found
