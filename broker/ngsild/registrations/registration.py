"""Context source registrations: the client's JSON → a validated, expanded ``Registration``
(GS CIM 009 v1.8.1 §5.2.9 CSourceRegistration, §5.2.10 RegistrationInfo, §5.2.8 EntityInfo,
§5.9.2 and §5.9.3; v1.9.1 §5.2.22 KeyValuePair, §5.2.34 RegistrationManagementInfo).

Theory of operation. Entity types and attribute names of ``information`` are expanded once,
with the request's @context, and compacted again with the @context of whoever retrieves the
registration. Members the spec defines are checked one by one; any other member is a *context
source property* (§5.2.9: "any other member"), kept under its expanded name with its value as
given, so that ``q`` and ``csf`` can filter on it. Creation and update (PATCH, §5.9.3) go
through the same member parsers and then through the same whole-document checks, so an update
cannot produce what a creation would refuse.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import Any, Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.geojson import is_geometry
from broker.ngsild.names import check_datetime, check_name, check_uri, is_uri
from broker.ngsild.query.patterns import compile_pattern
from broker.ngsild.registrations import operations as ops
from broker.ngsild.terms import TermTable

REGISTRATION_TYPE: Final = "ContextSourceRegistration"
MODES: Final = ("inclusive", "exclusive", "redirect", "auxiliary")
INCLUSIVE: Final = "inclusive"
EXCLUSIVE: Final = "exclusive"
REDIRECT: Final = "redirect"
AUXILIARY: Final = "auxiliary"
GEO_MEMBERS: Final = ("location", "observationSpace", "operationSpace")
_READ_ONLY: Final = frozenset(
    {
        "status",
        "timesSent",
        "timesFailed",
        "lastSuccess",
        "lastFailure",
        "createdAt",
        "modifiedAt",
        "@context",
    }
)
_DURATION = re.compile(
    r"^P(?!$)(\d+(?:\.\d+)?Y)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?W)?(\d+(?:\.\d+)?D)?"
    r"(T(?=\d)(\d+(?:\.\d+)?H)?(\d+(?:\.\d+)?M)?(\d+(?:\.\d+)?S)?)?$"
)


@dataclass(frozen=True, slots=True)
class EntityInfo:
    """One entity selector of a RegistrationInfo (§5.2.8): a type IRI, an id or a pattern."""

    type: str
    id: str | None = None
    id_pattern: str | None = None


@dataclass(frozen=True, slots=True)
class RegistrationInfo:
    """What a source holds (§5.2.10); ``None`` members are not restricted."""

    entities: tuple[EntityInfo, ...] | None = None
    property_names: tuple[str, ...] | None = None
    relationship_names: tuple[str, ...] | None = None

    @property
    def attributes(self) -> frozenset[str] | None:
        """Every attribute IRI named, or ``None`` when the registration names none (all)."""
        if self.property_names is None and self.relationship_names is None:
            return None
        return frozenset((*(self.property_names or ()), *(self.relationship_names or ())))


@dataclass(frozen=True, slots=True)
class Registration:
    """One registration as the broker keeps it (``documents.to_doc`` for its JSON form).

    Attributes:
        id: the registration URI. endpoint: the source's base URI (``/ngsi-ld/v1`` is added).
        information: what the source holds. mode: inclusive, exclusive, redirect, auxiliary.
        operations: operation and group names as given (``None``: federationOps by default).
        context_source_info: headers to send with forwarded requests (never logged).
        management: the RegistrationManagementInfo as given (timeout, cooldown in ms).
        extra: context source properties, expanded name → value as given.
        geo: location / observationSpace / operationSpace as given.
        context: the @context it was created with (to render ``q``-like members faithfully).
    """

    id: str
    endpoint: str
    information: tuple[RegistrationInfo, ...]
    created_at: str
    modified_at: str
    mode: str | None = None
    operations: tuple[str, ...] | None = None
    name: str | None = None
    description: str | None = None
    tenant: str | None = None
    scope: tuple[str, ...] | None = None
    expires_at: str | None = None
    observation_interval: dict[str, Any] | None = None
    management_interval: dict[str, Any] | None = None
    context_source_info: tuple[tuple[str, str], ...] | None = None
    management: dict[str, Any] | None = None
    refresh_rate: str | None = None
    geo: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)
    times_sent: int = 0
    times_failed: int = 0
    last_success: str | None = None
    last_failure: str | None = None
    owner: str | None = None

    @property
    def effective_mode(self) -> str:
        """``mode`` with its default, inclusive (Table 5.2.9-1)."""
        return self.mode or INCLUSIVE

    @property
    def covered(self) -> frozenset[str]:
        """The individual operations this registration offers."""
        return ops.expand(self.operations or ops.DEFAULT_OPERATIONS)

    def timeout(self, default: float) -> float:
        """Seconds to wait for this source (``management.timeout`` is milliseconds)."""
        value = (self.management or {}).get("timeout")
        return default if value is None else float(value) / 1000

    def cooldown(self, default: float) -> float:
        """Seconds a failing source is left alone (``management.cooldown``, milliseconds)."""
        value = (self.management or {}).get("cooldown")
        return default if value is None else float(value) / 1000


def new_id() -> str:
    """A fresh registration URI (§5.9.2.4: generated when the client gives none)."""
    return f"urn:ngsi-ld:ContextSourceRegistration:{uuid.uuid4()}"


def parse_registration(body: Any, terms: TermTable, *, now: str) -> Registration:
    """Validate a ``POST /csourceRegistrations`` body (§5.9.2) and expand its names.

    Raises:
        BadRequestData: the body breaks a rule of §5.2.9/§5.2.10 or §4.3.6.3.
    """
    if not isinstance(body, dict):
        raise BadRequestData("a context source registration must be a JSON object")
    _check_type(body.get("type"), required=True)
    for member in ("information", "endpoint"):
        if body.get(member) is None:
            raise BadRequestData(f"a context source registration needs '{member}'")
    reg_id = body.get("id")
    values: dict[str, Any] = {
        "id": new_id() if reg_id is None else check_uri(reg_id, "registration id"),
        "created_at": now,
        "modified_at": now,
        "endpoint": "",
        "information": (),
    }
    for member, value in body.items():
        _apply_member(values, member, value, terms)
    registration = Registration(**values)
    check_registration(registration, now=now)
    return registration


def apply_patch(reg: Registration, fragment: Any, terms: TermTable, *, now: str) -> Registration:
    """``reg`` updated with a ``PATCH /csourceRegistrations/{id}`` fragment (§5.9.3): each
    member replaces the stored one; ``null`` removes an optional member."""
    if not isinstance(fragment, dict):
        raise BadRequestData("a registration fragment must be a JSON object")
    _check_type(fragment.get("type"), required=False)
    if "id" in fragment and fragment["id"] != reg.id:
        raise BadRequestData("the id of a registration cannot be changed")
    values = {f.name: getattr(reg, f.name) for f in fields(Registration)}
    values["extra"] = dict(reg.extra)
    values["geo"] = dict(reg.geo)
    for member, value in fragment.items():
        if value is None:
            _remove_member(values, member, terms)
        else:
            _apply_member(values, member, value, terms)
    updated = replace(Registration(**values), modified_at=now)
    check_registration(updated, now=None)
    return updated


def check_registration(reg: Registration, *, now: str | None) -> None:
    """Rules that tie members together (§4.3.6.3, §5.9.2.4)."""
    if now is not None and reg.expires_at is not None and reg.expires_at <= now:
        raise BadRequestData("'expiresAt' must be in the future")
    mode = reg.effective_mode
    if mode == AUXILIARY and reg.covered & ops.WRITES:
        raise BadRequestData("an auxiliary registration cannot offer operations that write")
    if mode == EXCLUSIVE:
        for info in reg.information:
            if info.attributes is None:
                raise BadRequestData("an exclusive registration must name its attributes")
            for entity in info.entities or ():
                if entity.id is None:
                    raise BadRequestData(
                        "an exclusive registration must name entity ids (not types or patterns)"
                    )


def _check_type(value: Any, *, required: bool) -> None:
    if value is None and not required:
        return
    if value != REGISTRATION_TYPE:
        raise BadRequestData(f"the type of a registration must be {REGISTRATION_TYPE!r}")


def _apply_member(values: dict[str, Any], member: str, value: Any, terms: TermTable) -> None:
    if member in ("id", "type") or member in _READ_ONLY:
        return
    parser = _MEMBERS.get(member)
    if parser is not None:
        values.update(parser(value, terms))
    elif member in GEO_MEMBERS:
        if not is_geometry(value):
            raise BadRequestData(f"'{member}' must be a GeoJSON geometry")
        values["geo"] = {**values.get("geo", {}), member: value}
    else:
        name = terms.expand(check_name(member, "registration member"))
        values["extra"] = {**values.get("extra", {}), name: value}


def _remove_member(values: dict[str, Any], member: str, terms: TermTable) -> None:
    if member in ("information", "endpoint", "type", "id"):
        raise BadRequestData(f"'{member}' is mandatory and cannot be removed")
    target = _FIELD_OF.get(member)
    if target is not None:
        values[target] = None
    elif member in GEO_MEMBERS:
        values["geo"].pop(member, None)
    else:
        values["extra"].pop(terms.expand(member), None)


def _information(value: Any, terms: TermTable) -> dict[str, Any]:
    if not isinstance(value, list) or not value:
        raise BadRequestData("'information' must be a non-empty array of RegistrationInfo")
    return {"information": tuple(_registration_info(item, terms) for item in value)}


def _registration_info(item: Any, terms: TermTable) -> RegistrationInfo:
    if not isinstance(item, dict):
        raise BadRequestData("each RegistrationInfo must be a JSON object")
    entities = item.get("entities")
    parsed = None
    if entities is not None:
        if not isinstance(entities, list) or not entities:
            raise BadRequestData("'entities' must be a non-empty array of EntityInfo")
        parsed = tuple(_entity_info(entity, terms) for entity in entities)
    props = _names(item.get("propertyNames"), "propertyNames", terms)
    rels = _names(item.get("relationshipNames"), "relationshipNames", terms)
    if parsed is None and props is None and rels is None:
        raise BadRequestData(
            "a RegistrationInfo needs entities, propertyNames or relationshipNames"
        )
    return RegistrationInfo(parsed, props, rels)


def _entity_info(item: Any, terms: TermTable) -> EntityInfo:
    if not isinstance(item, dict) or not isinstance(item.get("type"), str):
        raise BadRequestData("each EntityInfo needs a 'type' (a string)")
    entity_id = item.get("id")
    if entity_id is not None and not is_uri(entity_id):
        raise BadRequestData(f"EntityInfo id {entity_id!r} is not a URI")
    pattern = item.get("idPattern")
    if pattern is not None:
        if not isinstance(pattern, str):
            raise BadRequestData("'idPattern' must be a string")
        compile_pattern(pattern)
    type_iri = terms.expand(check_name(item["type"], "entity type"))
    return EntityInfo(type_iri, entity_id, None if entity_id is not None else pattern)


def _names(value: Any, member: str, terms: TermTable) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise BadRequestData(f"'{member}' must be an array of attribute names")
    return tuple(terms.expand(check_name(name, "attribute")) for name in value)


def _endpoint(value: Any, terms: TermTable) -> dict[str, Any]:
    return {"endpoint": check_uri(value, "endpoint")}


def _mode(value: Any, terms: TermTable) -> dict[str, Any]:
    if value not in MODES:
        raise BadRequestData(f"'mode' must be one of {', '.join(MODES)}")
    return {"mode": value}


def _text(member: str, name: str) -> Callable[[Any, TermTable], dict[str, Any]]:
    def parse(value: Any, terms: TermTable) -> dict[str, Any]:
        if not isinstance(value, str):
            raise BadRequestData(f"'{member}' must be a string")
        return {name: value}

    return parse


def _expires_at(value: Any, terms: TermTable) -> dict[str, Any]:
    return {"expires_at": check_datetime(value, "expiresAt")}


def _interval(member: str, name: str) -> Callable[[Any, TermTable], dict[str, Any]]:
    def parse(value: Any, terms: TermTable) -> dict[str, Any]:
        if not isinstance(value, dict) or "startAt" not in value:
            raise BadRequestData(f"'{member}' must be a TimeInterval with 'startAt'")
        for key in ("startAt", "endAt"):
            if key in value:
                check_datetime(value[key], f"{member}.{key}")
        return {name: dict(value)}

    return parse


def _scope(value: Any, terms: TermTable) -> dict[str, Any]:
    items = value if isinstance(value, list) else [value]
    if not items or not all(isinstance(item, str) and item.startswith("/") for item in items):
        raise BadRequestData("'scope' must be a scope like /Madrid/Centro, or an array of them")
    return {"scope": tuple(items)}


def _context_source_info(value: Any, terms: TermTable) -> dict[str, Any]:
    # v1.9.1 §5.2.22: KeyValuePair, both members strings, both mandatory.
    if not isinstance(value, list):
        raise BadRequestData("'contextSourceInfo' must be an array of key/value pairs")
    pairs = []
    for item in value:
        if not (
            isinstance(item, dict)
            and isinstance(item.get("key"), str)
            and isinstance(item.get("value"), str)
        ):
            raise BadRequestData("each contextSourceInfo entry needs a string key and value")
        pairs.append((item["key"], item["value"]))
    return {"context_source_info": tuple(pairs)}


def _management(value: Any, terms: TermTable) -> dict[str, Any]:
    # v1.9.1 Table 5.2.34-1.
    if not isinstance(value, dict):
        raise BadRequestData("'management' must be a JSON object")
    if "localOnly" in value and not isinstance(value["localOnly"], bool):
        raise BadRequestData("management.localOnly must be true or false")
    duration = value.get("cacheDuration")
    if duration is not None and not (isinstance(duration, str) and _DURATION.match(duration)):
        raise BadRequestData("management.cacheDuration must be an ISO 8601 duration")
    for key in ("timeout", "cooldown"):
        number = value.get(key)
        if key in value and (
            isinstance(number, bool) or not isinstance(number, int | float) or number <= 0
        ):
            raise BadRequestData(f"management.{key} must be a number greater than 0")
    return {"management": dict(value)}


def _operations(value: Any, terms: TermTable) -> dict[str, Any]:
    return {"operations": ops.check_operations(value)}


def _refresh_rate(value: Any, terms: TermTable) -> dict[str, Any]:
    if not (isinstance(value, str) and _DURATION.match(value)):
        raise BadRequestData("'refreshRate' must be an ISO 8601 duration")
    return {"refresh_rate": value}


_MEMBERS: Final[dict[str, Callable[[Any, TermTable], dict[str, Any]]]] = {
    "information": _information,
    "endpoint": _endpoint,
    "mode": _mode,
    "operations": _operations,
    "registrationName": _text("registrationName", "name"),
    "description": _text("description", "description"),
    "tenant": _text("tenant", "tenant"),
    "scope": _scope,
    "expiresAt": _expires_at,
    "observationInterval": _interval("observationInterval", "observation_interval"),
    "managementInterval": _interval("managementInterval", "management_interval"),
    "contextSourceInfo": _context_source_info,
    "management": _management,
    "refreshRate": _refresh_rate,
}
_FIELD_OF: Final = {
    "mode": "mode",
    "operations": "operations",
    "registrationName": "name",
    "description": "description",
    "tenant": "tenant",
    "scope": "scope",
    "expiresAt": "expires_at",
    "observationInterval": "observation_interval",
    "managementInterval": "management_interval",
    "contextSourceInfo": "context_source_info",
    "management": "management",
    "refreshRate": "refresh_rate",
}
