"""Provisioning documents → ``Group`` / ``Device``, and what a device inherits from its group.

The documents are the FIWARE IoT Agent's (node-lib ``doc/api.md``): ``{"groups": [...]}`` (or
the older ``{"services": [...]}``) and ``{"devices": [...]}``, with LoRaWAN settings in
``internal_attributes.lorawan`` as IoTagent-LoRaWAN has them. Members Toshi does not act on
(``transport``, ``protocol``, ``timezone``, ``commands``, ``lazy``, ``cbHost``, ...) are accepted
and kept in ``raw``, so GET shows them back; members that would silently change values or entity
ids if ignored (JEXL ``expression``, ``entityNameExp``, expression ``explicitAttrs``) are refused.

Inheritance (``effective``), where node-lib leaves a choice to us:

- ``entity_type``: the device's, else the group's, else ``Thing`` (the IoT Agent's default).
- ``entity_id``: the device's ``entity_name``, else ``urn:ngsi-ld:<entity_type>:<device_id>``.
  The IoT Agent in NGSI-LD mode would make that ``urn:ngsi-ld:<type>:<type>:<device_id>`` (it
  prefixes its own ``<type>:<device_id>`` once more); Toshi writes the type once, on purpose.
- ``attributes`` / ``static_attributes``: the device's entries, then the group's entries for
  keys (``object_id``, else ``name``) the device does not map.
- ``explicitAttrs``: the device's if set, else the group's (default false).
- ``timestamp``: the device's if set, else the group's, else **true**: every attribute gets
  ``observedAt`` (the measured ``TimeInstant`` or the arrival time). The IoT Agent's global
  default is false, but an NGSI-LD observation without ``observedAt`` has lost when it was made;
  ``"timestamp": false`` opts out.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import is_uri
from broker.services.provisioning import fields
from broker.services.provisioning.model import AttributeMapping, Device, Effective, Group, Lorawan

DEFAULT_RESOURCE: Final = "/iot/json"
DEFAULT_ENTITY_TYPE: Final = "Thing"
DEFAULT_TIMESTAMP: Final = True
_IDENTITY: Final = ("resource", "apikey")


def parse_groups(body: Any) -> list[Group]:
    """The groups of a ``POST /iot/groups`` (or ``/iot/services``) body."""
    collection, items = _items(body, ("groups", "services"))
    return [_group(item, f"{collection}[{index}]") for index, item in enumerate(items)]


def parse_devices(body: Any) -> list[Device]:
    """The devices of a ``POST /iot/devices`` body."""
    collection, items = _items(body, ("devices",))
    return [_device(item, f"{collection}[{index}]") for index, item in enumerate(items)]


def parse_group_update(group: Group, fragment: Any) -> Group:
    """``group`` changed by a ``PUT /iot/groups`` body: its members replace the group's.

    A member set to ``null`` is removed. ``resource`` and ``apikey`` name the group and stay.
    """
    merged = _merge(group.raw, fragment)
    for key in _IDENTITY:
        if key in merged and merged[key] != getattr(group, key):
            raise BadRequestData(
                f"group.{key}: resource and apikey identify a group and cannot be changed; "
                "delete it and create it anew"
            )
    merged.update(resource=group.resource, apikey=group.apikey)
    return _group(merged, "group")


def parse_device_update(device: Device, fragment: Any) -> Device:
    """``device`` changed by a ``PUT /iot/devices/{device_id}`` body (as for groups)."""
    merged = _merge(device.raw, fragment)
    if merged.get("device_id", device.device_id) != device.device_id:
        raise BadRequestData("device.device_id cannot be changed; delete the device and create it")
    merged["device_id"] = device.device_id
    return _device(merged, "device")


def effective(tenant: str, device: Device | None, group: Group | None, device_id: str) -> Effective:
    """What the mapping of ``device_id``'s measures needs, inherited as the module doc says.

    ``device`` is ``None`` for a device the group autoprovisions.
    """
    entity_type = DEFAULT_ENTITY_TYPE
    explicit: bool | None = None
    timestamp: bool | None = None
    apikey: str | None = None
    lorawan: Lorawan | None = None
    inherited: tuple[AttributeMapping, ...] = ()
    inherited_static: tuple[AttributeMapping, ...] = ()
    if group is not None:
        entity_type = group.entity_type or entity_type
        explicit, timestamp = group.explicit_attrs, group.timestamp
        apikey, lorawan = group.apikey or None, group.lorawan
        inherited, inherited_static = group.attributes, group.static_attributes
    entity_name: str | None = None
    own: tuple[AttributeMapping, ...] = ()
    own_static: tuple[AttributeMapping, ...] = ()
    if device is not None:
        entity_type = device.entity_type or entity_type
        explicit = _first(device.explicit_attrs, explicit)
        timestamp = _first(device.timestamp, timestamp)
        entity_name = device.entity_name
        own, own_static = device.attributes, device.static_attributes
        apikey, lorawan = device.apikey or apikey, device.lorawan or lorawan
    return Effective(
        tenant=tenant,
        device_id=device_id,
        entity_id=entity_name or autoprovisioned_id(entity_type, device_id),
        entity_type=entity_type,
        attributes=_inherit(own, inherited),
        static_attributes=_inherit(own_static, inherited_static),
        explicit_attrs=bool(explicit),
        timestamp=DEFAULT_TIMESTAMP if timestamp is None else timestamp,
        autoprovisioned=device is None,
        apikey=apikey,
        lorawan=lorawan,
    )


def autoprovisioned_id(entity_type: str, device_id: str) -> str:
    """The entity id of a device without ``entity_name``: ``urn:ngsi-ld:<type>:<device_id>``."""
    return f"urn:ngsi-ld:{entity_type}:{device_id}"


def autoprovisioned_doc(found: Effective) -> dict[str, Any]:
    """The device document that files an autoprovisioned device, as GET /iot/devices shows it.

    It fixes the entity id and type the device got; attributes stay inherited from the group.
    """
    doc: dict[str, Any] = {
        "device_id": found.device_id,
        "entity_name": found.entity_id,
        "entity_type": found.entity_type,
    }
    if found.apikey is not None:
        doc["apikey"] = found.apikey
    if found.lorawan is not None:
        doc["internal_attributes"] = {"lorawan": fields.lorawan_doc(found.lorawan)}
    return doc


def following(device: Device, group: Group) -> Device:
    """``device`` naming its group's ``application_server``, after a change of the group's.

    One application is reached with one login and provider (``registry``), so when its group
    changes them (a password rotated), its devices' copies change too.
    """
    server = group.raw["internal_attributes"]["lorawan"]["application_server"]
    internal = device.raw["internal_attributes"]
    lorawan = {**internal["lorawan"], "application_server": server}
    return _device(
        {**device.raw, "internal_attributes": {**internal, "lorawan": lorawan}}, "device"
    )


def with_dev_eui(found: Effective, dev_eui: str | None) -> Effective:
    """``found`` with its LoRaWAN settings naming ``dev_eui`` (for an autoprovisioned device)."""
    if found.lorawan is None or dev_eui is None:
        return found
    return replace(found, lorawan=replace(found.lorawan, dev_eui=dev_eui.lower()))


def _items(body: Any, collections: tuple[str, ...]) -> tuple[str, list[Any]]:
    shape = f'{{"{collections[0]}": [...]}}'
    if not isinstance(body, dict):
        raise BadRequestData(f"the body must be an object like {shape}")
    present = [key for key in collections if key in body]
    if len(present) != 1:
        raise BadRequestData(f"the body must be an object like {shape}")
    items = body[present[0]]
    if not isinstance(items, list) or not items:
        raise BadRequestData(f"{present[0]} must be a non-empty array")
    return present[0], items


def _group(doc: Any, where: str) -> Group:
    if not isinstance(doc, dict):
        raise BadRequestData(f"{where} must be an object")
    if "apikey" not in doc:
        raise BadRequestData(f'{where}.apikey is required ("" for LoRaWAN groups)')
    _refuse_name_expressions(doc, where)
    resource = fields.text(doc, "resource", where) or DEFAULT_RESOURCE
    autoprovision = fields.flag(doc, "autoprovision", where)
    return Group(
        apikey=fields.apikey(doc["apikey"], where),
        resource=resource,
        entity_type=fields.name(doc, "entity_type", where),
        attributes=fields.mappings(doc, "attributes", where, static=False),
        static_attributes=fields.mappings(doc, "static_attributes", where, static=True),
        explicit_attrs=bool(fields.explicit_attrs(doc, where)),
        timestamp=fields.flag(doc, "timestamp", where),
        autoprovision=True if autoprovision is None else autoprovision,
        lorawan=fields.lorawan(doc, where, device=False),
        raw={**doc, "resource": resource},
    )


def _device(doc: Any, where: str) -> Device:
    if not isinstance(doc, dict):
        raise BadRequestData(f"{where} must be an object")
    _refuse_name_expressions(doc, where)
    entity_name = doc.get("entity_name")
    if entity_name is not None and not is_uri(entity_name):
        raise BadRequestData(
            f"{where}.entity_name must be a URI such as urn:ngsi-ld:WaterObserved:gauge-07, "
            f"got {entity_name!r}"
        )
    apikey = None if doc.get("apikey") is None else fields.apikey(doc["apikey"], where)
    return Device(
        device_id=fields.device_id(doc.get("device_id"), where),
        apikey=apikey or None,
        entity_name=entity_name,
        entity_type=fields.name(doc, "entity_type", where),
        attributes=fields.mappings(doc, "attributes", where, static=False),
        static_attributes=fields.mappings(doc, "static_attributes", where, static=True),
        explicit_attrs=fields.explicit_attrs(doc, where),
        timestamp=fields.flag(doc, "timestamp", where),
        lorawan=fields.lorawan(doc, where, device=True),
        raw=dict(doc),
    )


def _refuse_name_expressions(doc: dict[str, Any], where: str) -> None:
    if doc.get("entityNameExp") is not None:
        raise BadRequestData(
            f"{where}.entityNameExp: JEXL expressions are not supported; "
            "provision the device with an entity_name"
        )


def _merge(raw: dict[str, Any], fragment: Any) -> dict[str, Any]:
    if not isinstance(fragment, dict):
        raise BadRequestData("the body must be a JSON object of the members to change")
    merged = {**raw, **fragment}
    return {key: value for key, value in merged.items() if value is not None}


def _inherit(
    own: tuple[AttributeMapping, ...], inherited: tuple[AttributeMapping, ...]
) -> tuple[AttributeMapping, ...]:
    mapped = {mapping.key for mapping in own}
    return own + tuple(mapping for mapping in inherited if mapping.key not in mapped)


def _first(value: bool | None, fallback: bool | None) -> bool | None:
    return fallback if value is None else value
