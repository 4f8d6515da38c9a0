"""The one place where errors become HTTP responses (ProblemDetails, RFC 7807).

NGSI-LD errors carry their own status and type. Framework errors (unknown route, wrong method,
parameter validation) are translated into the NGSI-LD hierarchy first. A store outage (locked,
full, unreachable) is a 503 the client may retry. Anything else is our bug: it is logged with its
traceback and the client gets a 500 ``InternalError`` without details.
"""

from __future__ import annotations

import logging

import orjson
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from broker.ngsild.errors import (
    BadRequestData,
    InternalError,
    InvalidRequest,
    NgsiLdError,
    OperationNotSupported,
    ResourceNotFound,
    StoreUnavailable,
)
from broker.store.outage import is_outage, store_errors

_log = logging.getLogger("broker.api")
PROBLEM_JSON = "application/json"


def problem_response(error: NgsiLdError) -> Response:
    """The HTTP response for an NGSI-LD error."""
    return Response(
        orjson.dumps(error.problem()),
        error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers() or None,
    )


def error_response(request: Request, error: NgsiLdError) -> Response:
    """The response for an NGSI-LD error a request ran into; server-side ones are logged."""
    if error.status >= 500:
        _log.warning("%s %s -> %d %s", request.method, request.url.path, error.status, error.detail)
    return problem_response(error)


async def _ngsild_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, NgsiLdError)
    return error_response(request, exc)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    parts = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg')}")
    return problem_response(BadRequestData("; ".join(parts) or "invalid request parameters"))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404:
        error: NgsiLdError = ResourceNotFound(f"no resource at {request.url.path}")
    elif exc.status_code == 405:
        error = OperationNotSupported(f"{request.method} is not supported on {request.url.path}")
        return Response(
            orjson.dumps(error.problem()), 405, media_type=PROBLEM_JSON, headers=exc.headers
        )
    else:
        error = InvalidRequest(str(exc.detail))
        return Response(orjson.dumps(error.problem()), exc.status_code, media_type=PROBLEM_JSON)
    return problem_response(error)


def store_error_response(request: Request, exc: Exception) -> Response:
    """A store driver's error: 503 when the store is away for now, else our bug (500)."""
    if is_outage(exc):
        return error_response(request, StoreUnavailable(f"the store is unavailable: {exc}"))
    return _internal_error(request, exc)


def _internal_error(request: Request, exc: Exception) -> Response:
    _log.error("unhandled error in %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(InternalError("the broker hit an internal error; see its log"))


async def _store_error(request: Request, exc: Exception) -> Response:
    return store_error_response(request, exc)


async def _unexpected(request: Request, exc: Exception) -> Response:
    return _internal_error(request, exc)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""
    app.add_exception_handler(NgsiLdError, _ngsild_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    for store_error in store_errors():
        app.add_exception_handler(store_error, _store_error)
    app.add_exception_handler(Exception, _unexpected)
