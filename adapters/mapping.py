"""Measures → NGSI-LD attributes: a device's reading as the entity fragment a client would POST.

Theory of operation. Each measure of a ``Reading`` is looked up in the device's provisioning by
object_id (then by attribute name, as the IoT Agent for LoRaWAN does) and converted by its IoT
Agent type (``adapters.attribute_types``). Names are checked as ``broker.ngsild.entity`` checks
them, so the fragment always parses: a device's garbage costs that one measure (``Rejected``),
never the message, and never the adapter. Unprovisioned measures are kept as plain Properties
under their own key unless ``explicit_attrs`` drops them; such a key must be a plain name
(letters, digits, ``_``), because a compact IRI such as ``ngsi-ld:location`` could expand to an
attribute that is already there. Static attributes are added to every fragment, unless a
measure of the same name is (the measured value is the newer one).

Time. Every attribute, static ones included, gets ``observedAt``: the device's own time (a
``TimeInstant`` measure, else ``Reading.observed_at``, which the decoders fill from the payload
or the network server). Only a reading that carries no time at all is stamped with its arrival
time ``received_at``. (The IoT Agent drops an unprovisioned ``TimeInstant`` under explicitAttrs
before choosing, and so stamps arrival time although the device sent one; we do not.)

Radio metadata belongs to the device, not to what it observes, so ``radio_fragment`` puts it on
a Smart Data Models ``Device`` entity that points at the observed entity by ``controlledAsset``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import quote

from broker.ngsild.entity import GEO_ATTRIBUTES
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import (
    ALLOWED_MEMBERS,
    CORE_MEMBERS,
    ENTITY_MEMBERS,
    GEO_PROPERTY,
    PROPERTY,
    RELATIONSHIP,
    check_name,
    contains_null,
)
from broker.services.provisioning.model import AttributeMapping, Effective, Lorawan

from adapters.attribute_types import GEO_KINDS, RejectReason, Unfit, convert
from adapters.formats import cayenne_lpp
from adapters.formats.errors import DecodeError
from adapters.formats.uplink import Reading, Uplink, first_timestamp

TIME_INSTANT: Final = "TimeInstant"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A measure left out of the fragment (the rest of the reading is kept).

    Attributes:
        object_id: the key the device sent (for a static attribute, its name).
        reason: ``out_of_range`` (the value cannot be the provisioned type) or ``bad_name``.
        detail: a sentence for the log and the dead-letter list.
    """

    object_id: str
    reason: RejectReason
    detail: str


_RENAMED: Final = {"id": "measure_id", "type": "measure_type"}
_RESERVED: Final = CORE_MEMBERS | ENTITY_MEMBERS
# §4.7.1: these core attributes are GeoProperties whatever the provisioning says.
_GEO_NAMES: Final = GEO_ATTRIBUTES | {"location", "observationSpace", "operationSpace"}
_PLAIN_NAME = re.compile(r"[^\W\d_]\w{0,511}")


def entity_fragment(
    effective: Effective, reading: Reading, *, received_at: str
) -> tuple[dict[str, Any], list[Rejected]]:
    """The normalized NGSI-LD entity for one reading, and the measures that were refused.

    Args:
        effective: the device's provisioning, group defaults filled in.
        reading: the decoded measures.
        received_at: arrival time (UTC, ``Z``); used only when the reading carries no time.
    """
    by_key = {mapping.key: mapping for mapping in reversed(effective.attributes)}
    by_name = {mapping.name: mapping for mapping in reversed(effective.attributes)}
    observed_at = (
        _device_time(reading.measures, effective.attributes) or reading.observed_at or received_at
    )
    fragment: dict[str, Any] = {"id": effective.entity_id, "type": effective.entity_type}
    rejected: list[Rejected] = []
    for key, value in reading.measures.items():
        mapping = by_key.get(key) or by_name.get(key)
        if mapping is None and effective.explicit_attrs:
            continue
        name = mapping.name if mapping else _RENAMED.get(key, key)
        if name == TIME_INSTANT:
            continue  # a time, never an attribute: it is in every observedAt instead
        try:
            checked = _checked_name(name, provisioned=mapping is not None)
            fragment[checked] = _attribute(mapping or AttributeMapping(name, "Property"), value)
        except Unfit as exc:
            rejected.append(Rejected(key, exc.reason, str(exc)))
    for static in effective.static_attributes:
        try:
            # A measured value is newer than a provisioned one, so it stays.
            if (
                static.name != TIME_INSTANT
                and _checked_name(static.name, provisioned=True) not in fragment
            ):
                fragment[static.name] = _attribute(static, static.value)
        except Unfit as exc:
            rejected.append(Rejected(static.name, exc.reason, f"static attribute: {exc}"))
    for attribute in fragment.values():
        if isinstance(attribute, dict):
            attribute.setdefault("observedAt", observed_at)
    return fragment, rejected


def _device_time(measures: dict[str, Any], attributes: Iterable[AttributeMapping]) -> str | None:
    # node-lib: a measure mapped to the name TimeInstant, or named so, is the reading's time.
    keys = [mapping.key for mapping in attributes if mapping.name == TIME_INSTANT]
    return first_timestamp(measures.get(key) for key in [*keys, TIME_INSTANT])


def _checked_name(name: str, *, provisioned: bool) -> str:
    if name in _RESERVED:
        raise Unfit(f"{name!r} is an NGSI-LD core term, not an attribute name", "bad_name")
    if not provisioned and not _PLAIN_NAME.fullmatch(name):
        raise Unfit("an unprovisioned measure needs a name of letters, digits and _", "bad_name")
    try:
        return check_name(name, "attribute name")
    except BadRequestData as exc:
        raise Unfit(str(exc), "bad_name") from None


def _attribute(mapping: AttributeMapping, value: Any) -> dict[str, Any]:
    kind = mapping.type
    if mapping.name in _GEO_NAMES and kind.lower() not in GEO_KINDS:
        kind = GEO_PROPERTY
    attribute = convert(kind, value)
    for meta_name, meta in mapping.metadata.items():
        meta_type, meta_value = (
            (str(meta.get("type", PROPERTY)), meta.get("value"))
            if isinstance(meta, dict)
            else (PROPERTY, meta)
        )
        if meta_name == "unitCode":
            # §4.5.2: only (List)Properties have units; on anything else it has no place.
            if isinstance(meta_value, str) and "unitCode" in ALLOWED_MEMBERS[attribute["type"]]:
                attribute["unitCode"] = meta_value or None
        elif meta_name == TIME_INSTANT:
            attribute["observedAt"] = first_timestamp([meta_value])
        else:
            attribute[_checked_name(meta_name, provisioned=True)] = convert(meta_type, meta_value)
    return {key: item for key, item in attribute.items() if item is not None}


def uplink_readings(uplink: Uplink, lorawan: Lorawan) -> list[Reading]:
    """The measures of one LoRaWAN uplink, decoded the way the provisioning says.

    Raises:
        DecodeError: the uplink carries neither a decoded object nor a frame, or the LPP frame
            is broken (``unknown_lpp_type``, ``truncated_payload``, ``out_of_range``).
    """
    if lorawan.data_model == "application_server" and uplink.decoded is not None:
        measures = uplink.decoded
    elif uplink.raw is not None:
        # Also for application_server without a decoded object: no payload formatter is set
        # up on the network server, and LPP is the one codec both servers ship.
        measures = cayenne_lpp.decode(uplink.raw)
    elif uplink.decoded is not None:
        # cayennelpp, but the network server sent only its own decoding (TTN v2 style): the
        # IoT Agent for LoRaWAN writes nothing then; the data is there, so use it.
        measures = uplink.decoded
    else:
        raise DecodeError("undecodable_payload", "the uplink has neither a frame nor an object")
    device_time = cayenne_lpp.observed_at(measures)
    if device_time is not None and device_time.startswith("1970-"):
        device_time = None  # a clock never set since power-on counts from 0
    return [Reading(dict(measures), device_time or uplink.observed_at)]


def radio_fragment(
    effective: Effective, uplink: Uplink, *, received_at: str
) -> dict[str, Any] | None:
    """A ``Device`` entity with the uplink's radio metadata; ``None`` if there is none.

    The fields keep the decoders' meaning under camelCase names (``gateway_id`` →
    ``gatewayId``); ``controlledAsset`` points at the observed entity.
    """
    observed_at = uplink.observed_at or received_at
    device_id = quote(effective.device_id, safe="-._~!$&'()*+,;=:@")
    device: dict[str, Any] = {"id": f"urn:ngsi-ld:Device:{device_id}", "type": "Device"}
    for key, value in uplink.radio.items():
        head, *rest = key.split("_")
        name = head + "".join(part[:1].upper() + part[1:] for part in rest)
        # The decoders vouch for these fields; one that would not parse is not worth the uplink.
        if value is not None and not contains_null(value) and _fits(name):
            device[name] = {"type": PROPERTY, "value": value, "observedAt": observed_at}
    if len(device) == 2:
        return None
    device["controlledAsset"] = {
        "type": RELATIONSHIP,
        "object": effective.entity_id,
        "observedAt": observed_at,
    }
    return device


def _fits(name: str) -> bool:
    return name not in _RESERVED and _PLAIN_NAME.fullmatch(name) is not None
