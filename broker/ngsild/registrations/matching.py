"""Which registrations an operation concerns (GS CIM 009 v1.8.1 §4.3.6, §5.12) and the
conflicts between registrations (§4.3.6.3, §5.9.2.4).

A ``Target`` describes what an operation reaches: entity ids, an id pattern, entity types and
attributes, each ``None`` when the operation does not restrict it (a retrieval by id does not
know the entity's type, a query without ``attrs`` wants every attribute). A RegistrationInfo
matches a target when its entity selectors can hold such an entity and its attributes meet the
target's; an info without entities holds those attributes of any entity, one without attribute
names holds every attribute of its entities.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from broker.ngsild.query.patterns import compile_pattern
from broker.ngsild.registrations.registration import (
    EXCLUSIVE,
    REDIRECT,
    EntityInfo,
    Registration,
    RegistrationInfo,
)


@dataclass(frozen=True, slots=True)
class Target:
    """What an operation reaches (``None``: not restricted)."""

    ids: tuple[str, ...] | None = None
    id_pattern: str | None = None
    types: frozenset[str] | None = None
    attrs: frozenset[str] | None = None


def matching_infos(reg: Registration, target: Target) -> list[RegistrationInfo]:
    """The RegistrationInfos of ``reg`` that can hold something ``target`` reaches."""
    return [info for info in reg.information if info_matches(info, target)]


def registration_matches(reg: Registration, target: Target) -> bool:
    """Whether ``reg`` can hold something ``target`` reaches."""
    return any(info_matches(info, target) for info in reg.information)


def info_matches(info: RegistrationInfo, target: Target) -> bool:
    """Whether one RegistrationInfo can hold something ``target`` reaches."""
    registered = info.attributes
    if target.attrs is not None and registered is not None and not registered & target.attrs:
        return False
    if info.entities is None:
        return True
    return any(entity_matches(entity, target) for entity in info.entities)


def entity_matches(entity: EntityInfo, target: Target) -> bool:
    """Whether an EntityInfo can select an entity ``target`` reaches."""
    if target.types is not None and entity.type not in target.types:
        return False
    if target.ids is not None:
        if entity.id is not None and entity.id not in target.ids:
            return False
        if entity.id_pattern is not None:
            pattern = compile_pattern(entity.id_pattern)
            if not any(pattern.search(entity_id) for entity_id in target.ids):
                return False
    if target.id_pattern is not None and entity.id is not None:
        return bool(compile_pattern(target.id_pattern).search(entity.id))
    return True


def registered_attributes(infos: Iterable[RegistrationInfo]) -> frozenset[str] | None:
    """The attributes the given infos hold together (``None``: all of them)."""
    found: set[str] = set()
    for info in infos:
        attributes = info.attributes
        if attributes is None:
            return None
        found |= attributes
    return frozenset(found)


def overlapping(new: Registration, existing: Iterable[Registration]) -> Registration | None:
    """An existing registration the new one may not coexist with (§4.3.6.3): once an
    exclusive registration exists for an entity id and attributes, no other exclusive or
    redirect registration may cover any of them, and the other way round. Redirect
    registrations may overlap each other (operations go to all of them)."""
    if new.effective_mode not in (EXCLUSIVE, REDIRECT):
        return None
    for other in existing:
        if other.id == new.id or other.effective_mode not in (EXCLUSIVE, REDIRECT):
            continue
        if EXCLUSIVE not in (new.effective_mode, other.effective_mode):
            continue
        if _infos_overlap(new.information, other.information):
            return other
    return None


def _infos_overlap(
    first: tuple[RegistrationInfo, ...], second: tuple[RegistrationInfo, ...]
) -> bool:
    for one in first:
        for two in second:
            attrs_one, attrs_two = one.attributes, two.attributes
            if attrs_one is not None and attrs_two is not None and not attrs_one & attrs_two:
                continue
            if one.entities is None or two.entities is None:
                return True
            if any(_entities_overlap(a, b) for a in one.entities for b in two.entities):
                return True
    return False


def _entities_overlap(one: EntityInfo, two: EntityInfo) -> bool:
    if one.type != two.type:
        return False
    if one.id is not None and two.id is not None:
        return one.id == two.id
    target = Target(ids=None if one.id is None else (one.id,), id_pattern=one.id_pattern)
    return entity_matches(two, target)


def holds_entity(reg: Registration, entity_id: str, types: Iterable[str]) -> list[RegistrationInfo]:
    """The infos of ``reg`` that select the existing entity (id and types known)."""
    target = Target(ids=(entity_id,), types=frozenset(types))
    return [
        info
        for info in reg.information
        if info.entities is not None and any(entity_matches(e, target) for e in info.entities)
    ]
