"""The @context store's rules (GS CIM 009 v1.8.1 §5.13): kinds, ids and URLs, what Add accepts.

A broker keeps three kinds of @context (§5.13.1): *Hosted* ones a client added (§5.13.2), which
the broker serves at ``/ngsi-ld/v1/jsonldContexts/{localId}``; *Cached* copies of documents it
downloaded to understand requests; and *ImplicitlyCreated* ones it made itself. Hosted ones get a
random local id, so their URL names them on this broker only; a Cached one is named by its URL,
and also by a local id derived from that URL, which stays the same across downloads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final
from urllib.parse import unquote

from broker.ngsild.errors import BadRequestData, InvalidRequest

HOSTED_PATH: Final = "/ngsi-ld/v1/jsonldContexts/"
"""Where the broker serves @contexts; a hosted one's URL is this path plus its local id."""

SELF_BASE: Final = "http://toshi.invalid/"
"""The base a relative @context URL in a request is resolved against. A request's JSON-LD base
is the broker's own URL, so ``/ngsi-ld/v1/jsonldContexts/{id}`` means a context hosted here; the
``.invalid`` name (RFC 6761 §6.4) can never be fetched, so nothing else relative ever is."""


class Kind(StrEnum):
    """How the broker came to have an @context (§5.13.1)."""

    HOSTED = "Hosted"
    CACHED = "Cached"
    IMPLICITLY_CREATED = "ImplicitlyCreated"


@dataclass(frozen=True, slots=True)
class ContextInfo:
    """One entry of List @contexts / Serve @context with ``details=true`` (§5.13.3, §5.13.4).

    ``last_usage`` and ``hits`` are shown for Cached @contexts only: for them, "used" means the
    broker took its copy instead of downloading the document again.
    """

    url: str
    local_id: str
    kind: Kind
    created_at: str
    last_usage: str | None = None
    hits: int | None = None

    def details(self) -> dict[str, Any]:
        """The JSON object ``details=true`` shows."""
        shown: dict[str, Any] = {
            "URL": self.url,
            "localId": self.local_id,
            "kind": str(self.kind),
            "createdAt": self.created_at,
        }
        if self.last_usage is not None:
            shown["lastUsage"] = self.last_usage
        if self.hits is not None:
            shown["numberOfHits"] = self.hits
        return shown


def parse_kind(value: str | None) -> Kind | None:
    """The ``kind`` parameter of List @contexts; anything but the three kinds is an error."""
    if value is None:
        return None
    try:
        return Kind(value)
    except ValueError:
        allowed = ", ".join(kind.value for kind in Kind)
        raise BadRequestData(f"kind must be one of {allowed}, not {value!r}") from None


def hosted_document(body: Any) -> dict[str, Any]:
    """The document Add @context stores for ``body`` (§5.13.2): its ``@context`` member.

    Raises:
        InvalidRequest: the body is not a JSON object with an ``@context`` member.
        BadRequestData: the member is not a JSON-LD context (§5.13.2.4 → §5.5.4): a URL, an
            object, or a non-empty list of those.
    """
    if not isinstance(body, dict) or "@context" not in body:
        raise InvalidRequest("the body must be a JSON object with an '@context' member")
    context = body["@context"]
    entries = context if isinstance(context, list) else [context]
    if not entries or not all(_is_entry(entry) for entry in entries):
        raise BadRequestData(
            "'@context' must be a URL, a JSON object, or a non-empty list of URLs and objects"
        )
    return {"@context": context}


def _is_entry(entry: Any) -> bool:
    return isinstance(entry, dict) or (isinstance(entry, str) and entry.strip() != "")


def hosted_id(url: str) -> str | None:
    """The local id a URL names when its path is ``/ngsi-ld/v1/jsonldContexts/{id}``.

    The host is not compared: the broker cannot know every name it is reached by (proxies,
    aliases, an address only its clients can use), and a local id is random, so a URL of another
    broker that names the same id practically never exists. Callers check the id is known.
    """
    if url.startswith(("http://", "https://")):
        slash = url.find("/", url.index("://") + 3)
        if slash < 0:
            return None
        path = url[slash:]
    else:
        path = url
    if not path.startswith(HOSTED_PATH):
        return None
    local_id = unquote(path[len(HOSTED_PATH) :].split("?", 1)[0].split("#", 1)[0])
    return local_id if local_id and "/" not in local_id else None


def hosted_url(base: str, local_id: str) -> str:
    """The URL of a hosted @context on a broker reached at ``base`` (scheme://host[:port])."""
    return base.rstrip("/") + HOSTED_PATH + local_id


def cached_id(url: str) -> str:
    """The local id of the Cached copy of ``url``: the same whenever it is downloaded again."""
    return hashlib.sha256(url.encode()).hexdigest()[:32]
