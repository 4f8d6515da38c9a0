"""Delivering notifications without letting any receiver slow down the broker or other receivers.

Theory of operation:

- Deliveries are grouped by the *origin* of their endpoint (``scheme://host:port``). Each origin
  has its own bounded FIFO and its own worker task, which runs at most ``concurrency`` deliveries
  at once. A slow, failing or black-holed receiver therefore only fills its own queue and only
  occupies its own slots.
- ``submit`` never awaits. When an origin's queue is full the *oldest* pending delivery is dropped
  (its ``on_done`` gets ``Outcome(dropped=True)``): for context notifications the newest state is
  the one worth delivering, and the caller's memory stays bounded.
- A delivery is retried on network errors, 5xx and 429, with exponential backoff and full jitter
  (``uniform(0, min(cap, base * 2**n))``, so that a receiver coming back is not hit by every
  retry at the same instant), until ``max_attempts`` or ``max_retry_time`` is spent. A retrying
  delivery keeps its slot while it waits, which throttles a failing origin by itself.
  Any other non-2xx status is final: sending the same bytes again cannot change the answer.
- Before every attempt, the first included, a delivery's ``wanted`` is asked whether it is still
  wanted; ``cancel`` ends at once every queued, retrying or in-flight delivery of one
  subscription. Both end it as ``Outcome(cancelled=True)``: a deleted, paused or expired
  subscription must stop notifying at once, not after its retry budget.
- Workers of idle origins exit after ``idle_timeout``; the next ``submit`` starts a new one.
- Senders are chosen by URL scheme, so non-HTTP transports (MQTT) plug in as another ``Sender``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import urlsplit

from broker.mqtt_url import MQTT_DEFAULT_PORTS
from broker.notify.http_sender import HTTP_DEFAULT_PORTS, HttpSender, PeerCheck, SendError
from broker.retry import full_jitter
from broker.settings import NotificationSettings

logger = logging.getLogger(__name__)

_DEFAULT_PORTS = {**HTTP_DEFAULT_PORTS, **MQTT_DEFAULT_PORTS}
Egress = Callable[[str, str, str], str | None]
"""(IP address reached, host name, tenant) → why a delivery may not go there, or None."""


class Sender(Protocol):
    """Carries one request to an endpoint; raises ``SendError`` when it could not."""

    async def post(
        self,
        url: str,
        body: bytes,
        headers: dict[str, str],
        timeout: float,  # noqa: ASYNC109
        check: PeerCheck | None = None,
    ) -> int:
        """Deliver ``body``; return an HTTP-like status (2xx success, 5xx/429 transient).

        ``check`` is asked about the address actually connected to before sending.
        """
        ...

    async def close(self) -> None:
        """Release connections."""
        ...


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a delivery ended.

    Attributes:
        ok: The receiver answered 2xx.
        dropped: Never attempted: evicted by a newer delivery, or the dispatcher closed first.
        attempts: Requests made.
        status: Last status received, if any.
        error: Last network error, or why the delivery was given up.
        shutdown: Ended by the dispatcher closing, not by the receiver or the queue: the caller
            may keep it and send it again after a restart.
        cancelled: Ended because it was no longer wanted (``cancel``, or ``wanted`` said no):
            neither a success nor a failure of the receiver.
    """

    ok: bool
    dropped: bool = False
    attempts: int = 0
    status: int | None = None
    error: str | None = None
    shutdown: bool = False
    cancelled: bool = False


@dataclass(frozen=True, slots=True)
class Delivery:
    """One notification to carry.

    Attributes:
        endpoint: Receiver URL; its scheme selects the sender.
        body: Bytes to send, already serialized.
        headers: Extra request headers (content type, receiverInfo, ...).
        key: The subscription id, for logs and ``cancel``.
        on_done: Called exactly once with the outcome of an accepted delivery.
        on_retry: Called after each failed attempt that will be retried (the subscription's
            status shows the failure at once, not only when the retry budget is spent).
        tenant: The tenant of the subscription (``cancel`` names both).
        wanted: Asked before each attempt; False ends the delivery as cancelled.
    """

    endpoint: str
    body: bytes
    headers: dict[str, str]
    key: str
    on_done: Callable[[Outcome], None] | None = None
    on_retry: Callable[[Outcome], None] | None = None
    tenant: str = ""
    wanted: Callable[[], bool] | None = None

    def belongs_to(self, tenant: str, key: str) -> bool:
        """Whether this delivery is one of subscription ``key`` of ``tenant``."""
        return self.key == key and self.tenant == tenant


@dataclass(slots=True)
class Counters:
    """Delivery counters; ``queued`` is the current depth, the rest only grow."""

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0
    queued: int = 0

    def add(self, other: Counters) -> None:
        """Accumulate ``other`` into this one (for totals over origins)."""
        self.sent += other.sent
        self.failed += other.failed
        self.retried += other.retried
        self.dropped += other.dropped
        self.queued += other.queued


LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
"""Upper bounds (seconds) of the lag histogram, Prometheus-style; +Inf is implied."""


@dataclass(slots=True)
class LagHistogram:
    """Time from ``submit`` to a 2xx: counts per bucket (``LAG_BUCKETS`` order, +Inf last) for
    Prometheus, and recent samples for percentiles."""

    capacity: int = 4096
    buckets: list[int] = field(default_factory=lambda: [0] * (len(LAG_BUCKETS) + 1))
    count: int = 0
    total: float = 0.0
    recent: deque[float] = field(default_factory=deque)

    def record(self, seconds: float) -> None:
        """Count one successful delivery that took ``seconds``."""
        self.count += 1
        self.total += seconds
        index = next((i for i, bound in enumerate(LAG_BUCKETS) if seconds <= bound), -1)
        self.buckets[index] += 1
        self.recent.append(seconds)
        if len(self.recent) > self.capacity:
            self.recent.popleft()

    def percentile(self, q: float) -> float | None:
        """The ``q``-quantile (0..1) of recent samples (nearest rank); None before any sample."""
        if not self.recent:
            return None
        ordered = sorted(self.recent)
        return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered)) - 1))]

    def p50(self) -> float | None:
        """Median recent lag."""
        return self.percentile(0.5)

    def p99(self) -> float | None:
        """99th-percentile recent lag."""
        return self.percentile(0.99)


@dataclass(slots=True)
class _Pending:
    delivery: Delivery
    submitted: float
    cancelled: bool = False


@dataclass(slots=True)
class _Origin:
    sender: Sender
    counters: Counters
    slots: asyncio.Semaphore
    pending: deque[_Pending] = field(default_factory=deque)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    inflight: dict[asyncio.Task[None], _Pending] = field(default_factory=dict)
    worker: asyncio.Task[None] | None = None


def origin_of(endpoint: str) -> str | None:
    """``scheme://host:port`` of an endpoint URL, or None when it has no usable origin."""
    try:
        parts = urlsplit(endpoint)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if not parts.hostname or (port is None and scheme not in _DEFAULT_PORTS):
        return None
    return f"{scheme}://{parts.hostname}:{port or _DEFAULT_PORTS[scheme]}"


_CLOSED_BEFORE = Outcome(ok=False, dropped=True, error="dispatcher closed", shutdown=True)
_NOT_WANTED = Outcome(ok=False, cancelled=True, error="no longer wanted")


class Dispatcher:
    """Per-origin queues and workers that carry ``Delivery`` items to their receivers.

    Args:
        config: Queue, concurrency and retry settings (``TOSHI_NOTIFICATIONS__*``).
        senders: Sender per URL scheme. Defaults to one ``HttpSender`` for http and https.
            The dispatcher closes its senders when it closes.
        rng: Source of backoff jitter (tests pass a seeded one).
        egress: Whether a delivery may go to the address its connection reached (the egress
            policy); a refusal is a failure that is not retried.
    """

    def __init__(
        self,
        config: NotificationSettings | None = None,
        senders: Mapping[str, Sender] | None = None,
        *,
        rng: random.Random | None = None,
        egress: Egress | None = None,
    ) -> None:
        self.config = config or NotificationSettings()
        if senders is None:
            http = HttpSender(max_connections=self.config.concurrency)
            senders = {"http": http, "https": http}
        self._senders = {scheme.lower(): sender for scheme, sender in senders.items()}
        self._origins: dict[str, _Origin] = {}
        self._counters: dict[str, Counters] = {}
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrecy
        self._egress = egress
        self._running = False
        self._closing = False
        self.lag = LagHistogram()
        """Submit-to-2xx lag over all origins."""

    async def start(self) -> None:
        """Begin accepting deliveries; workers start lazily, one per origin."""
        self._running = not self._closing

    def submit(self, delivery: Delivery) -> bool:
        """Queue ``delivery`` without waiting; False if it was not accepted.

        A refused delivery (dispatcher not running, no sender for the scheme, unusable URL) never
        gets an ``on_done`` call. An accepted one gets exactly one, which may come synchronously
        from a later ``submit`` that evicts it from a full queue.
        """
        key = origin_of(delivery.endpoint)
        if not self._running or key is None:
            return False
        state = self._origins.get(key)
        if state is None:
            sender = self._senders.get(key.partition(":")[0])
            if sender is None:
                return False
            state = self._open_origin(key, sender)
        if len(state.pending) >= self.config.queue_size:
            evicted = state.pending.popleft()
            state.counters.dropped += 1
            _finish(evicted.delivery, Outcome(ok=False, dropped=True, error="queue full"))
        state.pending.append(_Pending(delivery, asyncio.get_running_loop().time()))
        state.counters.queued = len(state.pending)
        state.wakeup.set()
        return True

    def cancel(self, tenant: str, key: str) -> int:
        """End every queued, retrying or in-flight delivery of subscription ``key`` of
        ``tenant`` now, as cancelled; how many there were.

        A request already written to the receiver cannot be called back, but nothing of
        ``key`` is sent after this returns.
        """
        ended = 0
        for state in self._origins.values():
            kept = deque(i for i in state.pending if not i.delivery.belongs_to(tenant, key))
            for item in state.pending:
                if item.delivery.belongs_to(tenant, key):
                    _finish(item.delivery, _NOT_WANTED)
                    ended += 1
            state.pending = kept
            state.counters.queued = len(kept)
            for task, item in state.inflight.items():
                if item.delivery.belongs_to(tenant, key) and not item.cancelled:
                    item.cancelled = True
                    task.cancel()
                    ended += 1
        return ended

    def counters(self) -> Counters:
        """Totals over every origin seen so far."""
        total = Counters()
        for counters in self._counters.values():
            total.add(counters)
        return total

    def origin_counters(self) -> dict[str, Counters]:
        """A snapshot of the counters of each origin (``scheme://host:port``)."""
        return {key: Counters(**_fields(c)) for key, c in self._counters.items()}

    @property
    def active_origins(self) -> frozenset[str]:
        """Origins that currently have a worker."""
        return frozenset(self._origins)

    async def close(self, drain_timeout: float = 5.0) -> None:
        """Stop accepting, let queued deliveries finish for up to ``drain_timeout`` seconds.

        Whatever is still queued or in flight after that ends with ``Outcome.shutdown`` set (and
        is not counted as dropped or failed); then the senders are closed.
        """
        self._running = False
        self._closing = True
        for state in self._origins.values():
            state.wakeup.set()
        workers = [s.worker for s in self._origins.values() if s.worker is not None]
        if workers:
            await asyncio.wait(workers, timeout=drain_timeout)
        leftovers: list[asyncio.Task[None]] = []
        for state in list(self._origins.values()):
            while state.pending:  # not counted as dropped: the caller may send it again
                item = state.pending.popleft()
                _finish(item.delivery, _CLOSED_BEFORE)
            state.counters.queued = 0
            leftovers.extend(state.inflight.keys())
            if state.worker is not None:
                leftovers.append(state.worker)
        for task in leftovers:
            task.cancel()
        await asyncio.gather(*leftovers, return_exceptions=True)
        for sender in {id(s): s for s in self._senders.values()}.values():
            await sender.close()

    def _open_origin(self, key: str, sender: Sender) -> _Origin:
        counters = self._counters.setdefault(key, Counters())
        state = _Origin(sender, counters, asyncio.Semaphore(self.config.concurrency))
        state.worker = asyncio.get_running_loop().create_task(
            self._work(key, state), name=f"notify-worker {key}"
        )
        self._origins[key] = state
        return state

    async def _work(self, key: str, state: _Origin) -> None:
        try:
            while True:
                if state.pending:
                    await state.slots.acquire()
                    self._launch(state)
                    continue
                if self._closing and not state.inflight:
                    return
                woken = await _wait(state.wakeup, self.config.idle_timeout)
                if not (woken or state.pending or state.inflight or self._closing):
                    return
        finally:
            # Nothing awaits between the idle check and this removal, so a submit either saw
            # this worker alive (and its item was taken) or finds no origin and starts a new one.
            if self._origins.get(key) is state:
                del self._origins[key]

    def _launch(self, state: _Origin) -> None:
        if not state.pending:  # close() emptied the queue while we waited for a slot
            state.slots.release()
            return
        item = state.pending.popleft()
        state.counters.queued = len(state.pending)
        task = asyncio.get_running_loop().create_task(self._deliver(state, item))
        state.inflight[task] = item

        def landed(done: asyncio.Task[None]) -> None:
            state.inflight.pop(done, None)
            state.slots.release()
            state.wakeup.set()

        task.add_done_callback(landed)

    async def _deliver(self, state: _Origin, item: _Pending) -> None:
        attempts = 0
        try:
            attempts = await self._attempt_until_done(state, item)
        except asyncio.CancelledError:
            if item.cancelled:  # by ``cancel``: the delivery ends, the worker goes on
                _finish(item.delivery, replace(_NOT_WANTED, attempts=attempts))
                return
            outcome = Outcome(ok=False, attempts=attempts, error="dispatcher closed", shutdown=True)
            _finish(item.delivery, outcome)
            raise
        except Exception:
            # A sender bug must not kill the worker or leave the caller waiting for on_done.
            logger.exception("sender crashed delivering to %s", item.delivery.endpoint)
            state.counters.failed += 1
            _finish(item.delivery, Outcome(ok=False, attempts=attempts, error="sender crashed"))

    async def _attempt_until_done(self, state: _Origin, item: _Pending) -> int:
        cfg, loop, delivery = self.config, asyncio.get_running_loop(), item.delivery
        first_try = loop.time()
        check = self._peer_check(delivery)
        attempts = 0
        while True:
            if delivery.wanted is not None and not delivery.wanted():
                _finish(delivery, replace(_NOT_WANTED, attempts=attempts))
                return attempts
            attempts += 1
            status: int | None = None
            error: str | None = None
            try:
                status = await state.sender.post(
                    delivery.endpoint, delivery.body, delivery.headers, cfg.request_timeout, check
                )
            except SendError as exc:
                error, retryable = str(exc), exc.retryable
            else:
                if 200 <= status < 300:
                    state.counters.sent += 1
                    self.lag.record(loop.time() - item.submitted)
                    _finish(delivery, Outcome(ok=True, attempts=attempts, status=status))
                    return attempts
                retryable = status >= 500 or status == 429
            delay = self._backoff(attempts)
            spent = attempts >= cfg.max_attempts
            spent = spent or loop.time() - first_try + delay > cfg.max_retry_time
            if not retryable or spent:
                state.counters.failed += 1
                outcome = Outcome(ok=False, attempts=attempts, status=status, error=error)
                _finish(delivery, outcome)
                return attempts
            state.counters.retried += 1
            if delivery.on_retry is not None:
                _report(
                    delivery.on_retry,
                    delivery,
                    Outcome(ok=False, attempts=attempts, status=status, error=error),
                )
            await asyncio.sleep(delay)

    def _peer_check(self, delivery: Delivery) -> PeerCheck | None:
        egress = self._egress
        if egress is None:
            return None
        host = urlsplit(delivery.endpoint).hostname or ""
        return lambda ip: egress(ip, host, delivery.tenant)

    def _backoff(self, attempts: int) -> float:
        return full_jitter(
            attempts - 1, self.config.backoff_base, self.config.backoff_cap, self._rng
        )


async def _wait(event: asyncio.Event, seconds: float) -> bool:
    """Wait for ``event`` (cleared first); False if ``seconds`` passed without it."""
    event.clear()
    try:
        async with asyncio.timeout(seconds):
            await event.wait()
    except TimeoutError:
        return False
    return True


def _finish(delivery: Delivery, outcome: Outcome) -> None:
    if delivery.on_done is not None:
        _report(delivery.on_done, delivery, outcome)


def _report(callback: Callable[[Outcome], None], delivery: Delivery, outcome: Outcome) -> None:
    try:
        callback(outcome)
    except Exception:
        # The caller's bookkeeping failing must not stop deliveries to everyone else.
        logger.exception("outcome callback failed for subscription %s", delivery.key)


def _fields(counters: Counters) -> dict[str, int]:
    return {
        "sent": counters.sent,
        "failed": counters.failed,
        "retried": counters.retried,
        "dropped": counters.dropped,
        "queued": counters.queued,
    }
