"""Messages the ingest path set aside, kept per tenant for inspection, and counted per reason.

A device's garbage is a remote fault: the adapter counts it, logs it and carries on (STYLE.md,
"Errors"). Counting alone does not tell an operator *what* the device sent, so the last messages
of each tenant are kept too, in a bounded list (the oldest goes when it is full) that an admin
endpoint shows. A message that cannot be attributed to any tenant (unknown apikey or LoRaWAN
device, a topic that names nobody) is kept under the tenant ``""``, which no NGSI-LD tenant can
be called; only an operator reads that list.

The counters are never reset or bounded: they feed Prometheus counters, which must only grow.
Memory stays bounded all the same: the lists are per tenant, tenants exist only by provisioning
(plus ``""``), and reasons are a small fixed vocabulary chosen by the code, never by a device.
This module does no logging; the caller logs, with the context it has.
"""

from __future__ import annotations

import base64
import codecs
from collections import Counter, deque
from dataclasses import asdict, dataclass
from typing import Any, Final, Literal

from broker.prometheus import Family
from broker.settings import MqttSettings

EXCERPT_BYTES: Final = 1024
"""How much of a payload is kept: enough to see what a device sent, not a copy of a flood."""


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One message (or one measure of it) that was set aside.

    Attributes:
        at: when it arrived (UTC, ``Z``).
        topic: where it came from (MQTT topic, or ``lorawan:<application>/<device>``).
        reason: a short stable slug, the ``reason`` label of the rejection counter.
        detail: what exactly was wrong, for a person.
        payload_excerpt: the first ``EXCERPT_BYTES`` of the payload, as text when they are
            UTF-8, else in base64 (see ``payload_encoding``).
        payload_encoding: ``"utf-8"`` or ``"base64"``.
        payload_size: the size of the whole payload in bytes.
    """

    at: str
    topic: str
    reason: str
    detail: str
    payload_excerpt: str
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_size: int = 0

    @classmethod
    def of(cls, at: str, topic: str, reason: str, detail: str, payload: bytes) -> DeadLetter:
        """A dead letter keeping an excerpt of ``payload``."""
        excerpt, encoding = _excerpt(payload[:EXCERPT_BYTES])
        return cls(at, topic, reason, detail, excerpt, encoding, len(payload))

    def as_json(self) -> dict[str, Any]:
        """The JSON object an admin endpoint shows (camelCase, like the rest of the API)."""
        return {_camel(name): value for name, value in asdict(self).items()}


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _excerpt(head: bytes) -> tuple[str, Literal["utf-8", "base64"]]:
    # Not final: a multi-byte character cut at the excerpt's end is dropped, not held against
    # the payload, which would otherwise be shown in base64 for a split "°".
    try:
        return codecs.getincrementaldecoder("utf-8")().decode(head, final=False), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(head).decode("ascii"), "base64"


class DeadLetters:
    """Bounded per-tenant lists of dead letters, and never-reset counts per reason."""

    def __init__(self, capacity_per_tenant: int = MqttSettings().dead_letters) -> None:
        """Keep at most ``capacity_per_tenant`` letters per tenant (the newest ones)."""
        if capacity_per_tenant < 1:
            raise ValueError("capacity_per_tenant must be at least 1")
        self._capacity = capacity_per_tenant
        self._letters: dict[str, deque[DeadLetter]] = {}
        self._counts: Counter[str] = Counter()

    def add(self, tenant: str, letter: DeadLetter) -> None:
        """Keep ``letter`` for ``tenant`` (``""``: unattributable); the oldest goes when full."""
        letters = self._letters.get(tenant)
        if letters is None:
            letters = self._letters[tenant] = deque(maxlen=self._capacity)
        letters.append(letter)
        self._counts[letter.reason] += 1

    def for_tenant(self, tenant: str) -> list[DeadLetter]:
        """The letters kept for ``tenant``, oldest first (newest last)."""
        return list(self._letters.get(tenant, ()))

    def counts(self) -> dict[str, int]:
        """Letters ever added, per reason (including those since dropped from the lists)."""
        return dict(self._counts)

    def metric_families(self) -> list[Family]:
        """``toshi_ingest_rejected_total{reason=…}`` for ``/metrics``."""
        family = Family(
            "toshi_ingest_rejected_total",
            "counter",
            "Device messages or measures set aside as dead letters, per reason.",
        )
        for reason, count in sorted(self._counts.items()):
            family.add(count, (("reason", reason),))
        return [family]
