"""Provisioned config groups and devices, as the ingest path reads them.

The shapes follow the FIWARE IoT Agent provisioning API (iotagent-node-lib "Config group
datamodel" and "Device datamodel"), so existing city tooling can provision Toshi. Names keep the
IoT Agent's meaning; values are already validated (``broker.services.provisioning.parse``). A device
inherits what it does not set from its group (``effective``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

Provider = Literal["TTN", "chirpstack"]
DataModel = Literal["cayennelpp", "application_server"]
Connection = tuple[str, str | None, str | None, Provider]
"""(broker URL, user name, password, provider): ``ApplicationServer.connection``."""


@dataclass(frozen=True, slots=True)
class AttributeMapping:
    """One entry of ``attributes`` / ``static_attributes``.

    Attributes:
        name: the NGSI-LD attribute name (a term of the tenant's @context or an IRI).
        type: the IoT Agent type (``Number``, ``Text``, ``geo:json``, ``Relationship``, ...),
            which decides how a measured value becomes an NGSI-LD attribute.
        object_id: the key the device sends (``None``: the device sends ``name``).
        metadata: static sub-attributes, IoT Agent style (``{"unitCode": {"type": "Text",
            "value": "MTR"}}``).
        value: the value of a static attribute (``None`` for active ones).
    """

    name: str
    type: str
    object_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    value: Any = None

    @property
    def key(self) -> str:
        """What the device calls it."""
        return self.object_id or self.name


@dataclass(frozen=True, slots=True)
class ApplicationServer:
    """A LoRaWAN network server's MQTT broker (IoTagent-LoRaWAN ``application_server``)."""

    host: str
    provider: Provider
    port: int | None = None
    protocol: Literal["mqtt", "mqtts"] = "mqtt"
    username: str | None = None
    password: str | None = None

    @property
    def url(self) -> str:
        """``mqtt[s]://host:port`` without credentials: the broker, as applications are filed."""
        port = self.port or (8883 if self.protocol == "mqtts" else 1883)
        return f"{self.protocol}://{self.host.lower()}:{port}"

    @property
    def connection(self) -> Connection:
        """What one ingest connection stands for: the broker, the login and the provider.

        Applications on one broker whose logins or providers differ need connections of their
        own: a broker lets a login read only its own applications' topics, and the provider
        decides which topics those are.
        """
        return self.url, self.username, self.password, self.provider

    @property
    def login_url(self) -> str:
        """``url`` with the credentials in it: what the ingest adapter connects with."""
        if self.username is None:
            return self.url
        password = "" if self.password is None else ":" + quote(self.password, safe="")
        return self.url.replace("://", f"://{quote(self.username, safe='')}{password}@", 1)


@dataclass(frozen=True, slots=True)
class Lorawan:
    """``internal_attributes.lorawan`` of a group or device."""

    application_server: ApplicationServer
    application_id: str
    data_model: DataModel = "application_server"
    dev_eui: str | None = None
    """Lower-case hex; devices only."""


@dataclass(frozen=True, slots=True)
class Group:
    """A config group (service group): defaults for the devices under one ``apikey``."""

    apikey: str
    resource: str = "/iot/json"
    entity_type: str | None = None
    attributes: tuple[AttributeMapping, ...] = ()
    static_attributes: tuple[AttributeMapping, ...] = ()
    explicit_attrs: bool = False
    timestamp: bool | None = None
    autoprovision: bool = True
    lorawan: Lorawan | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    """The group as the client sent it (what GET /iot/groups shows back)."""


@dataclass(frozen=True, slots=True)
class Device:
    """A provisioned device."""

    device_id: str
    apikey: str | None = None
    entity_name: str | None = None
    entity_type: str | None = None
    attributes: tuple[AttributeMapping, ...] = ()
    static_attributes: tuple[AttributeMapping, ...] = ()
    explicit_attrs: bool | None = None
    timestamp: bool | None = None
    lorawan: Lorawan | None = None
    raw: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Effective:
    """A device with its group's defaults filled in: everything the mapping needs."""

    tenant: str
    device_id: str
    entity_id: str
    entity_type: str
    attributes: tuple[AttributeMapping, ...]
    """Device entries first, then the group's for object_ids the device does not map."""
    static_attributes: tuple[AttributeMapping, ...]
    explicit_attrs: bool
    timestamp: bool
    autoprovisioned: bool = False
    apikey: str | None = None
    """The apikey it was found under (``None`` for LoRaWAN and for devices without one)."""
    lorawan: Lorawan | None = None
    """Its LoRaWAN settings (with ``dev_eui`` when known): what an autoprovisioned device is
    remembered under."""
