"""One MQTT 5.0 connection for the ingest adapter: paho-mqtt's protocol engine on the event loop.

Why paho-mqtt directly, not aiomqtt (which the notification sender uses): acknowledging a
message only after its entity update is committed needs paho's ``manual_ack`` mode and
``Client.ack``. aiomqtt 2.x creates its paho client itself, never enables ``manual_ack`` and has
no call that sends a PUBACK (paho acknowledges each QoS 1 message as soon as aiomqtt has queued
it); its paho client is a private attribute, and switching a private object into a mode its
owner does not expect would break silently on an upgrade. It also cannot stop reading from the
socket, which is the back-pressure asked for here: its message queue is either unbounded or
drops messages. Why not paho's own network thread (``loop_start``): every message would cross
threads, and pausing the reader would mean blocking that thread, which also stops it sending
acknowledgements and keep-alive pings. So paho runs on the event loop, as its "external loop"
API intends: the socket is registered with ``add_reader``/``add_writer``, and paho parses and
builds packets in ``loop_read``/``loop_write``/``loop_misc``.

Theory of operation:

- ``open`` runs paho's blocking ``connect`` (DNS, TCP, TLS handshake, CONNECT written) in a
  worker thread; only then are the socket callbacks installed, so every later paho callback runs
  on the event loop thread and needs no locking. The session is persistent (Clean Start 0, MQTT
  5.0 §3.1.2.4) and outlives the connection by ``session_expiry`` seconds (§3.1.2.11.2).
- Receive Maximum (§3.1.2.11.3) tells the broker how many unacknowledged QoS 1 messages we take
  at once, so the broker does the first part of flow control itself. ``pause_reading`` is the
  second part, for brokers that do not honour it: the socket is simply not read, TCP's window
  fills, and the broker stops sending. While paused no PINGRESP is read either, so a pause longer
  than about twice the keep-alive ends with paho dropping the connection; unacknowledged
  messages then come again on the next connection, which is what QoS 1 promises. Nor is a
  broken connection seen by reading: the next write (an acknowledgement, a ping) finds it.
- A reader wake-up keeps calling ``loop_read`` (one packet each) while PUBLISHes keep coming,
  up to a budget, so a burst is taken in few event loop turns; TLS sockets are also drained of
  bytes already decrypted, which would never wake the selector again.
- ``disconnect`` sends DISCONNECT only once the broker has *read* every acknowledgement queued
  before it. Having written them is not enough: a restarted Toshi resumes the session at once,
  and a broker taking a session over closes the old connection without reading what is left in
  it (Mosquitto: "already connected, closing old connection"), so PUBACKs still in its socket
  would be lost and their messages, already ingested, delivered again. The proof of reading is
  the answer to a request sent after the acknowledgements: an UNSUBSCRIBE of a filter we never
  hold, which MQTT 5.0 §3.10.4 obliges the broker to answer (UNSUBACK, reason code 0x11 No
  subscription existed), and a broker handles one connection's packets in order. PINGREQ
  would do as well, but paho has no public call to send one and learn of the answer.
  PUBLISHes read meanwhile are not handed on, so stay unacknowledged and come again.
- ``lost`` is set once, whatever ended the connection: the broker, the network, keep-alive,
  our DISCONNECT, or ``abort``. Requests still waiting for their answer fail with
  ``ConnectionLost``. How it ended is kept for the caller to judge: the reason code of the
  broker's DISCONNECT, if it sent one, or that the connection was closed with no reason given.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, cast

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

logger = logging.getLogger(__name__)

# Packets taken per reader wake-up before other tasks (handlers, acknowledgements) get a turn.
_READ_BUDGET = 64

# Unsubscribed from before DISCONNECT, to learn that the broker has read everything sent before.
# Never subscribed to: the broker compares filters character by character (MQTT 5.0 §3.10.4),
# so this removes nothing, whatever the configured topics are.
_READ_BACK_FILTER = "toshi/read-back/no-subscription"


class ConnectionLost(Exception):
    """The connection ended before the broker answered."""


class ConnectionRefused(Exception):
    """The broker answered CONNECT with a failure reason code (bad credentials, ...)."""


class MqttConnection:
    """A persistent-session MQTT 5.0 connection that acknowledges QoS 1 messages only on request.

    Args:
        host: Broker host name or address.
        port: Broker TCP port.
        client_id: Names the session on the broker; the same id resumes the same session.
        on_message: Called on the event loop thread for every PUBLISH received. It must not
            block; the message stays unacknowledged until ``ack`` is called with its ``mid``.
        username: MQTT user name, if the broker wants one.
        password: MQTT password.
        keepalive: Seconds of silence after which paho pings the broker.
        session_expiry: Seconds the broker keeps the session after the connection ends.
        receive_maximum: Unacknowledged QoS 1 messages the broker may send us at once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        client_id: str,
        on_message: Callable[[paho.MQTTMessage], None],
        *,
        username: str | None = None,
        password: str | None = None,
        keepalive: int,
        session_expiry: int,
        receive_maximum: int,
    ) -> None:
        self._host, self._port, self._keepalive = host, port, keepalive
        self._loop = asyncio.get_running_loop()
        self._on_message = on_message
        self._connect_properties = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
        self._connect_properties.SessionExpiryInterval = session_expiry
        self._connect_properties.ReceiveMaximum = receive_maximum
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5,
            reconnect_on_failure=False,
            manual_ack=True,
        )
        self._client.enable_logger(logger.getChild("paho"))
        if username is not None:
            self._client.username_pw_set(username, password)
        self._client.on_connect = self._connected
        self._client.on_disconnect = self._disconnected
        self._client.on_message = self._received
        self._client.on_subscribe = self._answered
        self._client.on_unsubscribe = self._answered
        self._connack: asyncio.Future[bool] = self._loop.create_future()
        self._requests: dict[int, asyncio.Future[list[ReasonCode]]] = {}
        self._fd = -1
        self._reading = False
        self._publishes_read = 0
        self._disconnecting = False
        self._keepalive_task: asyncio.Task[None] | None = None
        self._tls: _WrapRecorder | None = None
        self.lost = asyncio.Event()
        """Set once the connection has ended, for whatever reason."""
        self.lost_reason = ""
        """Why the connection ended, for logs."""
        self.disconnect_reason: int | None = None
        """The reason code of the broker's DISCONNECT (MQTT 5.0 §3.14.2.1), if it sent one."""
        self.closed_without_reason = False
        """The connection ended with no DISCONNECT from either side and no keep-alive timeout:
        the broker or the network closed it (or failed) without saying why."""

    def use_tls(self, context: ssl.SSLContext) -> None:
        """Speak TLS with these settings (mqtts://); call before ``open``."""
        self._tls = _WrapRecorder(context)
        self._client.tls_set_context(cast(ssl.SSLContext, self._tls))

    async def open(self, timeout: float) -> bool:  # noqa: ASYNC109 - also paho's socket timeout
        """Connect and wait for CONNACK; return whether the broker still had our session.

        Raises:
            OSError: No TCP or TLS connection (includes certificate errors).
            ConnectionRefused: The broker refused the CONNECT.
            ConnectionLost: The connection ended before CONNACK.
            TimeoutError: No CONNACK within ``timeout`` seconds.
        """
        self._client.connect_timeout = timeout
        connecting = asyncio.ensure_future(asyncio.to_thread(self._connect_blocking))
        try:
            await asyncio.shield(connecting)
        except asyncio.CancelledError:
            # The thread cannot be stopped; close whatever socket it ends up opening.
            connecting.add_done_callback(lambda _: self._close_socket())
            raise
        self._attach()
        try:
            async with asyncio.timeout(timeout):
                return await self._connack
        except BaseException:
            self.abort()
            raise

    async def subscribe(
        self,
        filters: Sequence[str],
        qos: int,
        timeout: float,  # noqa: ASYNC109
    ) -> list[ReasonCode]:
        """Subscribe to ``filters``; return the broker's reason code for each (SUBACK)."""
        # MQTT 5.0 §3.8.3.1: Retain Handling 1 sends retained messages only for a new
        # subscription, so renewing subscriptions on every reconnect does not replay them.
        options = SubscribeOptions(qos=qos, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        return await self._request(self._client.subscribe([(f, options) for f in filters]), timeout)

    async def unsubscribe(
        self,
        filters: Sequence[str],
        timeout: float,  # noqa: ASYNC109
    ) -> list[ReasonCode]:
        """Unsubscribe from ``filters``; return the broker's reason code for each (UNSUBACK)."""
        return await self._request(self._client.unsubscribe(list(filters)), timeout)

    def ack(self, mid: int, qos: int) -> bool:
        """Queue the acknowledgement of message ``mid``; False once the connection is lost."""
        if self.lost.is_set():
            return False
        self._client.ack(mid, qos)
        return True

    def pause_reading(self) -> None:
        """Stop reading from the socket (back-pressure); acknowledgements are still sent."""
        if self._reading:
            self._loop.remove_reader(self._fd)
            self._reading = False

    def resume_reading(self) -> None:
        """Read from the socket again after ``pause_reading``."""
        if not self._reading and not self.lost.is_set() and self._fd >= 0:
            self._loop.add_reader(self._fd, self._readable)
            self._reading = True

    async def disconnect(self, timeout: float) -> None:  # noqa: ASYNC109
        """Send DISCONNECT once the broker has read every queued acknowledgement; the broker
        keeps the session.

        PUBLISHes read from now on are not handed to ``on_message``: unacknowledged, they come
        again on the next connection. Without the broker's answer within ``timeout`` seconds
        the connection is dropped (``abort``), and acknowledgements it had not read are lost.
        """
        if self.lost.is_set():
            return
        self._disconnecting = True
        self.resume_reading()  # the answer comes that way
        try:
            async with asyncio.timeout(timeout):
                await self.unsubscribe([_READ_BACK_FILTER], timeout)
                if self._client.disconnect() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    raise ConnectionLost(self.lost_reason or "DISCONNECT could not be sent")
                await self.lost.wait()
        except (ConnectionLost, TimeoutError) as exc:
            logger.warning(
                "MQTT broker %s:%d did not confirm reading our acknowledgements before the "
                "connection ended (%s); their messages may be delivered again",
                self._host,
                self._port,
                str(exc) or type(exc).__name__,
            )
            self.abort()

    def abort(self) -> None:
        """Drop the connection at once, without DISCONNECT, as a crash would."""
        self._close_socket()
        self._mark_lost("connection aborted")

    def _connect_blocking(self) -> None:
        try:
            self._client.connect(
                self._host,
                self._port,
                self._keepalive,
                clean_start=False,
                properties=self._connect_properties,
            )
        except BaseException:
            # paho 2.x drops, without closing it, the socket of a failed TLS handshake.
            if self._tls is not None:
                self._tls.close_all()
            raise

    def _attach(self) -> None:
        sock = self._client.socket()
        if sock is None:  # closed again while the thread connected
            raise ConnectionLost("the connection closed while it was being opened")
        self._fd = sock.fileno()
        self._client.on_socket_close = self._socket_closed
        self._client.on_socket_register_write = self._want_write
        self._client.on_socket_unregister_write = self._wrote_all
        self.resume_reading()
        if self._client.want_write():  # CONNECT not fully written by the thread
            self._loop.add_writer(self._fd, self._writable)
        self._keepalive_task = self._loop.create_task(self._keep_alive())

    async def _request(
        self,
        sent: tuple[MQTTErrorCode, int | None],
        timeout: float,  # noqa: ASYNC109
    ) -> list[ReasonCode]:
        code, mid = sent
        if code != MQTTErrorCode.MQTT_ERR_SUCCESS or mid is None or self.lost.is_set():
            raise ConnectionLost(self.lost_reason or paho.error_string(code))
        answer: asyncio.Future[list[ReasonCode]] = self._loop.create_future()
        self._requests[mid] = answer
        try:
            async with asyncio.timeout(timeout):
                return await answer
        finally:
            self._requests.pop(mid, None)

    def _readable(self) -> None:
        try:
            for _ in range(_READ_BUDGET):
                before = self._publishes_read
                if self._client.loop_read() != MQTTErrorCode.MQTT_ERR_SUCCESS or not self._reading:
                    return
                sock = self._client.socket()
                pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
                if self._publishes_read == before and not pending:
                    return
        except Exception as exc:  # paho raises what our callbacks raise, and socket errors
            logger.warning("MQTT connection failed while reading", exc_info=exc)
            self.abort()

    def _writable(self) -> None:
        try:
            self._client.loop_write()  # paho unregisters the writer once everything is written
        except Exception as exc:
            logger.warning("MQTT connection failed while writing", exc_info=exc)
            self.abort()

    async def _keep_alive(self) -> None:
        while not self.lost.is_set():
            await asyncio.sleep(1.0)
            if self._client.loop_misc() != MQTTErrorCode.MQTT_ERR_SUCCESS:
                self._mark_lost("keep-alive: the broker stopped answering")

    def _close_socket(self) -> None:
        self._socket_closed()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def _mark_lost(self, reason: str) -> None:
        if self.lost.is_set():
            return
        self.lost_reason = reason
        self.lost.set()
        self._socket_closed()
        if self._keepalive_task is not None:
            self._keepalive_task.cancel()
        pending: list[asyncio.Future[Any]] = [self._connack, *self._requests.values()]
        for answer in pending:
            if not answer.done():
                answer.set_exception(ConnectionLost(reason))
                answer.exception()  # retrieved: nobody may be waiting any more

    # paho callbacks; paho calls them on the event loop thread, from loop_read/write/misc.

    def _connected(
        self,
        _client: paho.Client,
        _userdata: Any,
        flags: paho.ConnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if self._connack.done():
            return
        if reason.is_failure:
            self._connack.set_exception(ConnectionRefused(str(reason)))
        else:
            self._connack.set_result(flags.session_present)

    def _disconnected(
        self,
        _client: paho.Client,
        _userdata: Any,
        flags: paho.DisconnectFlags,
        reason: ReasonCode,
        _properties: Properties | None,
    ) -> None:
        if flags.is_disconnect_packet_from_server:
            self.disconnect_reason = reason.value
            self._mark_lost(
                f"the broker disconnected us: {reason} (reason code 0x{reason.value:02X})"
            )
        elif reason.getName() == "Unspecified error":  # what paho reports for a lost socket
            self.closed_without_reason = True
            self._mark_lost("the connection was closed without a reason code")
        else:
            self._mark_lost(str(reason))

    def _received(self, _client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        self._publishes_read += 1
        if not self._disconnecting:
            self._on_message(message)

    def _answered(
        self,
        _client: paho.Client,
        _userdata: Any,
        mid: int,
        reasons: list[ReasonCode],
        _properties: Properties | None,
    ) -> None:
        answer = self._requests.get(mid)
        if answer is not None and not answer.done():
            answer.set_result(reasons)

    def _want_write(self, *_: Any) -> None:
        if self._fd >= 0 and not self.lost.is_set():
            self._loop.add_writer(self._fd, self._writable)

    def _wrote_all(self, *_: Any) -> None:
        if self._fd >= 0:
            self._loop.remove_writer(self._fd)

    def _socket_closed(self, *_: Any) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            self._loop.remove_writer(self._fd)
            self._fd = -1
        self._reading = False


class _WrapRecorder:
    """Stands in for an ``SSLContext`` in paho, remembering the sockets it wraps."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self._context = context
        self._wrapped: list[ssl.SSLSocket] = []
        self.check_hostname = context.check_hostname  # paho reads it

    def wrap_socket(self, sock: socket.socket, **options: Any) -> ssl.SSLSocket:
        wrapped = self._context.wrap_socket(sock, **options)
        self._wrapped.append(wrapped)
        return wrapped

    def close_all(self) -> None:
        for wrapped in self._wrapped:
            wrapped.close()
        self._wrapped.clear()
