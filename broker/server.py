"""Running the broker in this process: bind, start every part, serve, stop in order.

Used by ``toshi serve`` (``broker.cli``).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import signal
import socket
import sys
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn

from broker import __version__
from broker.settings import Settings


def serve(settings: Settings) -> int:
    """Run the broker in this process until SIGINT/SIGTERM; the exit status.

    The port is bound and every part started before "ready" is logged, so a port in use or a
    part that cannot start is one clear line and a non-zero status, with nothing left running.
    On SIGTERM the HTTP server stops taking requests, the parts stop in order (deliveries in
    flight get ``TOSHI_NOTIFICATIONS__DRAIN_TIMEOUT`` seconds), and then the signal is raised
    again so that a supervisor sees why the process ended.
    """
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop
    except ImportError:  # e.g. Windows: asyncio's own loop works, only slower
        run = asyncio.run
    else:
        run = uvloop.run
    host = settings.listen_host
    if not (settings.auth.enabled or is_loopback(host)):
        if not settings.auth.open_network:
            print(
                f"toshi: refusing to listen on {host} with authentication off: anyone who "
                "reaches the port could read and change every tenant. Turn authentication on "
                "(TOSHI_AUTH__ENABLED=true), listen on 127.0.0.1, or accept the risk with "
                "TOSHI_AUTH__OPEN_NETWORK=true.",
                file=sys.stderr,
            )
            return 2
        logging.getLogger("broker").warning(
            "listening on %s with authentication OFF: anyone who reaches port %d may read and "
            "change every tenant",
            host,
            settings.port,
        )
    try:
        listening = listen(host, settings.port)
    except OSError as exc:
        print(f"toshi: cannot listen on {host}:{settings.port}: {exc.strerror}", file=sys.stderr)
        return 1
    stop = _Stop()
    previous = {number: signal.signal(number, stop) for number in _SIGNALS}
    try:
        with listening:
            status = run(_serve(settings, listening, stop))
    finally:
        for known, handler in previous.items():
            signal.signal(known, handler)
    for number in stop.signals:  # the parts are stopped: now end the way the signal asks
        signal.raise_signal(number)
    return status


_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling (``serve`` installs ``_Stop``).

    uvicorn's would raise the signal again as soon as HTTP has stopped, which ends the process
    before the broker's parts have stopped.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class _Stop:
    """The signal handler: remembers the signal and tells the server to stop."""

    def __init__(self) -> None:
        self.signals: list[int] = []
        self.server: _Server | None = None
        self.wake: Callable[[], None] | None = None
        """Called on the signal too: ends the dashboard's event streams, which would hold the
        graceful shutdown open for its whole timeout."""

    def __call__(self, number: int, frame: FrameType | None) -> None:
        self.signals.append(number)
        if self.server is not None:
            self.server.should_exit = True
        if self.wake is not None:
            self.wake()


async def _serve(settings: Settings, listening: socket.socket, stop: _Stop) -> int:
    from broker.app import create_app, open_runtime
    from broker.http_protocol import CanonicalHttpToolsProtocol

    log = logging.getLogger("broker")
    try:
        async with open_runtime(settings) as runtime:
            config = uvicorn.Config(
                create_app(settings, runtime),
                http=CanonicalHttpToolsProtocol,
                lifespan="on",
                log_level=settings.log_level,
                access_log=settings.access_log,
                timeout_graceful_shutdown=10,
                server_header=False,
            )
            stop.server = _Server(config)
            loop = asyncio.get_running_loop()

            def wake() -> None:
                loop.call_soon_threadsafe(runtime.sinks.end_all)

            stop.wake = wake
            if stop.signals:  # asked to stop while starting
                return 0
            host, port = listening.getsockname()[:2]
            log.info(
                "Toshi %s ready on http://%s:%d; store %s",
                __version__,
                host,
                port,
                runtime.store.describe(),
            )
            _settle_heap()
            await stop.server.serve(sockets=[listening])
    except Exception as exc:
        log.debug("start-up failed", exc_info=exc)
        print(f"toshi: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def _settle_heap() -> None:
    """Keep the collector off what lives for the whole run.

    Everything alive once the broker has started (modules, the app and its routes, pydantic
    schemas, @context term tables) would otherwise be traversed by every full collection,
    which stalled requests for tens of milliseconds under write load (the p99 of
    benchmarks/entity_write.py). Frozen, they are never scanned; young collections are made
    rarer because a request allocates thousands of short-lived objects.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)


_GC_THRESHOLDS = (10_000, 10, 10)
"""Python's default young threshold is 700 allocations: about one young collection per request
on the write path. Measured under write load (gc.callbacks): 1,433 → ~300 young collections in
8 s, their total time 570 → 170 ms; a young pause stays under 10 ms."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host``:``port`` (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock
