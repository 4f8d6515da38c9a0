"""Settings of one MQTT connection of the ingest adapter, and the broker URL rules they rely on.

A ``SourceConfig`` holds what tells one connection from another (broker URL, client id, topic
filters, shared-subscription group) and takes everything tunable from ``MqttSettings``, so each
default lives in ``broker.settings`` alone. The protocol details below (QoS, keep-alive,
reconnection backoff) are not settings: they are fixed here, and tests change them.

Validated when constructed, so a bad broker URL or topic filter stops Toshi at start-up
with a clear message instead of turning into reconnection warnings forever. Broker URLs are read
by ``broker.mqtt_url``, as notification endpoints are; ``redact`` is how they appear in logs.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass

from broker.mqtt_url import broker_address, redact
from broker.settings import MqttSettings

__all__ = ["SourceConfig", "broker_address", "check_filter", "redact"]


@dataclass(frozen=True)
class SourceConfig:
    """Where and how to subscribe.

    Attributes:
        url: ``mqtt://user:password@host:port`` or ``mqtts://…`` (ports default to 1883, 8883).
        client_id: Names the persistent session; every restart must use the same one.
        topics: Topic filters to subscribe to.
        shared_group: Subscribe as ``$share/<group>/<filter>``; None for plain subscriptions.
        settings: Flow control, session expiry and TLS (``max_inflight``, ``session_expiry``,
            ``tls_ca_file``).
        qos: 1 for at-least-once (or 0 to accept losses). QoS 2's exactly-once state would live
            only in this process's memory, so it could not survive the restart it is meant for.
        keepalive: MQTT keep-alive in seconds.
        backoff_base: First reconnect delay bound in seconds; doubles per failed attempt.
        backoff_cap: Largest reconnect delay bound in seconds.
    """

    url: str
    client_id: str
    topics: tuple[str, ...]
    _: KW_ONLY
    shared_group: str | None
    settings: MqttSettings
    qos: int = 1
    keepalive: int = 30
    backoff_base: float = 0.5
    backoff_cap: float = 30.0

    def __post_init__(self) -> None:
        broker_address(self.url)
        if not self.client_id:
            raise ValueError("client_id must not be empty: it names the persistent session")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, not {self.qos}")
        group = self.shared_group
        if group is not None and (not group or any(c in group for c in "/+#")):
            raise ValueError(f"not a shared subscription group name: {group!r}")
        for topic in self.topics:
            check_filter(topic)


def check_filter(topic: str) -> None:
    """Raise ``ValueError`` unless ``topic`` is a valid MQTT topic filter."""
    # MQTT 5.0 §4.7: wildcards fill whole levels, and "#" only the last one.
    levels = topic.split("/")
    misplaced = any(("#" in level or "+" in level) and len(level) > 1 for level in levels)
    if not topic or "\0" in topic or misplaced or "#" in levels[:-1]:
        raise ValueError(f"not an MQTT topic filter: {topic!r}")
