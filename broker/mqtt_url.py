"""MQTT broker URLs, read one way wherever Toshi talks MQTT: notification endpoints
(``broker.notify``) and the ingest adapter's brokers (``adapters``).

``mqtt[s]://[user[:password]@]host[:port]``: user and password are percent-decoded (and must
be UTF-8), default ports are 1883 and 8883 (TLS). URLs carry passwords, so every message and log
line shows them through ``redact``.
"""

from __future__ import annotations

from typing import NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit

MQTT_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerAddress(NamedTuple):
    """Where a broker URL points, and the credentials it carries."""

    scheme: str
    host: str
    port: int
    username: str | None
    password: str | None

    @property
    def tls(self) -> bool:
        return self.scheme == "mqtts"


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``, for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{parts.username}:***@{host}"))


def broker_address(url: str) -> BrokerAddress:
    """Read the broker part of an ``mqtt://`` or ``mqtts://`` URL (any path is ignored).

    Raises:
        ValueError: Not such a URL; the message shows it with the password redacted.
    """
    shown = redact(url)
    parts = urlsplit(url)
    if parts.scheme not in MQTT_DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"not an mqtt:// or mqtts:// broker URL: {shown}")
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f"bad port in broker URL: {shown}") from None
    if port == 0:
        raise ValueError(f"port 0 in broker URL: {shown}")
    username = _decoded(parts.username, shown)
    password = _decoded(parts.password, shown)
    return BrokerAddress(
        parts.scheme,
        parts.hostname,
        port or MQTT_DEFAULT_PORTS[parts.scheme],
        username if username or password is not None else None,
        password,
    )


def _decoded(component: str | None, shown: str) -> str | None:
    if component is None:
        return None
    try:
        return unquote(component, errors="strict")
    except UnicodeDecodeError:
        raise ValueError(f"user name or password is not UTF-8 in {shown}") from None
