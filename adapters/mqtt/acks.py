"""Acknowledging received MQTT messages in the order they arrived, whatever order they finish in.

MQTT 5.0 §4.6 (and 3.1.1 §4.6 before it): a client "MUST send PUBACK packets in the order in
which the corresponding PUBLISH packets were received (QoS 1 messages)". The ingest adapter
handles messages concurrently, so handlers finish out of order; an ``AckOrder`` holds each
finished message's PUBACK back until every message received before it on the same connection
has finished too, then releases the whole contiguous prefix at once.

Theory of operation:

- ``receive`` appends a ``Delivery`` per PUBLISH; ``settle`` marks one finished, either to be
  acknowledged (handled, or rejected as bad: the caller has dealt with it) or not (the handler
  was cancelled, so the message must come again). Settling pops every settled delivery at the
  head and sends the PUBACKs of those to be acknowledged, oldest first. A delivery left
  unacknowledged is skipped, not waited for: the PUBACKs that are sent are still in receive
  order, and the broker redelivers the skipped message on the next connection of the session.
- A delivery counts as *outstanding* from ``receive`` until it is released: popped from the
  head, or settled after the connection is gone. The return values of ``settle`` and
  ``abandon`` say how many were released, so the caller can keep a count of outstanding
  messages for back-pressure without walking the queue.
- ``abandon`` is for a lost connection: packet identifiers belong to the connection they arrived
  on (MQTT 5.0 §4.4: the broker resends unacknowledged PUBLISHes on the next one), so nothing
  owed on it can be sent any more. Settled deliveries still waiting behind a slow head are
  released at once; unsettled ones are released when they settle.
- QoS 0 deliveries (a QoS 0 PUBLISH on a QoS 1 subscription) go through the queue like the rest
  but owe no PUBACK.

Pure bookkeeping: the caller supplies ``send`` and decides what a handler's outcome means.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(eq=False, slots=True)
class Delivery:
    """One received PUBLISH, from ``AckOrder.receive`` until it is released."""

    mid: int
    qos: int
    settled: bool = False
    acknowledge: bool = False


class AckOrder:
    """The PUBACKs owed on one connection, sent in the order their PUBLISHes were received.

    Args:
        send: Sends the acknowledgement of ``(packet identifier, qos)`` on the connection.
    """

    def __init__(self, send: Callable[[int, int], None]) -> None:
        self._send = send
        self._waiting: deque[Delivery] = deque()
        self._open = True

    def __len__(self) -> int:
        """Deliveries still held in the queue (on a live connection: all outstanding ones)."""
        return len(self._waiting)

    def receive(self, mid: int, qos: int) -> Delivery:
        """Record a PUBLISH as it arrives; the caller settles the returned delivery later."""
        delivery = Delivery(mid, qos)
        if self._open:
            self._waiting.append(delivery)
        return delivery

    def settle(self, delivery: Delivery, *, acknowledge: bool) -> int:
        """Record that ``delivery`` was handled; return how many deliveries this released."""
        delivery.settled = True
        delivery.acknowledge = acknowledge
        if not self._open:
            return 1
        released = 0
        while self._waiting and self._waiting[0].settled:
            head = self._waiting.popleft()
            if head.acknowledge and head.qos > 0:
                self._send(head.mid, head.qos)
            released += 1
        return released

    def abandon(self) -> int:
        """The connection is gone; return how many settled deliveries this released."""
        self._open = False
        released = sum(1 for delivery in self._waiting if delivery.settled)
        self._waiting.clear()
        return released
