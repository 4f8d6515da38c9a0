"""The ingest adapter's MQTT subscriber: QoS 1, a persistent session, acknowledged after commit.

``MqttSource`` keeps one connection to the broker (``adapters.mqtt.connection``), hands every
message to an async handler, and acknowledges it only once the handler has returned, i.e. once
the entity update is committed. A Toshi restart therefore loses nothing: what was not
acknowledged, and what was published while Toshi was down, is delivered by the broker on the
next connection of the same session (same ``client_id``).

Theory of operation:

- ``run`` connects, (re)subscribes, serves until the connection is lost, and reconnects after a
  full-jitter backoff (``uniform(0, min(cap, base * 2**failures))``), so that replicas do not
  all reconnect at the same instant. Network failures are logged at WARNING with the password
  redacted (``redact``) and never raised. A session another client took over (same client id,
  ``adapters.mqtt.takeover``) is logged at ERROR and left to it for ``backoff_cap`` seconds.
  ``close`` stops gracefully; cancelling ``run`` is a crash: running handlers are cancelled and
  nothing more is acknowledged.
- Every PUBLISH becomes a task running the handler, so a burst turns into concurrent store
  writes that the store can group-commit. A message is *in flight* from its arrival until its
  PUBACK is sent (or given up); at ``max_inflight`` the socket is no longer read, so a slow store
  slows the broker down instead of filling our memory. The broker is told the same limit as its
  Receive Maximum. After a lost connection the source reconnects only once there is room again,
  but handlers of the lost connection may still run while the broker resends their messages:
  across a reconnect, up to twice ``max_inflight`` messages can be in flight.
- PUBACKs go out in receive order (``adapters.mqtt.acks``). A handler that raises has judged the
  message bad: it is counted, logged and acknowledged (the caller sets it aside). A cancelled
  handler's message is not acknowledged and comes again on the next connection.
- Delivery is at least once: a message whose handler ran on a lost connection is handled again
  when the broker resends it. Messages on one topic may be handled concurrently; callers order
  updates by their timestamps.
- Subscriptions (``adapters.mqtt.subscriptions``) are shared by default, so replicas with the
  same group split the messages, and are renewed on every connection.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial

import paho.mqtt.client as paho
from broker.retry import full_jitter

from adapters.mqtt.acks import AckOrder, Delivery
from adapters.mqtt.config import SourceConfig, broker_address, redact
from adapters.mqtt.connection import ConnectionLost, ConnectionRefused, MqttConnection
from adapters.mqtt.subscriptions import Subscriptions
from adapters.mqtt.takeover import SessionWatch

__all__ = ["Handler", "MqttSource", "SourceConfig", "SourceStats", "redact"]

logger = logging.getLogger(__name__)

Handler = Callable[[str, bytes], Awaitable[None]]
"""Handles one message ``(topic, payload)``. Returning acknowledges it; raising means the message
is bad (it is acknowledged too, the caller sets it aside); cancellation leaves it unacknowledged."""

# How long the broker may take to answer CONNECT, SUBSCRIBE, UNSUBSCRIBE (and to accept TCP/TLS).
_REPLY_TIMEOUT = 20.0


@dataclass(slots=True)
class SourceStats:
    """Counters since the source was created."""

    received: int = 0
    """PUBLISHes received, redeliveries included."""
    acked: int = 0
    """PUBACKs sent."""
    handler_errors: int = 0
    """Messages whose handler raised (acknowledged all the same)."""
    reconnects: int = 0
    """Connections established after the first one."""
    inflight: int = 0
    """Messages received and not yet acknowledged or given up."""


class MqttSource:
    """Subscribes to ``config.topics`` and hands each message to ``handler``; see the module doc.

    Args:
        config: Broker, session and flow-control settings.
        handler: Called once per message delivery, concurrently with other messages.
    """

    def __init__(self, config: SourceConfig, handler: Handler) -> None:
        self.config = config
        self.stats = SourceStats()
        self.connected = asyncio.Event()
        """Set while connected and subscribed."""
        self._handler = handler
        self._broker = broker_address(config.url)
        self._subscriptions = Subscriptions(
            config.topics,
            qos=config.qos,
            shared_group=config.shared_group,
            broker=redact(config.url),
            timeout=_REPLY_TIMEOUT,
        )
        self._watch = SessionWatch(redact(config.url), config.client_id, config.backoff_cap)
        self._connection: MqttConnection | None = None
        self._acks = AckOrder(lambda mid, qos: None)
        self._handlers: set[asyncio.Task[None]] = set()
        self._tls: ssl.SSLContext | None = None
        self._connections = 0
        self._room = asyncio.Event()  # set while fewer than max_inflight messages are in flight
        self._room.set()
        self._closing = asyncio.Event()
        self._stopped = asyncio.Event()
        self._running = False
        self._drain_timeout = 10.0

    async def run(self) -> None:
        """Receive messages until ``close``; never raises on network errors."""
        if self._running:
            raise RuntimeError("MqttSource.run is already running")
        self._running = True
        self._stopped.clear()
        try:
            await self._keep_connected()
            await self._drain()
        finally:
            await self._stop_at_once()
            self._running = False
            self._stopped.set()

    async def set_topics(self, topics: Sequence[str]) -> None:
        """Subscribe to ``topics`` instead of the current filters, now and on later connections.

        Returns once the broker has confirmed the change, or at once while disconnected (the
        next connection applies it).

        Raises:
            ValueError: One of ``topics`` is not a valid MQTT topic filter.
        """
        try:
            await self._subscriptions.change(topics, self._live_connection)
        except (ConnectionLost, TimeoutError) as exc:
            logger.warning(
                "MQTT broker %s did not confirm the new subscriptions (%s); "
                "they are sent again on reconnection",
                redact(self.config.url),
                _describe(exc),
            )

    async def close(self, *, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Stop gracefully; the broker keeps the session.

        Stops taking messages, lets running handlers finish (and acknowledges their messages)
        for up to ``timeout`` seconds, cancels the rest (their messages come again), and
        disconnects once the broker has read the acknowledgements, so that a successor resuming
        the session at once is not sent those messages again (``MqttConnection.disconnect``).
        Cancelling ``run`` instead stops at once, as a crash would.
        """
        self._drain_timeout = timeout
        self._closing.set()
        if self._running:
            await self._stopped.wait()

    async def _keep_connected(self) -> None:
        failures = 0
        while not self._closing.is_set():
            if not self._room.is_set():
                # Handlers of a lost connection still hold every slot: taking the broker's
                # redeliveries now would only pile up more of the same work.
                await _first(self._room.wait(), self._closing.wait())
                continue
            connection, taken_over = await self._connect()
            if connection is not None:
                since = asyncio.get_running_loop().time()
                await _first(connection.lost.wait(), self._closing.wait())
                if not connection.lost.is_set():
                    return  # closing: _drain finishes with this connection
                lasted = asyncio.get_running_loop().time() - since
                self._retire()
                taken_over = self._watch.ended(connection, opened=True, lasted=lasted)
                if not taken_over:
                    logger.warning(
                        "lost MQTT broker %s (%s); reconnecting",
                        redact(self.config.url),
                        connection.lost_reason,
                    )
                # Only a connection that lasted starts the backoff over; one the broker drops
                # at once (a broker restarting, a proxy) backs off further.
                if lasted > self.config.backoff_cap:
                    failures = 0
            if taken_over:
                delay = self._watch.hold_off
            else:
                delay = full_jitter(failures, self.config.backoff_base, self.config.backoff_cap)
                failures += 1
            await _first(self._closing.wait(), asyncio.sleep(delay))

    async def _connect(self) -> tuple[MqttConnection | None, bool]:
        """The established connection, or None; and whether another client took the session."""
        broker = self._broker
        connection = MqttConnection(
            broker.host,
            broker.port,
            self.config.client_id,
            self._received,
            username=broker.username,
            password=broker.password,
            keepalive=self.config.keepalive,
            session_expiry=self.config.settings.session_expiry,
            receive_maximum=self.config.settings.max_inflight,
        )
        self._connection = connection
        self._acks = AckOrder(partial(self._send_ack, connection))
        opening = asyncio.create_task(self._open(connection))
        try:
            await _first(opening, self._closing.wait())
        finally:
            opening.cancel()  # no-op once done
            (failure,) = await asyncio.gather(opening, return_exceptions=True)
        if failure is None:
            return connection, False
        connection.abort()
        self._retire()
        if isinstance(failure, asyncio.CancelledError):  # we are closing
            return None, False
        if not isinstance(failure, OSError | ConnectionLost | ConnectionRefused):
            raise failure
        if self._watch.ended(connection, opened=False):
            return None, True
        logger.warning(
            "cannot connect to MQTT broker %s: %s", redact(self.config.url), _describe(failure)
        )
        return None, False

    async def _open(self, connection: MqttConnection) -> None:
        if self._broker.tls:
            connection.use_tls(await self._tls_context())
        resumed = await connection.open(_REPLY_TIMEOUT)
        await self._subscriptions.renew(connection)
        if self._connections:
            self.stats.reconnects += 1
        self._connections += 1
        logger.info(
            "connected to MQTT broker %s as %s (%s session)",
            redact(self.config.url),
            self.config.client_id,
            "resumed" if resumed else "new",
        )
        self._watch.opened()
        self.connected.set()
        self._throttle()

    def _live_connection(self) -> MqttConnection | None:
        return self._connection if self.connected.is_set() else None

    def _received(self, message: paho.MQTTMessage) -> None:
        acks = self._acks
        delivery = acks.receive(message.mid, message.qos)
        self.stats.received += 1
        self.stats.inflight += 1
        self._throttle()
        task = asyncio.create_task(self._handle(message))
        self._handlers.add(task)
        task.add_done_callback(partial(self._handled, acks, delivery))

    async def _handle(self, message: paho.MQTTMessage) -> None:
        try:
            await self._handler(message.topic, bytes(message.payload))
        except Exception:
            self.stats.handler_errors += 1
            logger.warning("MQTT message handler failed; acknowledging the message", exc_info=True)

    def _handled(self, acks: AckOrder, delivery: Delivery, task: asyncio.Task[None]) -> None:
        self._handlers.discard(task)
        self._release(acks.settle(delivery, acknowledge=not task.cancelled()))

    def _send_ack(self, connection: MqttConnection, mid: int, qos: int) -> None:
        if connection.ack(mid, qos):
            self.stats.acked += 1

    def _release(self, count: int) -> None:
        self.stats.inflight -= count
        self._throttle()

    def _throttle(self) -> None:
        full = self.stats.inflight >= self.config.settings.max_inflight
        if full:
            self._room.clear()
        else:
            self._room.set()
        connection = self._connection
        if connection is None or self._closing.is_set():
            return
        # Reading is never paused before the subscriptions are confirmed: SUBACKs come that way.
        if full and self.connected.is_set():
            connection.pause_reading()
        else:
            connection.resume_reading()

    def _retire(self) -> None:
        self.connected.clear()
        self._connection = None
        self._release(self._acks.abandon())

    async def _drain(self) -> None:
        connection = self._connection
        if connection is not None:
            connection.pause_reading()
        if self._handlers:
            _, late = await asyncio.wait(set(self._handlers), timeout=self._drain_timeout)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        if connection is not None:
            await connection.disconnect(_REPLY_TIMEOUT)
            self._retire()

    async def _stop_at_once(self) -> None:
        if self._connection is not None:
            self._connection.abort()
            self._retire()
        for task in self._handlers:
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)

    async def _tls_context(self) -> ssl.SSLContext:
        if self._tls is None:
            # Loading CA files reads the disk: keep that off the event loop.
            self._tls = await asyncio.to_thread(
                ssl.create_default_context, cafile=self.config.settings.tls_ca_file
            )
        return self._tls


def _describe(exc: BaseException) -> str:
    return str(exc) or type(exc).__name__


async def _first(*waits: Awaitable[object]) -> None:
    """Wait until one of ``waits`` is done; cancel the others."""
    tasks = [asyncio.ensure_future(wait) for wait in waits]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
