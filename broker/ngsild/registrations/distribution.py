"""Distributed operations: which context sources a request goes to, and with what
(GS CIM 009 v1.8.1 §4.3.6, §4.3.6.4 ``localOnly``, §4.3.6.5 contextSourceInfo, §6.3.18 Via).

A read (retrieve, query) goes to every registration that offers it and can hold what it asks
for, whatever the mode, narrowed to what the registration holds: its entity types, its entity
ids when it names them, and the attributes it registers (§4.3.6.1: "all constraints specified
in the registration shall be respected"). A write goes to the exclusive, redirect and
inclusive registrations that offer it; exclusive and redirect ones take the attributes they
hold away from the local broker (``Split``), inclusive ones leave them there as well, and
auxiliary ones are never written to (§4.3.6.2).

A request carries ``Via`` (RFC 9110 §7.6.3) with this broker's pseudonym added; one that
arrives already carrying it has come round a loop and is refused (508, ``LoopDetected``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from broker.ngsild.catalogue import ANY_TYPE, NO_ATTRIBUTE, CatalogueRow
from broker.ngsild.registrations import operations as ops
from broker.ngsild.registrations.matching import (
    Target,
    matching_infos,
    registered_attributes,
)
from broker.ngsild.registrations.registration import (
    AUXILIARY,
    EXCLUSIVE,
    REDIRECT,
    Registration,
    RegistrationInfo,
)
from broker.ngsild.terms import TermTable

FROM_REQUEST: Final = "urn:ngsi-ld:request"
"""§4.3.6.5: a contextSourceInfo value copied from the triggering request's header."""
_NOT_CONVEYED: Final = frozenset(
    {
        "ngsild-tenant",
        "via",
        "host",
        "content-length",
        "content-type",
        "connection",
        "transfer-encoding",
        "accept",
        "link",
        "keep-alive",
        "te",
        "upgrade",
    }
)
"""Tenant and binding-specific headers a registration cannot set (§4.3.6.5)."""
_INSTRUCTIONS: Final = frozenset({"contenttype", "jsonldcontext"})
"""contextSourceInfo keys that tell this broker how to talk to the source, not headers to
send: ``contentType`` (v1.9.1 §4.3.6.6, with ``accept``, which is a header anyway) and
``jsonldContext``, the @context the source speaks (FIWARE IoT Agents send it)."""
READ_OPERATIONS: Final = (ops.RETRIEVE_ENTITY, ops.QUERY_ENTITY, ops.QUERY_BATCH)


@dataclass(frozen=True, slots=True)
class Forward:
    """One request to one context source.

    Attributes:
        registration: the registration it goes through.
        operation: the operation the source is asked for (the registration offers it).
        types: entity types to ask for (``None``: as asked).
        ids: entity ids to ask for (``None``: as asked).
        attrs: attributes to ask for or send (``None``: all that were asked or sent).
    """

    registration: Registration
    operation: str
    types: frozenset[str] | None = None
    ids: tuple[str, ...] | None = None
    attrs: frozenset[str] | None = None


def plan_reads(
    registrations: Iterable[Registration], target: Target, preferred: str
) -> list[Forward]:
    """The sources a retrieval or query goes to; each is asked with ``preferred`` when it
    offers it, else with another read operation it offers (D010_03: retrieveEntity,
    queryEntity and queryBatch can all answer a retrieval)."""
    forwards = []
    for reg in registrations:
        operation = _read_operation(reg.covered, preferred)
        if operation is None:
            continue
        infos = matching_infos(reg, target)
        if not infos:
            continue
        forwards.append(_narrowed(reg, operation, infos, target))
    return forwards


def plan_writes(
    registrations: Iterable[Registration], target: Target, operation: str
) -> list[Forward]:
    """The sources a write goes to (never auxiliary ones)."""
    return [f for f in plan_all_writes(registrations, target, operation) if not blocked(f)]


def plan_all_writes(
    registrations: Iterable[Registration], target: Target, operation: str
) -> list[Forward]:
    """Every exclusive, redirect or inclusive registration a write concerns, also those that
    do not offer the operation: an exclusive or redirect one of those *blocks* its part
    (§5.6.1.4, §5.6.2.4: 409 Conflict; the data lives there, not here)."""
    forwards = []
    for reg in registrations:
        mode = reg.effective_mode
        if mode == AUXILIARY:
            continue
        if operation not in reg.covered and mode not in (EXCLUSIVE, REDIRECT):
            continue
        infos = matching_infos(reg, target)
        if infos:
            forwards.append(_narrowed(reg, operation, infos, target))
    return forwards


def blocked(forward: Forward) -> bool:
    """Whether a write's part at ``forward`` cannot be done: the registration holds the data
    but does not offer the operation."""
    return forward.operation not in forward.registration.covered


@dataclass(frozen=True, slots=True)
class Split:
    """What stays local after a write's forwards took their part."""

    local: bool
    """Whether the local broker does its part at all (not when a redirect took it all)."""
    withheld: frozenset[str]
    """Attributes exclusive registrations took away from the local part."""


def split_local(forwards: Iterable[Forward]) -> Split:
    """The local part of a write (§4.3.6.3: exclusive sources hold their attributes alone;
    redirect sources hold the whole entity)."""
    withheld: set[str] = set()
    local = True
    for forward in forwards:
        mode = forward.registration.effective_mode
        if mode == REDIRECT:
            local = False
        elif mode == EXCLUSIVE and forward.attrs is not None:
            withheld |= forward.attrs
    return Split(local, frozenset(withheld))


def local_only(reg: Registration) -> bool:
    """Whether forwards to ``reg`` carry ``local=true`` (§4.3.6.4, Table 5.2.34-1)."""
    if (reg.management or {}).get("localOnly") is True:
        return True
    return any(
        name.rsplit("/", 1)[-1] == "localOnly" and value is True
        for name, value in reg.extra.items()
    )


def outgoing_headers(
    reg: Registration, incoming: Mapping[str, str], *, via: str, tenant: str = ""
) -> dict[str, str]:
    """Headers of a forwarded request: contextSourceInfo (not tenant or binding headers),
    the tenant, and ``Via``.

    The tenant is the registration's ``tenant``; without one, ``tenant``: "" (the source's
    default tenant, as §5.2.9 says) unless the installation forwards into the request's own
    tenant (``FederationSettings.tenantless``) — a FIWARE IoT Agent registers its devices
    without ``tenant`` in the tenant named after its service and finds a device only there.
    """
    headers: dict[str, str] = {}
    for key, value in reg.context_source_info or ():
        if key.lower() in _NOT_CONVEYED or key.lower() in _INSTRUCTIONS:
            continue
        if value == FROM_REQUEST:
            copied = incoming.get(key.lower())
            if copied is None:
                continue
            value = copied
        headers[key] = value
    if reg.tenant or tenant:
        headers["NGSILD-Tenant"] = reg.tenant or tenant
    headers["Via"] = via
    return headers


def wire_format(reg: Registration) -> tuple[str, str]:
    """(Content-Type, Accept) of requests to ``reg``'s source: ``application/json`` unless its
    contextSourceInfo says otherwise with the v1.9.1 §4.3.6.6 keys ``contentType`` and
    ``accept`` (instructions to this broker, not headers)."""
    info = dict(reg.context_source_info or ())
    return info.get("contentType", "application/json"), info.get("accept", "application/json")


def source_context(reg: Registration) -> str | None:
    """The @context ``reg``'s source speaks (contextSourceInfo ``jsonldContext``), if named.

    A FIWARE IoT Agent names its own; it matches command names literally, so a forwarded
    write must use its names, whatever @context the client wrote with.
    """
    return dict(reg.context_source_info or ()).get("jsonldContext")


_ENTITY_MEMBERS: Final = frozenset({"id", "type", "scope", "@context"})


def renamed_path(path: str, ours: TermTable, theirs: TermTable) -> str:
    """A forwarded path with its attribute segment (``…/attrs/{attrId}``) in ``theirs``."""
    head, sep, attr = path.partition("/attrs/")
    if not sep or not attr:
        return path
    return f"{head}{sep}{theirs.compact(ours.expand(attr))}"


def renamed_body(body: Any, ours: TermTable, theirs: TermTable, *, entity: bool) -> Any:
    """A forwarded write body with attribute names (and, for entities, types) in ``theirs``.

    ``entity``: the body is an entity or fragment (a batch: a list of them), not the one
    attribute of an ``…/attrs/{attrId}`` path, whose members keep their names.
    """
    if isinstance(body, list):
        return [renamed_body(item, ours, theirs, entity=entity) for item in body]
    if not entity or not isinstance(body, dict):
        return body
    renamed: dict[str, Any] = {}
    for key, value in body.items():
        if key == "type" and isinstance(value, str | list):
            names = value if isinstance(value, list) else [value]
            types = [theirs.compact(ours.expand(n)) if isinstance(n, str) else n for n in names]
            renamed[key] = types if isinstance(value, list) else types[0]
        elif key in _ENTITY_MEMBERS:
            renamed[key] = value
        else:
            renamed[theirs.compact(ours.expand(key))] = value
    return renamed


def via_value(incoming: str | None, pseudonym: str) -> str:
    """The ``Via`` header to send on: what arrived, with this broker added."""
    own = f"1.1 {pseudonym}"
    return own if not incoming else f"{incoming}, {own}"


def looped(incoming: str | None, pseudonym: str) -> bool:
    """Whether a request has been through this broker already."""
    if not incoming:
        return False
    hops = (hop.strip().split() for hop in incoming.split(","))
    return any(len(hop) >= 2 and hop[1] == pseudonym for hop in hops)


def registered_rows(
    registrations: Iterable[Registration], present: set[tuple[str, str]]
) -> list[CatalogueRow]:
    """Discovery rows for the types and attributes registrations name, except those
    ``present`` already has ((type, attribute) pairs)."""
    rows: list[CatalogueRow] = []
    seen = set(present)

    def add(type_: str, attr: str, kind: str) -> None:
        if (type_, attr) not in seen:
            seen.add((type_, attr))
            rows.append(CatalogueRow(type_, attr, kind, 1))

    for reg in registrations:
        for info in reg.information:
            kinds = [(name, "Property") for name in info.property_names or ()]
            kinds += [(name, "Relationship") for name in info.relationship_names or ()]
            for entity in info.entities or ():
                add(entity.type, NO_ATTRIBUTE, NO_ATTRIBUTE)
                for name, kind in kinds:
                    add(entity.type, name, kind)
            for name, _ in kinds:
                add(ANY_TYPE, name, ANY_TYPE)
    return rows


def _read_operation(covered: frozenset[str], preferred: str) -> str | None:
    if preferred in covered:
        return preferred
    return next((op for op in READ_OPERATIONS if op in covered), None)


def _narrowed(
    reg: Registration, operation: str, infos: list[RegistrationInfo], target: Target
) -> Forward:
    registered = registered_attributes(infos)
    attrs = target.attrs
    if registered is not None:
        attrs = registered if attrs is None else attrs & registered
    types: set[str] | None = set()
    ids: set[str] | None = set()
    for info in infos:
        if info.entities is None:
            types = ids = None
            break
        for entity in info.entities:
            if types is not None:
                types.add(entity.type)
            if ids is not None:
                if entity.id is None:
                    ids = None
                else:
                    ids.add(entity.id)
    if types is not None and target.types is not None:
        types &= target.types
    if ids is not None and target.ids is not None:
        ids &= set(target.ids)
    return Forward(
        reg,
        operation,
        types=None if types is None else frozenset(types),
        ids=None if not ids else tuple(sorted(ids)),
        attrs=attrs,
    )
