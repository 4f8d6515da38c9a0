"""Settings of the ingest adapter's MQTT subscriber, and the broker URL rules they rely on.

Validated when constructed, so a bad broker URL or topic filter stops Toshi at start-up
with a clear message instead of turning into reconnection warnings forever. Broker URLs are read
by ``broker.mqtt_url``, as notification endpoints are; ``redact`` is how they appear in logs.
"""

from __future__ import annotations

from dataclasses import dataclass

from broker.mqtt_url import broker_address, redact

__all__ = ["SourceConfig", "broker_address", "check_filter", "redact"]


@dataclass(frozen=True)
class SourceConfig:
    """Where and how to subscribe.

    Attributes:
        url: ``mqtt://user:password@host:port`` or ``mqtts://…`` (ports default to 1883, 8883).
        client_id: Names the persistent session; every restart must use the same one.
        topics: Topic filters to subscribe to.
        qos: 1 for at-least-once (or 0 to accept losses). QoS 2's exactly-once state would live
            only in this process's memory, so it could not survive the restart it is meant for.
        shared_group: Subscribe as ``$share/<group>/<filter>``; None for plain subscriptions.
        max_inflight: Messages received but not yet acknowledged, at most.
        session_expiry: Seconds the broker keeps the session (and queues messages) after a
            disconnect.
        keepalive: MQTT keep-alive in seconds.
        backoff_base: First reconnect delay bound in seconds; doubles per failed attempt.
        backoff_cap: Largest reconnect delay bound in seconds.
        tls_ca_file: CA bundle for mqtts://; the system's CAs when None.
    """

    url: str
    client_id: str
    topics: tuple[str, ...]
    qos: int = 1
    shared_group: str | None = "toshi"
    max_inflight: int = 1000
    session_expiry: int = 3600
    keepalive: int = 30
    backoff_base: float = 0.5
    backoff_cap: float = 30.0
    tls_ca_file: str | None = None

    def __post_init__(self) -> None:
        broker_address(self.url)
        if not self.client_id:
            raise ValueError("client_id must not be empty: it names the persistent session")
        if self.qos not in (0, 1):
            raise ValueError(f"qos must be 0 or 1, not {self.qos}")
        if not 1 <= self.max_inflight <= 65535:  # MQTT 5.0 §3.1.2.11.3 Receive Maximum
            raise ValueError(f"max_inflight must be 1..65535, not {self.max_inflight}")
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
