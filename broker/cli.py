"""The ``toshi`` command: ``toshi serve`` runs the broker; ``toshi --help`` lists every setting."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import Any

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
    serve(settings)
    return 0


def serve(settings: Settings) -> None:
    """Run the broker in this process until SIGINT/SIGTERM."""
    import uvicorn

    from broker.app import create_app

    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop  # noqa: F401
    except ImportError:  # e.g. Windows: asyncio's own loop works, only slower
        loop = "asyncio"
    else:
        loop = "uvloop"
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop=loop,
        http="httptools",
        log_level=settings.log_level,
        access_log=settings.access_log,
        timeout_graceful_shutdown=10,
        server_header=False,
    )


if __name__ == "__main__":
    sys.exit(main())
