"""The fast lane: the hottest routes served without FastAPI's per-request machinery (issue 16).

Theory of operation. FastAPI stays the application: every route, the hot ones included, is
declared on a router as usual, documented in the OpenAPI document, and served by FastAPI when
the fast lane is off. Profiling ``GET /entities/{id}`` at 3,300 req/s showed about a third of the
server's time in FastAPI's routing, dependency solving and per-parameter pydantic validation
(docs/design.md, "Where the time goes"), for parameters that are plain strings, small integers
and flags. For the routes listed in ``HOT_ROUTES`` this middleware finds the route's own
``APIRoute`` at start-up, reads the handler's signature once into a ``Reader``, and per request:

1. matches method and path with a string comparison (no regex over ~70 routes);
2. runs the route's declared dependencies (the access ``Policy``) exactly as FastAPI would;
3. reads the query parameters with the same rules FastAPI applies to these types (last value of
   a repeated name wins; ``bool`` as pydantic parses it; ``int`` with its ``ge``/``le`` bounds),
   refusing bad values with the same ``BadRequestData`` ProblemDetails;
4. calls the very same handler function and sends its response; an NGSI-LD error becomes the same
   ProblemDetails response as through ``broker.api.problems``.

A route whose signature holds a kind of parameter the ``Reader`` does not know is refused at
start-up, so the lane can never serve a route differently from FastAPI: tests run every API
test with the lane on (the default) and the route test compares both paths.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, get_args, get_origin, get_type_hints

from annotated_types import Ge, Le
from fastapi import APIRouter, Request, Response
from fastapi.params import Depends, Query
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.api.problems import error_response, store_error_response
from broker.ngsild.errors import BadRequestData, NgsiLdError
from broker.store.outage import store_errors

STORE_ERRORS = store_errors()

_TRUE = frozenset({"1", "on", "t", "true", "y", "yes"})
_FALSE = frozenset({"0", "off", "f", "false", "n", "no"})
_NONE = type(None)


@dataclass(frozen=True)
class _Scalar:
    """One query parameter: its name, Python type, default and integer bounds."""

    name: str
    kind: type
    default: Any
    ge: int | None = None
    le: int | None = None

    def read(self, raw: str | None) -> Any:
        if raw is None:
            return self.default
        if self.kind is str:
            return raw
        if self.kind is bool:
            lowered = raw.lower()
            if lowered in _TRUE:
                return True
            if lowered in _FALSE:
                return False
            raise BadRequestData(
                f"query.{self.name}: Input should be a valid boolean, unable to interpret input"
            )
        try:
            number = int(raw.strip())
        except ValueError:
            raise BadRequestData(
                f"query.{self.name}: Input should be a valid integer, unable to parse string "
                "as an integer"
            ) from None
        if self.ge is not None and number < self.ge:
            raise BadRequestData(
                f"query.{self.name}: Input should be greater than or equal to {self.ge}"
            )
        if self.le is not None and number > self.le:
            raise BadRequestData(
                f"query.{self.name}: Input should be less than or equal to {self.le}"
            )
        return number


Arguments = Callable[[Request, dict[str, str], dict[str, str]], Awaitable[dict[str, Any]]]
Step = Callable[[Request, dict[str, str], dict[str, str]], Awaitable[tuple[str, Any]]]


class UnsupportedRoute(Exception):
    """A hot route's handler has a parameter the fast lane cannot read like FastAPI does."""


def reader(function: Callable[..., Any], path_names: frozenset[str]) -> Arguments:
    """What builds ``function``'s keyword arguments from a request, as FastAPI would."""
    hints = get_type_hints(function, include_extras=True)
    steps: list[Step] = []
    for name, parameter in inspect.signature(function).parameters.items():
        steps.append(_step(name, hints.get(name), parameter.default, path_names))

    async def arguments(
        request: Request, path: dict[str, str], query: dict[str, str]
    ) -> dict[str, Any]:
        return dict([await step(request, path, query) for step in steps])

    return arguments


def _step(name: str, hint: Any, default: Any, path_names: frozenset[str]) -> Step:
    if hint is Request:

        async def request_itself(request: Request, *_: dict[str, str]) -> tuple[str, Any]:
            return name, request

        return request_itself
    if name in path_names and hint is str:

        async def path_value(_request: Request, path: dict[str, str], *_: Any) -> tuple[str, Any]:
            return name, path[name]

        return path_value
    if get_origin(hint) is not None and hasattr(hint, "__metadata__"):
        base, *metadata = get_args(hint)
        marker = metadata[0] if metadata else None
        if isinstance(marker, Depends) and marker.dependency is not None:
            inner = reader(marker.dependency, path_names)
            call = marker.dependency

            async def dependency(
                request: Request, path: dict[str, str], query: dict[str, str]
            ) -> tuple[str, Any]:
                result = call(**await inner(request, path, query))
                return name, await result if inspect.isawaitable(result) else result

            return dependency
        if isinstance(marker, Query) and marker.alias is None:
            scalar = _scalar(name, base, marker, default)

            async def query_value(
                _request: Request, _path: dict[str, str], query: dict[str, str]
            ) -> tuple[str, Any]:
                return name, scalar.read(query.get(name))

            return query_value
    raise UnsupportedRoute(f"parameter {name}: {hint!r}")


def _scalar(name: str, base: Any, marker: Query, default: Any) -> _Scalar:
    kinds = [kind for kind in (get_args(base) or (base,)) if kind is not _NONE]
    if len(kinds) != 1 or kinds[0] not in (str, int, bool):
        raise UnsupportedRoute(f"parameter {name}: {base!r}")
    if default is inspect.Parameter.empty:
        raise UnsupportedRoute(f"parameter {name} is required")
    bounds = {type(item): item for item in marker.metadata}
    ge, le = bounds.get(Ge), bounds.get(Le)
    return _Scalar(
        name,
        kinds[0],
        default,
        ge=None if ge is None else int(ge.ge),
        le=None if le is None else int(le.le),
    )


# (method, path) of the routes served by the lane; issue 16's table says why these.
HOT_ROUTES = frozenset(
    {
        ("GET", "/ngsi-ld/v1/entities"),
        ("GET", "/ngsi-ld/v1/entities/{entityId}"),
        ("PATCH", "/ngsi-ld/v1/entities/{entityId}/attrs/{attrId}"),
    }
)


@dataclass(frozen=True)
class LaneRoute:
    """What the lane leaves in ``scope["route"]`` for later readers (the audit log)."""

    path: str
    methods: frozenset[str]
    endpoint: Callable[..., Awaitable[Response]]


@dataclass(frozen=True)
class _Lane:
    route: LaneRoute
    segments: tuple[str | None, ...]  # None where the template has a parameter
    names: tuple[str, ...]  # the parameter names, in the order of their segments
    arguments: Arguments
    policies: tuple[Callable[[Request], Awaitable[None]], ...]

    def match(self, parts: list[str]) -> dict[str, str] | None:
        values: dict[str, str] = {}
        names = iter(self.names)
        for literal, part in zip(self.segments, parts, strict=True):
            if literal is not None:
                if literal != part:
                    return None
            elif part:
                values[next(names)] = part
            else:
                return None
        return values


_REST = "*"  # a ``{name:path}`` segment: matches the rest of the path, slashes included


def _segments(template: str) -> tuple[tuple[str | None, ...], tuple[str, ...]]:
    parts = template.split("/")
    literals = tuple(
        (_REST if p.endswith(":path}") else None) if p.startswith("{") else p for p in parts
    )
    names = tuple(p[1:-1] for p in parts if p.startswith("{"))
    return literals, names


def _overlaps(a: tuple[str | None, ...], b: tuple[str | None, ...]) -> bool:
    """Whether some path matches both templates (no clashing literal where both have one)."""
    for x, y in zip(a, b, strict=False):
        if _REST in (x, y):
            return True
        if x is not None and y is not None and x != y:
            return False
    return len(a) == len(b)


def build_lanes(
    routers: Sequence[tuple[str, APIRouter]], hot: frozenset[tuple[str, str]] = HOT_ROUTES
) -> list[_Lane]:
    """The lanes of the hot routes among ``routers`` (prefix, router; in the order the
    application includes them); refuses any route the lane could serve differently."""
    lanes: list[_Lane] = []
    earlier: list[tuple[set[str], tuple[str | None, ...]]] = []
    for prefix, router in routers:
        if router.dependencies:
            raise UnsupportedRoute(f"router {prefix} has dependencies of its own")
        for route in router.routes:
            if not isinstance(route, APIRoute):
                raise UnsupportedRoute(f"{prefix}: {route!r} is not an APIRoute")
            template = prefix + route.path
            literals, names = _segments(template)
            methods = set(route.methods or ())
            for method in sorted(methods & {m for m, p in hot if p == template}):
                if _REST in literals or any(":" in name for name in names):
                    raise UnsupportedRoute(f"{template}: typed path parameters")
                if any(method in seen and _overlaps(literals, other) for seen, other in earlier):
                    raise UnsupportedRoute(f"{method} {template} is shadowed by an earlier route")
                policies = tuple(d.dependency for d in route.dependencies if d.dependency)
                lane_route = LaneRoute(template, frozenset({method}), route.endpoint)
                arguments = reader(route.endpoint, frozenset(names))
                lanes.append(_Lane(lane_route, literals, names, arguments, policies))
            earlier.append((methods, literals))
    missing = hot - {(m, lane.route.path) for lane in lanes for m in lane.route.methods}
    if missing:
        raise UnsupportedRoute(f"no such routes: {sorted(missing)}")
    return lanes


class FastLane:
    """ASGI middleware serving the hot routes directly; see the module docstring."""

    def __init__(self, app: ASGIApp, routers: Sequence[tuple[str, APIRouter]]) -> None:
        self.app = app
        self.lanes: dict[tuple[str, int], list[_Lane]] = {}
        for lane in build_lanes(routers):
            for method in lane.route.methods:
                self.lanes.setdefault((method, len(lane.segments)), []).append(lane)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        parts = scope["path"].split("/")
        for lane in self.lanes.get((scope["method"], len(parts)), ()):
            path = lane.match(parts)
            if path is not None:
                await self._serve(lane, path, scope, receive, send)
                return
        await self.app(scope, receive, send)

    async def _serve(
        self, lane: _Lane, path: dict[str, str], scope: Scope, receive: Receive, send: Send
    ) -> None:
        scope["route"] = lane.route
        scope["endpoint"] = lane.route.endpoint
        scope["path_params"] = path
        request = Request(scope, receive, send)
        try:
            for policy in lane.policies:
                await policy(request)
            # A plain dict, last value of a name winning as in ``request.query_params``: most
            # parameters are absent, and each miss in Starlette's multi-dict raises a KeyError.
            query = dict(request.query_params.items())
            arguments = await lane.arguments(request, path, query)
            response: Response = await lane.route.endpoint(**arguments)
        except NgsiLdError as error:
            response = error_response(request, error)
        except STORE_ERRORS as error:
            response = store_error_response(request, error)
        await response(scope, receive, send)
