"""Which subscriptions could care about a change, in time proportional to the answer.

Active subscriptions are indexed per tenant by the entity types their selectors name (every v1.8
entity selector has a type) and, for subscriptions without entity selectors, by their watched
attributes. A change looks up the types it had before and after and the attributes it touched, so
finding candidates costs a few dictionary lookups however many subscriptions exist; the exact test
(ids, idPattern, type expressions, triggers, q, geoQ, scopeQ) then runs on the candidates only.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IndexKeys:
    """Where one subscription is filed: entity types, or (without entity selectors) attributes."""

    types: frozenset[str] = frozenset()
    attributes: frozenset[str] = frozenset()


class SubscriptionIndex:
    """Subscription ids filed under (tenant, type) and (tenant, watched attribute)."""

    def __init__(self) -> None:
        self._by_type: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._by_attribute: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._filed: dict[tuple[str, str], IndexKeys] = {}
        self._by_attribute_count: dict[str, int] = defaultdict(int)
        """Per tenant, how many subscriptions are filed by attribute (they see any type)."""

    def __len__(self) -> int:
        return len(self._filed)

    def add(self, tenant: str, subscription_id: str, keys: IndexKeys) -> None:
        """File (or re-file) a subscription."""
        self.remove(tenant, subscription_id)
        self._filed[(tenant, subscription_id)] = keys
        for type_ in keys.types:
            self._by_type[(tenant, type_)].add(subscription_id)
        for attr in keys.attributes:
            self._by_attribute[(tenant, attr)].add(subscription_id)
        if keys.attributes or not keys.types:
            self._by_attribute_count[tenant] += 1

    def remove(self, tenant: str, subscription_id: str) -> None:
        """Forget a subscription (no error if it was not filed)."""
        keys = self._filed.pop((tenant, subscription_id), None)
        if keys is None:
            return
        for type_ in keys.types:
            _discard(self._by_type, (tenant, type_), subscription_id)
        for attr in keys.attributes:
            _discard(self._by_attribute, (tenant, attr), subscription_id)
        if keys.attributes or not keys.types:
            self._by_attribute_count[tenant] -= 1
            if not self._by_attribute_count[tenant]:
                del self._by_attribute_count[tenant]

    def could_concern(self, tenant: str, types: Iterable[str]) -> bool:
        """Whether any subscription might care about a change of an entity of ``types``.

        Cheaper than working out what the change did, which ``candidates`` needs: most writes
        in a city concern entity types nobody subscribed to.
        """
        if tenant in self._by_attribute_count:
            return True
        by_type = self._by_type
        for type_ in types:  # noqa: SIM110 - a loop, not any(): this runs for every write
            if (tenant, type_) in by_type:
                return True
        return False

    def candidates(self, tenant: str, types: Iterable[str], attributes: Iterable[str]) -> set[str]:
        """Subscriptions filed under any of ``types`` or ``attributes`` in ``tenant``."""
        found: set[str] = set()
        for type_ in types:
            found |= self._by_type.get((tenant, type_), set())
        for attr in attributes:
            found |= self._by_attribute.get((tenant, attr), set())
        return found


def _discard(index: dict[tuple[str, str], set[str]], key: tuple[str, str], value: str) -> None:
    members = index.get(key)
    if members is not None:
        members.discard(value)
        if not members:
            del index[key]
