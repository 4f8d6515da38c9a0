"""Publishing notifications to MQTT brokers (GS CIM 009 v1.8.1 §7): the ``Sender`` for mqtt(s)://.

Why aiomqtt on top of paho-mqtt: paho implements the protocol (3.1.1 and 5.0, the QoS 1 and 2
handshakes, TLS) but wants a thread or a caller pumping its network loop; aiomqtt drives paho's
socket from the asyncio event loop (``add_reader``/``add_writer``) and turns its callbacks into
awaitables. That glue is the part that is easy to get subtly wrong, and aiomqtt maintains and tests
it; what is left here is connection reuse and error mapping.

Theory of operation:

- One connection per (scheme, host, port, username, password, MQTT version): everything the socket
  or the CONNECT packet depends on. Topic and QoS are per message, so every subscription naming the
  same broker shares one connection, and concurrent publishes are multiplexed on it.
- A connection is opened lazily by a task kept in the pool, so concurrent first publishes await
  the same CONNECT. A caller whose timeout expires only stops waiting: the task runs to its end
  and a connection it opens is kept for the next publish, instead of being left half-open.
- A watcher task per connection reads the client's message stream (always empty: we never
  subscribe), which ends exactly when the connection drops. A publish waits for its
  acknowledgement *or* that end, so a broken connection fails its publishes at once rather than at
  their timeout; the next publish replaces the dead connection with a new one.
- Success (status 200) means written to the socket for QoS 0, PUBACK for QoS 1, PUBCOMP for QoS 2.
  As with HTTP, delivery is at-least-once: a publish that failed after reaching the broker is sent
  again by the dispatcher. A QoS 0 message written to a connection the broker has already dropped
  is lost without an error, which is what QoS 0 ("at most once") allows.
- ``SendError(retryable=False)`` for endpoints and notifierInfo that can never work and for a
  broker refusing our credentials or protocol version; ``retryable=True`` for everything network.
"""

from __future__ import annotations

import asyncio
import logging
import math
import ssl
import uuid
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass

import aiomqtt
from aiomqtt.exceptions import MqttConnectError
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from broker.notify.http_sender import PeerCheck, SendError
from broker.notify.mqtt_message import (
    EndpointError,
    MqttTarget,
    MqttVersion,
    encode_message,
    parse_endpoint,
    split_notifier_info,
)

logger = logging.getLogger(__name__)

ConnectionKey = tuple[str, str, int, str | None, str | None, MqttVersion]

# CONNACK refusals that no retry can cure, as MQTT 5.0 reason codes (paho maps 3.1.1 return
# codes onto these): unsupported protocol version, client id rejected, bad user name or password,
# not authorized, bad authentication method.
_FINAL_REFUSALS = frozenset({0x84, 0x85, 0x86, 0x87, 0x8C})


@dataclass(eq=False, slots=True)
class _Connection:
    client: aiomqtt.Client
    exit_stack: AsyncExitStack
    watcher: asyncio.Task[None]
    properties: Properties | None
    peer: str | None
    """The IP address the connection reached, for the egress check (None if unknown)."""

    @property
    def alive(self) -> bool:
        return not self.watcher.done()

    async def publish(self, topic: str, payload: bytes, qos: int) -> None:
        publishing = asyncio.ensure_future(
            self.client.publish(topic, payload, qos, properties=self.properties, timeout=math.inf)
        )
        try:
            done, _ = await asyncio.wait(
                (publishing, self.watcher), return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            publishing.cancel()  # no-op once done; stops waiting for an ack on timeout
        if publishing not in done:
            raise aiomqtt.MqttError("connection to the broker was lost")
        publishing.result()

    async def close(self) -> None:
        with suppress(aiomqtt.MqttError):  # a broken connection cannot say goodbye
            await self.exit_stack.aclose()
        self.watcher.cancel()
        await asyncio.gather(self.watcher, return_exceptions=True)


class MqttSender:
    """Publishes notifications to the topic named by an ``mqtt://`` or ``mqtts://`` endpoint.

    ``headers`` given to ``post`` carry the would-be HTTP headers and the subscription's
    notifierInfo pairs; see ``broker.notify.mqtt_message`` for how they are split.

    Args:
        tls_context: TLS settings for mqtts://. Defaults to the system CAs with hostname checks.
        keepalive: Seconds between MQTT keep-alive pings on idle connections.
    """

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, keepalive: int = 60) -> None:
        self._tls_context = tls_context
        self._keepalive = keepalive
        self._pool: dict[ConnectionKey, asyncio.Task[_Connection]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._closed = False
        self.connections_opened = 0
        """Connections the brokers accepted so far (CONNACK), over all brokers."""

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109 - the Sender protocol passes it
        check: PeerCheck | None = None,
    ) -> int:
        """Publish ``body`` as the ``body`` of an MQTT notification message; 200 when delivered.

        Raises:
            SendError: Not delivered; ``retryable`` says whether trying again can help.
        """
        try:
            target = parse_endpoint(url)
            options, metadata = split_notifier_info(headers)
        except EndpointError as exc:
            raise SendError(str(exc), retryable=False) from exc
        payload = encode_message(body, metadata)
        broker = f"MQTT broker {target.scheme}://{target.host}:{target.port}"
        try:
            async with asyncio.timeout(timeout):
                connection = await self._connection(target, options.version, timeout)
                refusal = None if check is None else check(connection.peer or target.host)
                if refusal is not None:
                    raise SendError(f"not sent: {refusal}", retryable=False)
                await connection.publish(target.topic, payload, options.qos)
        except TimeoutError as exc:
            raise SendError(f"{broker} did not answer within {timeout}s") from exc
        except MqttConnectError as exc:
            final = _reason_code(exc) in _FINAL_REFUSALS
            raise SendError(f"{broker} refused to connect: {exc}", retryable=not final) from exc
        except aiomqtt.MqttError as exc:
            raise SendError(f"{broker}: {exc}") from exc
        except ValueError as exc:  # paho's own checks of what it is asked to publish
            raise SendError(f"{broker} cannot take this message: {exc}", retryable=False) from exc
        return 200

    async def close(self) -> None:
        """Disconnect from every broker; connections still being opened are abandoned."""
        self._closed = True
        openings = list(self._pool.values())
        self._pool.clear()
        for opening in openings:
            opening.cancel()
        results = await asyncio.gather(*openings, return_exceptions=True)
        closing = [r.close() for r in results if isinstance(r, _Connection)]
        await asyncio.gather(*closing, *self._retiring, return_exceptions=True)

    async def _connection(
        self,
        target: MqttTarget,
        version: MqttVersion,
        timeout: float,  # noqa: ASYNC109
    ) -> _Connection:
        if self._closed:
            raise SendError("the MQTT sender is closed", retryable=False)
        key = (target.scheme, target.host, target.port, target.username, target.password, version)
        opening = self._pool.get(key)
        if opening is not None and opening.done() and not _usable(opening):
            self._retire(key, opening)
            opening = None
        if opening is None:
            opening = asyncio.create_task(self._open(target, version, timeout))
            self._pool[key] = opening
        return await asyncio.shield(opening)

    async def _open(
        self,
        target: MqttTarget,
        version: MqttVersion,
        timeout: float,  # noqa: ASYNC109
    ) -> _Connection:
        v5 = version == "mqtt5.0"
        client = aiomqtt.Client(
            target.host,
            target.port,
            username=target.username,
            password=target.password,
            # MQTT 3.1.1 §3.1.3.1: brokers must accept 1-23 alphanumerics; they may refuse more.
            identifier=f"toshi{uuid.uuid4().hex[:18]}",
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            tls_context=await self._tls() if target.tls else None,
            timeout=timeout,  # bounds the wait for CONNACK, as the caller's timeout may not
            keepalive=self._keepalive,
            logger=logger.getChild("paho"),
        )
        # aiomqtt warns past 10 publishes awaiting their ack; a shared connection normally has
        # more, and the dispatcher's per-origin concurrency is what bounds them.
        client.pending_calls_threshold = 1000
        exit_stack = AsyncExitStack()
        await exit_stack.enter_async_context(client)
        self.connections_opened += 1
        logger.debug("connected to MQTT broker %s:%d", target.host, target.port)
        watcher = asyncio.create_task(_until_disconnected(client, target))
        properties = _v5_properties() if v5 else None
        return _Connection(client, exit_stack, watcher, properties, _peer(client))

    async def _tls(self) -> ssl.SSLContext:
        if self._tls_context is None:
            # Loading the system CA store reads files: keep that off the event loop.
            self._tls_context = await asyncio.to_thread(ssl.create_default_context)
        return self._tls_context

    def _retire(self, key: ConnectionKey, opening: asyncio.Task[_Connection]) -> None:
        del self._pool[key]
        if opening.cancelled() or opening.exception() is not None:
            return
        closing = asyncio.create_task(opening.result().close())
        self._retiring.add(closing)
        closing.add_done_callback(self._retiring.discard)


def _usable(opening: asyncio.Task[_Connection]) -> bool:
    if opening.cancelled() or opening.exception() is not None:
        return False
    return opening.result().alive


async def _until_disconnected(client: aiomqtt.Client, target: MqttTarget) -> None:
    try:
        async for _message in client.messages:
            pass
    except aiomqtt.MqttError as exc:
        if exc.__cause__ is not None:  # None after our own DISCONNECT
            logger.info("lost MQTT broker %s:%d: %s", target.host, target.port, exc.__cause__)


def _peer(client: aiomqtt.Client) -> str | None:
    """The address paho's socket reached. aiomqtt does not expose its paho client; reading it
    is what lets the egress check see where the connection really went (a host name resolving
    elsewhere since the subscription was created). Unknown → the check uses the host name."""
    paho_client = getattr(client, "_client", None)
    sock = None if paho_client is None else paho_client.socket()
    try:
        return None if sock is None else str(sock.getpeername()[0])
    except (OSError, AttributeError):
        return None


def _v5_properties() -> Properties:
    # MQTT 5.0 §3.3.2.3.2 and §3.3.2.3.9: tell v5 receivers the payload is UTF-8 JSON.
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call] # paho: untyped
    properties.PayloadFormatIndicator = 1
    properties.ContentType = "application/json"
    return properties


def _reason_code(exc: MqttConnectError) -> int | None:
    if isinstance(exc.rc, ReasonCode):
        return exc.rc.value
    return exc.rc
