"""The topic filters the ingest adapter's MQTT session should hold, kept in step with the broker.

A persistent session keeps its subscriptions on the broker between connections, so the wanted
filters and the broker's can drift apart: the session may have expired (it then has none), and a
filter dropped while disconnected is still there. Hence:

- every new connection subscribes to all wanted filters again (renewing an existing one is
  harmless; see ``MqttConnection.subscribe`` for why retained messages are not replayed);
- a dropped filter stays *stale* until an UNSUBSCRIBE for it is confirmed, on the live
  connection or on the next one. Filters dropped while no Toshi ran are not known and stay in
  the broker's session until it expires.

With a shared group every filter is sent as ``$share/<group>/<filter>`` (MQTT 5.0 §4.8.2), so
replicas in the group split the messages between them. A refused subscription is logged at
WARNING and not retried: the same SUBSCRIBE would be refused again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from adapters.mqtt.config import check_filter
from adapters.mqtt.connection import MqttConnection

logger = logging.getLogger(__name__)


class Subscriptions:
    """The wanted topic filters, and those to be removed from the session.

    Args:
        topics: The filters wanted at first.
        qos: Maximum QoS asked for every subscription.
        shared_group: Share every subscription in this group; None for plain subscriptions.
        broker: How to name the broker in logs (its redacted URL).
        timeout: Seconds the broker may take to answer a SUBSCRIBE or UNSUBSCRIBE.
    """

    def __init__(
        self,
        topics: Sequence[str],
        *,
        qos: int,
        shared_group: str | None,
        broker: str,
        timeout: float,
    ) -> None:
        self._wanted = tuple(dict.fromkeys(topics))
        self._stale: set[str] = set()
        self._qos = qos
        self._group = shared_group
        self._broker = broker
        self._timeout = timeout
        self._lock = asyncio.Lock()  # one SUBSCRIBE/UNSUBSCRIBE exchange at a time

    async def renew(self, connection: MqttConnection) -> None:
        """Bring a new connection's session up to date: drop stale filters, subscribe to all."""
        async with self._lock:
            await self._apply(connection, self._wanted, tuple(self._stale))

    async def change(
        self, topics: Sequence[str], live: Callable[[], MqttConnection | None]
    ) -> None:
        """Want ``topics`` from now on; apply the difference on the ``live()`` connection, if any.

        Raises:
            ValueError: One of ``topics`` is not a valid MQTT topic filter.
            ConnectionLost: The connection ended before the broker confirmed.
            TimeoutError: The broker did not confirm in time.
        """
        wanted = tuple(dict.fromkeys(topics))
        for topic in wanted:
            check_filter(topic)
        async with self._lock:
            added = tuple(topic for topic in wanted if topic not in self._wanted)
            self._stale.update(topic for topic in self._wanted if topic not in wanted)
            self._stale.difference_update(added)
            self._wanted = wanted
            connection = live()
            if connection is not None:
                await self._apply(connection, added, tuple(self._stale))

    async def _apply(
        self, connection: MqttConnection, subscribe: Sequence[str], unsubscribe: Sequence[str]
    ) -> None:
        if unsubscribe:
            await connection.unsubscribe([self._filter(t) for t in unsubscribe], self._timeout)
            self._stale.difference_update(unsubscribe)
        if not subscribe:
            return
        filters = [self._filter(topic) for topic in subscribe]
        reasons = await connection.subscribe(filters, self._qos, self._timeout)
        for topic_filter, reason in zip(filters, reasons, strict=False):
            if reason.is_failure:
                logger.warning(
                    "MQTT broker %s refused the subscription to %s: %s",
                    self._broker,
                    topic_filter,
                    reason,
                )

    def _filter(self, topic: str) -> str:
        return topic if self._group is None else f"$share/{self._group}/{topic}"
