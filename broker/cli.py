"""The ``toshi`` command: ``toshi serve`` runs the broker; ``toshi --help`` lists every setting."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import Iterator, Sequence
from types import FrameType
from typing import Any

import uvicorn
from pydantic import BaseModel, ValidationError

from broker import __version__
from broker.settings import Settings


def _setting_lines(model: type[BaseModel], prefix: str = "TOSHI_") -> Iterator[str]:
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _setting_lines(annotation, f"{prefix}{name.upper()}__")
            continue
        default = field.get_default(call_default_factory=True)
        yield f"  {prefix + name.upper():<34} {field.description} (default: {default})"


def _parser() -> argparse.ArgumentParser:
    settings_help = "Settings (environment variables; `toshi serve` flags override them):\n" + (
        "\n".join(_setting_lines(Settings))
    )
    parser = argparse.ArgumentParser(
        prog="toshi",
        description="Toshi (都市): an NGSI-LD context broker for cities.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=settings_help,
    )
    parser.add_argument("--version", action="version", version=f"toshi {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the NGSI-LD broker",
        description="Run the NGSI-LD HTTP API (at /ngsi-ld/v1) until interrupted.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=settings_help,
    )
    serve.add_argument("--host", help="interface to listen on (TOSHI_HOST, default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="HTTP port (TOSHI_PORT, default 1026)")
    serve.add_argument(
        "--store",
        help="sqlite:///DIR (default sqlite:///./toshi-data) or mongodb://HOST/DB (TOSHI_STORE)",
    )
    serve.add_argument(
        "--log-level",
        choices=["debug", "info", "warning", "error"],
        help="log verbosity (TOSHI_LOG_LEVEL, default info)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``toshi`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    overrides: dict[str, Any] = {
        key: value
        for key, value in (
            ("host", args.host),
            ("port", args.port),
            ("store", args.store),
            ("log_level", args.log_level),
        )
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"toshi: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    return serve(settings)


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
    try:
        listening = listen(settings.host, settings.port)
    except OSError as exc:
        where = f"{settings.host}:{settings.port}"
        print(f"toshi: cannot listen on {where}: {exc.strerror}", file=sys.stderr)
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

    def __call__(self, number: int, frame: FrameType | None) -> None:
        self.signals.append(number)
        if self.server is not None:
            self.server.should_exit = True


async def _serve(settings: Settings, listening: socket.socket, stop: _Stop) -> int:
    from broker.app import create_app, open_runtime

    log = logging.getLogger("broker")
    try:
        async with open_runtime(settings) as runtime:
            config = uvicorn.Config(
                create_app(settings, runtime),
                http="httptools",
                lifespan="on",
                log_level=settings.log_level,
                access_log=settings.access_log,
                timeout_graceful_shutdown=10,
                server_header=False,
            )
            stop.server = _Server(config)
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
            await stop.server.serve(sockets=[listening])
    except Exception as exc:
        log.debug("start-up failed", exc_info=exc)
        print(f"toshi: cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


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


if __name__ == "__main__":
    sys.exit(main())
