"""The NGSI-LD error hierarchy (GS CIM 009 v1.8.1 §5.5.2 and §6.3.2).

Every failure the broker reports to a client is one of these values. The HTTP layer renders them
as ProblemDetails (RFC 7807) in exactly one place, ``broker.api.problems``::

    NgsiLdError
    ├── InvalidRequest              400  the request itself is not well formed (JSON, headers)
    ├── BadRequestData              400  well formed, but the data breaks an NGSI-LD rule
    ├── LengthRequired              411  a body-bearing request without a length
    ├── ResourceNotFound            404
    ├── NonexistentTenant           404
    ├── AlreadyExists               409
    ├── NotAcceptable               406  no representation the client accepts
    ├── PayloadTooLarge             413
    ├── UnsupportedMediaType        415
    ├── OperationNotSupported       501  a valid NGSI-LD operation this broker does not offer
    ├── LdContextNotAvailable       504  a remote @context could not be fetched
    ├── TooComplexQuery             403
    ├── TooManyResults              403
    └── InternalError               500  our own bug; details go to the log, never to the client
"""

from __future__ import annotations

from typing import Any, ClassVar

_BASE = "https://uri.etsi.org/ngsi-ld/errors/"


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


class TooComplexQuery(NgsiLdError):
    type = _BASE + "TooComplexQuery"
    title = "Too complex query"
    status = 403


class TooManyResults(NgsiLdError):
    type = _BASE + "TooManyResults"
    title = "Too many results"
    status = 403


class InternalError(NgsiLdError):
    """Our own fault. The detail shown to the client is deliberately generic."""
