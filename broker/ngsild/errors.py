"""The NGSI-LD error hierarchy (GS CIM 009 v1.8.1 §5.5.2 and §6.3.2).

Every failure the broker reports to a client is one of these values. The HTTP layer renders them
as ProblemDetails (RFC 7807) in exactly one place, ``broker.api.problems``, with the response
headers ``NgsiLdError.headers()`` asks for (``WWW-Authenticate``, ``Retry-After``)::

    NgsiLdError
    ├── InvalidRequest              400  the request itself is not well formed (JSON, headers)
    ├── BadRequestData              400  well formed, but the data breaks an NGSI-LD rule
    ├── LengthRequired              411  a body-bearing request without a length
    ├── ResourceNotFound            404
    ├── NonexistentTenant           404
    ├── AlreadyExists               409
    ├── Conflict                    409  contradicts a registration or an entity (§4.3.6.3)
    ├── NotAcceptable               406  no representation the client accepts
    ├── PayloadTooLarge             413
    ├── UnsupportedMediaType        415
    ├── OperationNotSupported       501  a valid NGSI-LD operation this broker does not offer
    ├── LdContextNotAvailable       504  a remote @context could not be fetched
    ├── LoopDetected                508  a distributed request came back round (v1.8.1 §6.3.18)
    ├── TooComplexQuery             403
    ├── TooManyResults              403
    ├── Unauthorized                401  no valid credentials; ``reason`` says what was wrong
    ├── Forbidden                   403  valid credentials without the role the operation needs
    ├── TooManyRequests             429  a quota is spent; ``Retry-After`` says when to come back
    └── InternalError               500  our own bug; details go to the log, never to the client

GS CIM 009 defines no error types for authentication or authorization: its error type table
(v1.8.1 §5.5.2, HTTP mapping in §6.3.2) ends with the query and tenant errors above, and security
is left to the informative ETSI GR CIM 007 ("Security and Privacy"). Brokers that needed them
minted URIs under ``https://uri.etsi.org/ngsi-ld/errors/`` (``AccessDenied``, ``Unauthorized``,
``UnauthorizedRequest``: three spellings, none of them ETSI's). Toshi does not write in ETSI's
namespace: its own types are URNs under ``urn:toshi:errors:``, which RFC 7807 §3.1 allows (a type
need not be dereferenceable); a client that only knows NGSI-LD still has the status and title.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar, Final

_BASE = "https://uri.etsi.org/ngsi-ld/errors/"
_TOSHI: Final = "urn:toshi:errors:"


class NgsiLdError(Exception):
    """Root of all errors that reach a client.

    Subclasses fix ``type`` (the ETSI error URI), ``title`` and ``status``; an instance carries the
    ``detail`` sentence that tells the client what exactly was wrong.
    """

    type: ClassVar[str] = _BASE + "InternalError"
    title: ClassVar[str] = "Internal error"
    status: ClassVar[int] = 500

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra

    def problem(self) -> dict[str, Any]:
        """The ProblemDetails document for this error."""
        body: dict[str, Any] = {"type": self.type, "title": self.title, "detail": self.detail}
        body.update(self.extra)
        return body

    def headers(self) -> dict[str, str]:
        """HTTP response headers this error needs besides its body (none for most)."""
        return {}


class InvalidRequest(NgsiLdError):
    type = _BASE + "InvalidRequest"
    title = "Invalid request"
    status = 400


class BadRequestData(NgsiLdError):
    type = _BASE + "BadRequestData"
    title = "Bad request data"
    status = 400


class LengthRequired(NgsiLdError):
    # No ETSI error type exists for 411; the request is invalid at the HTTP level.
    type = _BASE + "InvalidRequest"
    title = "Length required"
    status = 411


class ResourceNotFound(NgsiLdError):
    type = _BASE + "ResourceNotFound"
    title = "Resource not found"
    status = 404


class NonexistentTenant(NgsiLdError):
    type = _BASE + "NonexistentTenant"
    title = "Nonexistent tenant"
    status = 404


class AlreadyExists(NgsiLdError):
    type = _BASE + "AlreadyExists"
    title = "Already exists"
    status = 409


class Conflict(NgsiLdError):
    # v1.8.1 §5.9.2.4 and §4.3.6.3: exclusive/redirect registrations that overlap.
    type = _BASE + "Conflict"
    title = "Conflict"
    status = 409


class NotAcceptable(NgsiLdError):
    type = _BASE + "NotAcceptable"
    title = "Not acceptable"
    status = 406


class PayloadTooLarge(NgsiLdError):
    type = _BASE + "RequestEntityTooLarge"
    title = "Request entity too large"
    status = 413


class UnsupportedMediaType(NgsiLdError):
    type = _BASE + "UnsupportedMediaType"
    title = "Unsupported media type"
    status = 415


class OperationNotSupported(NgsiLdError):
    type = _BASE + "OperationNotSupported"
    title = "Operation not supported"
    status = 501


class LdContextNotAvailable(NgsiLdError):
    type = _BASE + "LdContextNotAvailable"
    title = "JSON-LD @context not available"
    status = 504


class LoopDetected(NgsiLdError):
    type = _BASE + "LoopDetected"
    title = "Loop detected"
    status = 508


class TooComplexQuery(NgsiLdError):
    type = _BASE + "TooComplexQuery"
    title = "Too complex query"
    status = 403


class TooManyResults(NgsiLdError):
    type = _BASE + "TooManyResults"
    title = "Too many results"
    status = 403


class AuthFailure(StrEnum):
    """Why a request's credentials were not accepted (the ``reason`` member of a 401)."""

    MISSING = "missing"
    MALFORMED = "malformed"
    EXPIRED = "expired"
    NOT_YET_VALID = "not_yet_valid"
    WRONG_ISSUER = "wrong_issuer"
    WRONG_AUDIENCE = "wrong_audience"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_KEY = "unknown_key"
    ISSUER_UNAVAILABLE = "issuer_unavailable"


class Unauthorized(NgsiLdError):
    """The request has no valid credentials (RFC 9110 §15.5.2).

    ``headers()`` gives the RFC 6750 §3 challenge: without credentials only the scheme and
    realm (§3.1: no error code when the request carried no token), otherwise
    ``error="invalid_token"`` with the detail as ``error_description``.
    """

    type = _TOSHI + "Unauthorized"
    title = "Unauthorized"
    status = 401

    def __init__(self, reason: AuthFailure, detail: str) -> None:
        super().__init__(detail, reason=str(reason))
        self.reason = reason

    def headers(self) -> dict[str, str]:
        challenge = 'Bearer realm="toshi"'
        if self.reason is not AuthFailure.MISSING:
            challenge += f', error="invalid_token", error_description="{_quotable(self.detail)}"'
        return {"WWW-Authenticate": challenge}


class Forbidden(NgsiLdError):
    """Valid credentials, but not for this operation on this tenant (RFC 9110 §15.5.4).

    The detail names the role needed and the tenant the client asked for, never what other
    tenants exist or what the principal may do there.
    """

    type = _TOSHI + "Forbidden"
    title = "Forbidden"
    status = 403

    def headers(self) -> dict[str, str]:
        # RFC 6750 §3.1: a token without the privileges needed is "insufficient_scope".
        return {"WWW-Authenticate": 'Bearer realm="toshi", error="insufficient_scope"'}


class TooManyRequests(NgsiLdError):
    """A quota is spent (RFC 6585 §4); ``Retry-After`` (RFC 9110 §10.2.3) is in seconds."""

    type = _TOSHI + "TooManyRequests"
    title = "Too many requests"
    status = 429

    def __init__(self, detail: str, retry_after: int) -> None:
        super().__init__(detail)
        self.retry_after = max(1, retry_after)

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


def _quotable(text: str) -> str:
    # RFC 6750 §3: error_description is limited to %x20-21 / %x23-5B / %x5D-7E.
    return "".join(c if " " <= c <= "~" and c not in '"\\' else "?" for c in text)


class StoreUnavailable(NgsiLdError):
    """The store cannot be reached or written right now (locked, full, unreachable): try again."""

    type = _TOSHI + "StoreUnavailable"
    title = "Store unavailable"
    status = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class InternalError(NgsiLdError):
    """Our own fault. The detail shown to the client is deliberately generic."""
