"""Telling a session taken over by another client apart from other lost connections.

MQTT 5.0 §3.1.4: when a client connects with the client id of a connected client, the broker
closes the older connection, first sending it DISCONNECT with reason code 0x8E "Session taken
over" (§3.14.2.1). Two clients that share an id (two Toshi installations left on one default,
two replicas given the same one) then take the session from each other for ever if each
reconnects as soon as it is dropped, and split or lose each other's messages. So a takeover is
logged as exactly that, naming the setting to change, and the session is left to the other
client for ``hold_off`` seconds (the backoff cap) before it is taken back: the two alternate at
that pace instead of in a tight loop.

Theory of operation. Mosquitto before 2.0.15 (eclipse/mosquitto#2340, #2607) closes the older
connection without a DISCONNECT, which is also how it closes connections when it stops, and how
a proxy in front of it drops one. What follows tells them apart:

- DISCONNECT with 0x8E: taken over.
- A connection closed without a reason code, and the very next connection accepted: the broker
  never went away, so the session was *probably* taken over (a dropping proxy looks the same).
  Logged as such, but not waited out: it might have been the network.
- A session taken back that way, closed without a reason code again before it has lasted
  ``settled`` seconds: taken over.

A failed connection attempt means the broker was away: the suspicion is dropped.
"""

from __future__ import annotations

import logging
from typing import Final

from adapters.mqtt.connection import MqttConnection

logger = logging.getLogger(__name__)

SESSION_TAKEN_OVER: Final = 0x8E
"""MQTT 5.0 reason code "Session taken over" (§2.4)."""
_ADVICE: Final = (
    "Two Toshi installations (or two replicas) must not share a client id: set "
    "TOSHI_MQTT__CLIENT_ID to one no other client uses, or leave it unset for the "
    "installation's own default"
)


class SessionWatch:
    """Judges how one ``MqttSource``'s connections end, and logs takeovers.

    Args:
        broker: How to name the broker in logs (its redacted URL).
        client_id: The session's client id.
        hold_off: Seconds a taken-over session is left to the other client.
    """

    def __init__(self, broker: str, client_id: str, hold_off: float) -> None:
        self._broker = broker
        self._client_id = client_id
        self.hold_off = hold_off
        self._settled = 2 * hold_off
        self._closed_silently = False  # the last connection ended without a reason code
        self._suspected = False  # and the broker accepted the next one at once

    def opened(self) -> None:
        """A connection was established (and subscribed)."""
        if self._closed_silently:
            self._suspected = True
            logger.warning(
                "MQTT broker %s had closed our connection without a reason code, yet accepted "
                "the next one at once: probably our session taken over by another client with "
                "the same client id %r (Mosquitto before 2.0.15 sends no reason code 0x8E "
                "Session taken over). %s",
                self._broker,
                self._client_id,
                _ADVICE,
            )
        self._closed_silently = False

    def ended(self, connection: MqttConnection, *, opened: bool, lasted: float = 0.0) -> bool:
        """Judge how ``connection`` ended; True if its session was taken over (then logged).

        Args:
            connection: The connection, lost or never opened.
            opened: Whether it had been established (``opened`` was called for it).
            lasted: Seconds it was established.
        """
        if connection.disconnect_reason == SESSION_TAKEN_OVER:
            self._taken_over("sent reason code 0x8E Session taken over")
            return True
        silent = opened and connection.closed_without_reason
        if silent and self._suspected and lasted < self._settled:
            self._taken_over(
                "closed our connection without a reason code again, right after we had taken "
                "the session back (Mosquitto before 2.0.15 sends no reason code 0x8E Session "
                "taken over)"
            )
            return True
        self._suspected = False
        self._closed_silently = silent
        return False

    def _taken_over(self, evidence: str) -> None:
        self._suspected = True  # a taken-back session closed silently is taken over again
        self._closed_silently = False
        logger.error(
            "MQTT broker %s %s: our session was taken over by another client with the same "
            "client id %r; leaving it to that client for %.0f s. %s",
            self._broker,
            evidence,
            self._client_id,
            self.hold_off,
            _ADVICE,
        )
