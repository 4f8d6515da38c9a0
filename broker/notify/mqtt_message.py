"""What an MQTT notification is made of: where it goes, how it is sent, and the bytes published.

GS CIM 009 v1.8.1 §7.2 (MQTT notification binding) in three pure functions:

- ``parse_endpoint``: ``mqtt[s]://[user[:password]@]host[:port]/topic[/level]*`` -> ``MqttTarget``.
  The topic is the URI path without its leading '/', percent-decoded, any number of levels.
  Default ports are 1883 (mqtt) and 8883 (mqtts, TLS).
- ``split_notifier_info``: the subscription's ``notifierInfo`` pairs ``MQTT-Version``
  (``mqtt3.1.1``, the default, or ``mqtt5.0``) and ``MQTT-QoS`` (0, the default, 1 or 2) are
  instructions to the notifier, so they are taken out of the header map; everything else there
  (Content-Type, Link, NGSILD-Tenant, receiverInfo pairs) is what the receiver would have seen as
  HTTP headers, and becomes the message's ``metadata``.
- ``encode_message``: ``{"metadata": {...}, "body": <Notification>}``, the one JSON object an MQTT
  notification consists of, since MQTT 3.1.1 has no headers.

Everything that can never work (unknown scheme, no topic, wildcards, bad port, unknown version or
QoS) raises ``EndpointError``. Its message shows the URI with the password masked: it ends up in
logs and in the subscription's failure reason. Nothing here does I/O, so the subscription service
can reject such endpoints by the same rules when a subscription is created.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

import orjson

from broker.mqtt_url import broker_address, redact

MqttVersion = Literal["mqtt3.1.1", "mqtt5.0"]

VERSION_KEY = "MQTT-Version"
QOS_KEY = "MQTT-QoS"
_VERSIONS: dict[str, MqttVersion] = {"mqtt3.1.1": "mqtt3.1.1", "mqtt5.0": "mqtt5.0"}
_QOS_LEVELS = {"0": 0, "1": 1, "2": 2}
_MAX_TOPIC_BYTES = 65535  # MQTT 3.1.1 §1.5.3: a UTF-8 string has a two-byte length prefix


class EndpointError(ValueError):
    """An MQTT endpoint URI or notifierInfo value that no retry can make usable."""


@dataclass(frozen=True, slots=True)
class MqttTarget:
    """The broker to connect to and the topic to publish on.

    Attributes:
        scheme: ``mqtt`` or ``mqtts`` (TLS).
        host: Broker host name or IP address (IPv6 without brackets).
        port: Broker TCP port.
        topic: Topic name to publish to; never empty, never a wildcard.
        username: Percent-decoded user name from the URI, if any.
        password: Percent-decoded password from the URI, if any.
    """

    scheme: str
    host: str
    port: int
    topic: str
    username: str | None = None
    password: str | None = None

    @property
    def tls(self) -> bool:
        """Whether the connection is secured with TLS."""
        return self.scheme == "mqtts"


@dataclass(frozen=True, slots=True)
class MqttOptions:
    """How to publish, from the subscription's notifierInfo.

    Attributes:
        version: MQTT protocol version of the connection.
        qos: Quality of service of the PUBLISH (0 at most once, 1 at least once, 2 exactly once).
    """

    version: MqttVersion = "mqtt3.1.1"
    qos: int = 0


def parse_endpoint(url: str) -> MqttTarget:
    """Read an MQTT endpoint URI (GS CIM 009 v1.8.1 §7.2).

    Raises:
        EndpointError: The URI cannot name a broker and a publishable topic.
    """
    shown = redact(url)
    # '#' would be read as a URI fragment delimiter, silently cutting the topic short.
    if "#" in url:
        raise EndpointError(f"MQTT wildcard '#' cannot be published to: {shown!r}")
    try:
        address = broker_address(url)
    except ValueError as exc:
        raise EndpointError(str(exc)) from None
    parts = urlsplit(url)
    if parts.query:
        raise EndpointError(f"an MQTT endpoint has no query part: {shown!r}")
    return MqttTarget(
        scheme=address.scheme,
        host=address.host,
        port=address.port,
        topic=_topic(parts.path, shown),
        username=address.username,
        password=address.password,
    )


def split_notifier_info(headers: Mapping[str, str]) -> tuple[MqttOptions, dict[str, str]]:
    """Separate the MQTT notifierInfo pairs (keys matched case-insensitively) from the metadata.

    Raises:
        EndpointError: ``MQTT-Version`` or ``MQTT-QoS`` has a value the spec does not define.
    """
    version: MqttVersion = "mqtt3.1.1"
    qos = 0
    metadata: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key == VERSION_KEY.lower():
            known_version = _VERSIONS.get(value.strip().lower())
            if known_version is None:
                raise EndpointError(f"{VERSION_KEY} must be mqtt3.1.1 or mqtt5.0, not {value!r}")
            version = known_version
        elif key == QOS_KEY.lower():
            level = _QOS_LEVELS.get(value.strip())
            if level is None:
                raise EndpointError(f"{QOS_KEY} must be 0, 1 or 2, not {value!r}")
            qos = level
        else:
            metadata[name] = value
    return MqttOptions(version=version, qos=qos), metadata


def encode_message(body: bytes, metadata: Mapping[str, str]) -> bytes:
    """The MQTT payload: ``{"metadata": ..., "body": ...}`` (GS CIM 009 v1.8.1 §7.2).

    ``body`` must already be a serialized JSON value (the Notification); it is embedded as is,
    without being parsed again.
    """
    return orjson.dumps({"metadata": dict(metadata), "body": orjson.Fragment(body)})


def _topic(path: str, shown: str) -> str:
    try:
        topic = unquote(path.removeprefix("/"), errors="strict")
    except UnicodeDecodeError as exc:
        raise EndpointError(f"topic is not UTF-8 in {shown!r}") from exc
    if not topic:
        raise EndpointError(f"no topic in {shown!r}: expected mqtt://host/topic")
    # MQTT 3.1.1 §3.3.2.1 and 5.0 §3.3.2.1: a PUBLISH topic name holds no wildcard.
    if "+" in topic or "#" in topic:
        raise EndpointError(f"MQTT wildcards '+' and '#' cannot be published to: {shown!r}")
    # MQTT §4.7.2: topics starting with '$' belong to the broker (e.g. $SYS).
    if topic.startswith("$"):
        raise EndpointError(f"topics starting with '$' are reserved for the broker: {shown!r}")
    if "\x00" in topic or len(topic.encode()) > _MAX_TOPIC_BYTES:
        raise EndpointError(f"not a valid MQTT topic name in {shown!r}")
    return topic
