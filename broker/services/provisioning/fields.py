"""Checking the members of one provisioning document: ids, flags, attribute mappings, LoRaWAN.

``parse`` assembles groups and devices from these. Every check raises ``BadRequestData`` whose
message starts with where the bad value is (``groups[0].attributes[2].type``), so a client
provisioning a hundred devices at once can find the one it got wrong.

Ids that end up in MQTT topic filters (apikey, device id, LoRaWAN application id) may not hold
the filter characters ``+`` and ``#`` nor ``/``: an application id of ``#`` would subscribe Toshi
to a whole network server.
"""

from __future__ import annotations

import re
from typing import Any, Final, get_args

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_name
from broker.services.provisioning.model import (
    ApplicationServer,
    AttributeMapping,
    DataModel,
    Lorawan,
    Provider,
)

_APIKEY: Final = re.compile(r"^[^\s/+#|]{0,256}$")
# A device id is a topic segment and the last part of an autoprovisioned entity id (a URI).
_DEVICE_ID: Final = re.compile(r'^[^\s/+#<>"{}|\\^`]{1,256}$')
_APPLICATION_ID: Final = re.compile(r"^[^\s/+#]{1,256}$")
_HOST: Final = re.compile(r"^(?:[A-Za-z0-9_.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\])$")
_DEV_EUI: Final = re.compile(r"^[0-9A-Fa-f]{16}$")
_PROVIDERS: Final[dict[str, Provider]] = {
    "ttn": "TTN",
    "chirpstack": "chirpstack",
    "loraserver.io": "chirpstack",  # ChirpStack's former name, as IoTagent-LoRaWAN accepts it
}
_DATA_MODELS: Final = frozenset(get_args(DataModel))
_UNSUPPORTED_IN_MAPPING: Final = {
    "expression": "JEXL expressions are not supported",
    "entity_name": "routing an attribute to another entity is not supported",
    "entity_type": "routing an attribute to another entity is not supported",
}


def is_device_id(value: object) -> bool:
    """Whether ``value`` can name a device (and so end an autoprovisioned entity id)."""
    return isinstance(value, str) and _DEVICE_ID.match(value) is not None


def device_id(value: object, where: str) -> str:
    """A device id: 1-256 characters, none of them blank, ``/``, ``+``, ``#`` or URI-unsafe."""
    if value is None:
        raise BadRequestData(f"{where}.device_id is required")
    if not is_device_id(value):
        raise BadRequestData(
            f"{where}.device_id must be 1-256 characters without spaces, '/', '+', '#' "
            f"or URI-unsafe characters, got {value!r}"
        )
    return str(value)


def apikey(value: object, where: str) -> str:
    """An apikey: a string (``""`` allowed, for LoRaWAN groups) usable as a topic segment."""
    if not isinstance(value, str):
        raise BadRequestData(f"{where}.apikey must be a string, got {value!r}")
    if not _APIKEY.match(value):
        raise BadRequestData(
            f"{where}.apikey must be at most 256 characters without spaces, '/', '+', '#' or '|'"
        )
    return value


def text(doc: dict[str, Any], key: str, where: str) -> str | None:
    """An optional non-empty string member (``null`` counts as absent)."""
    value = doc.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise BadRequestData(f"{where}.{key} must be a non-empty string, got {value!r}")
    return value


def name(doc: dict[str, Any], key: str, where: str) -> str | None:
    """An optional NGSI-LD name (an entity type, say)."""
    value = doc.get(key)
    return None if value is None else check_name(value, f"{where}.{key}")


def flag(doc: dict[str, Any], key: str, where: str) -> bool | None:
    """An optional boolean member (``null`` counts as absent)."""
    value = doc.get(key)
    if value is None or isinstance(value, bool):
        return value
    raise BadRequestData(f"{where}.{key} must be true or false, got {value!r}")


def explicit_attrs(doc: dict[str, Any], where: str) -> bool | None:
    """``explicitAttrs``: a boolean; the IoT Agent's JEXL forms are refused, not ignored."""
    if isinstance(doc.get("explicitAttrs"), str):
        raise BadRequestData(
            f"{where}.explicitAttrs: explicitAttrs expressions are not supported; use true/false"
        )
    return flag(doc, "explicitAttrs", where)


def mappings(
    doc: dict[str, Any], key: str, where: str, *, static: bool
) -> tuple[AttributeMapping, ...]:
    """The ``attributes`` or ``static_attributes`` list; each device key mapped once."""
    entries = doc.get(key)
    if entries is None:
        return ()
    if not isinstance(entries, list):
        raise BadRequestData(f"{where}.{key} must be an array")
    parsed: list[AttributeMapping] = []
    seen: set[str] = set()
    for index, entry in enumerate(entries):
        mapping = _mapping(entry, f"{where}.{key}[{index}]", static=static)
        if mapping.key in seen:
            raise BadRequestData(f"{where}.{key}[{index}]: {mapping.key!r} is mapped twice")
        seen.add(mapping.key)
        parsed.append(mapping)
    return tuple(parsed)


def _mapping(entry: object, where: str, *, static: bool) -> AttributeMapping:
    if not isinstance(entry, dict):
        raise BadRequestData(f"{where} must be an object with name and type")
    for member, reason in _UNSUPPORTED_IN_MAPPING.items():
        if entry.get(member) is not None:
            raise BadRequestData(f"{where}.{member}: {reason}")
    if entry.get("name") is None:
        raise BadRequestData(f"{where}.name is required")
    attribute = check_name(entry["name"], f"{where}.name")
    kind = text(entry, "type", where)
    if kind is None:
        raise BadRequestData(f"{where}.type is required (Number, Text, geo:json, ...)")
    metadata = entry.get("metadata")
    if metadata is None:
        metadata = {}
    elif not isinstance(metadata, dict):
        raise BadRequestData(f"{where}.metadata must be an object")
    if static:
        if "value" not in entry:
            raise BadRequestData(f"{where}.value is required for a static attribute")
        return AttributeMapping(attribute, kind, metadata=metadata, value=entry["value"])
    return AttributeMapping(attribute, kind, text(entry, "object_id", where), metadata)


def lorawan(doc: dict[str, Any], where: str, *, device: bool) -> Lorawan | None:
    """``internal_attributes.lorawan`` (IoTagent-LoRaWAN shape), if there is one.

    ``app_eui``, ``application_key`` and ``options`` are accepted and kept in ``raw`` only.
    """
    internal = doc.get("internal_attributes")
    # Older IoT Agents allowed a list here; only the object form can carry ``lorawan``.
    if not isinstance(internal, dict) or internal.get("lorawan") is None:
        return None
    where = f"{where}.internal_attributes.lorawan"
    data = internal["lorawan"]
    if not isinstance(data, dict):
        raise BadRequestData(f"{where} must be an object")
    application = data.get("application_id")
    if isinstance(application, int) and not isinstance(application, bool):
        application = str(application)  # ChirpStack v3 application ids are integers
    if not isinstance(application, str) or not _APPLICATION_ID.match(application):
        raise BadRequestData(
            f"{where}.application_id is required: 1-256 characters without spaces, '/', '+' "
            f"or '#', got {application!r}"
        )
    data_model = data.get("data_model", "application_server")
    if data_model not in _DATA_MODELS:
        raise BadRequestData(
            f"{where}.data_model must be 'cayennelpp' or 'application_server', got {data_model!r}"
        )
    return Lorawan(
        _server(data.get("application_server"), f"{where}.application_server"),
        application,
        data_model,
        _dev_eui(data.get("dev_eui"), where, device=device),
    )


def _dev_eui(value: object, where: str, *, device: bool) -> str | None:
    if value is None:
        return None
    if not device:
        raise BadRequestData(f"{where}.dev_eui belongs to a device, not to a group")
    if not isinstance(value, str) or not _DEV_EUI.match(value):
        raise BadRequestData(f"{where}.dev_eui must be 16 hex digits, got {value!r}")
    return value.lower()


def _server(data: object, where: str) -> ApplicationServer:
    if not isinstance(data, dict):
        raise BadRequestData(f"{where} is required: {{host, port, provider, ...}}")
    host = data.get("host")
    if not isinstance(host, str) or not _HOST.match(host):
        raise BadRequestData(f"{where}.host must be a host name or address, got {host!r}")
    provider = data.get("provider")
    if not isinstance(provider, str) or provider.lower() not in _PROVIDERS:
        raise BadRequestData(f"{where}.provider must be 'TTN' or 'chirpstack', got {provider!r}")
    protocol = str(data.get("protocol") or "mqtt").lower()
    if protocol not in ("mqtt", "mqtts"):
        raise BadRequestData(f"{where}.protocol must be 'mqtt' or 'mqtts', got {protocol!r}")
    return ApplicationServer(
        host,
        _PROVIDERS[provider.lower()],
        _port(data.get("port"), where),
        "mqtts" if protocol == "mqtts" else "mqtt",
        text(data, "username", where),
        text(data, "password", where),
    )


def _port(value: object, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 65536:
        return value
    raise BadRequestData(f"{where}.port must be a number 1-65535, got {value!r}")


def lorawan_doc(settings: Lorawan) -> dict[str, Any]:
    """``settings`` in the provisioning API's shape (what ``lorawan`` reads back)."""
    server = settings.application_server
    optional = {"port": server.port, "username": server.username, "password": server.password}
    server_doc: dict[str, Any] = {
        "host": server.host,
        "provider": server.provider,
        "protocol": server.protocol,
        **{key: value for key, value in optional.items() if value is not None},
    }
    doc: dict[str, Any] = {
        "application_server": server_doc,
        "application_id": settings.application_id,
        "data_model": settings.data_model,
    }
    if settings.dev_eui is not None:
        doc["dev_eui"] = settings.dev_eui
    return doc
