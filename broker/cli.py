"""The ``toshi`` command: ``toshi serve`` runs the broker; ``toshi --help`` lists every setting."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from broker import __version__
from broker.server import serve
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
    serve.add_argument(
        "--host",
        help="interface to listen on (TOSHI_HOST; default 127.0.0.1, 0.0.0.0 with authentication)",
    )
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
    keys = commands.add_parser(
        "keys",
        help="create an API key directly in the store (e.g. the first operator's)",
        description="Create an API key without the HTTP API: how the first operator gets in.",
    )
    keys_commands = keys.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    create = keys_commands.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True, help="what the key is for")
    create.add_argument("--tenant", help="tenant the key belongs to (default: the default one)")
    create.add_argument("--role", help="reader, subscriber, editor or admin in that tenant")
    create.add_argument("--operator", action="store_true", help="a platform operator key")
    create.add_argument("--store", help="the store, as for toshi serve (TOSHI_STORE)")
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
            ("host", getattr(args, "host", None)),
            ("port", getattr(args, "port", None)),
            ("store", args.store),
            ("log_level", getattr(args, "log_level", None)),
        )
        if value is not None
    }
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        print(f"toshi: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if args.command == "keys":
        return create_key(settings, args)
    return serve(settings)


def create_key(settings: Settings, args: argparse.Namespace) -> int:
    """``toshi keys create``: an API key made on the store directly (the first operator's)."""
    from broker.auth.roles import parse_role
    from broker.bootstrap import create_api_key

    role = None if args.role is None else parse_role(args.role)
    if (role is None) == (not args.operator):
        print(
            "toshi: give either --role reader|subscriber|editor|admin or --operator",
            file=sys.stderr,
        )
        return 2
    key_id, secret = asyncio.run(
        create_api_key(settings, args.tenant or "", args.name, role, operator=args.operator)
    )
    print(f"API key {key_id} ({args.name}); shown only now, keep it safe:\n{secret}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
