"""@context → term tables: expand and compact names with a dictionary lookup.

Theory of operation. A JSON-LD @context is processed by pyld exactly once per distinct context
(``build_term_table``); the result is a ``TermTable`` whose ``expand``/``compact`` methods are
memoised, so a request pays a dict lookup per name. The NGSI-LD core context is always applied
last and is protected (GS CIM 009 v1.8.1 §5.5.7): user terms never override core terms.

Processing never touches the network. pyld asks for every URL it meets through a loader that only
reads ``documents``; a URL that is not there raises ``MissingContext`` so the (async) caller can
fetch it and call again. That keeps this module pure and lets the shell fetch without blocking.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from pyld import jsonld

from broker.ngsild.errors import BadRequestData
from broker.ngsild.jsonld_contexts import SELF_BASE

CORE_CONTEXT_FILES: Final[Mapping[str, str]] = {
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld": "ngsi-ld-core-context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.6.jsonld": (
        "ngsi-ld-core-context-v1.6.jsonld"
    ),
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.7.jsonld": (
        "ngsi-ld-core-context-v1.7.jsonld"
    ),
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld": (
        "ngsi-ld-core-context-v1.8.jsonld"
    ),
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld": (
        "ngsi-ld-core-context-v1.9.jsonld"
    ),
}
"""Core @context URLs that are built in (served from ``schemas/contexts``, never fetched)."""

EXTRA_BUILTIN_FILES: Final[Mapping[str, str]] = {
    # The v1.9 core context names this one in a scoped context; strict processors load it.
    "https://w3id.org/security/data-integrity/v2": "w3c/data-integrity-v2.jsonld",
}

CONTEXT_REL: Final = "http://www.w3.org/ns/json-ld#context"
"""The ``rel`` of a ``Link`` header that carries an @context (§6.3.5)."""

_MEMO_LIMIT = 50_000
_processor = jsonld.JsonLdProcessor()


class MissingContext(Exception):
    """Processing needs the document at ``url``, which the caller has not supplied yet."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url


class TermTable:
    """Names and values expanded/compacted under one active @context.

    Attributes:
        source: the user part of the context as the client gave it (a URL, a list, an object or
            ``None`` for core only); echoed in ``application/ld+json`` responses.
        link_url: the URL to advertise in a ``Link`` header for this context, when it has one.
    """

    __slots__ = ("_active", "_compact", "_expand", "_vocab", "link_url", "source")

    def __init__(self, active: dict[str, Any], source: Any, link_url: str) -> None:
        self._active = active
        self._vocab: str | None = active.get("@vocab")
        self._expand: dict[str, str] = {}
        self._compact: dict[str, str] = {}
        self.source = source
        self.link_url = link_url
        for term, definition in active["mappings"].items():
            if definition and not term.startswith("@") and "@id" in definition:
                self._expand[term] = definition["@id"]

    def advertised_as(self, url: str) -> TermTable:
        """The same terms, advertised under another URL (another version of the core context:
        the configured core always defines the core terms, but a client asked for this URL)."""
        twin = TermTable.__new__(TermTable)
        twin._active, twin._vocab = self._active, self._vocab
        twin._expand, twin._compact = self._expand, self._compact
        twin.source, twin.link_url = url, url
        return twin

    def expand(self, term: str) -> str:
        """Expand an attribute name, entity type or vocab value to its IRI."""
        iri = self._expand.get(term)
        if iri is None:
            iri = _processor._expand_iri(self._active, term, vocab=True)
            if not isinstance(iri, str):
                raise BadRequestData(f"{term!r} cannot be used as a name in this @context")
            if len(self._expand) < _MEMO_LIMIT:
                self._expand[term] = iri
        return iri

    def compact(self, iri: str) -> str:
        """Compact an IRI to the shortest name the context offers (term, vocab suffix, CURIE)."""
        term = self._compact.get(iri)
        if term is None:
            term = _processor._compact_iri(self._active, iri, vocab=True)
            if len(self._compact) < _MEMO_LIMIT:
                self._compact[iri] = term
        return term


def effective_context(user: Any, core_url: str) -> list[Any]:
    """The context actually processed: the user's entries first, the core context last.

    Core URLs the user listed are dropped, because a second, different protected core would be a
    redefinition error and the configured core wins anyway.
    """
    entries = [] if user is None else user if isinstance(user, list) else [user]
    return [e for e in entries if not (isinstance(e, str) and e in CORE_CONTEXT_FILES)] + [core_url]


def build_term_table(
    user: Any, core_url: str, documents: Mapping[str, Any], link_url: str | None = None
) -> TermTable:
    """Process ``user`` + core once into a ``TermTable``.

    Raises:
        MissingContext: a referenced URL is not in ``documents`` yet.
        BadRequestData: the context is not a valid JSON-LD context.
    """
    _check_shape(user)

    def load(url: str, options: Any = None) -> dict[str, Any]:
        if url not in documents:
            raise MissingContext(url)
        return {"contextUrl": None, "documentUrl": url, "document": documents[url]}

    try:
        active = _processor.process_context(
            _processor._get_initial_context({}),
            effective_context(user, core_url),
            # Relative @context URLs name this broker: its hosted @contexts (§5.13.4).
            {"documentLoader": load, "base": SELF_BASE},
        )
    except jsonld.JsonLdError as exc:
        missing = _find_missing(exc)
        if missing is not None:
            raise missing from exc
        raise BadRequestData(f"invalid JSON-LD @context: {_describe(exc)}") from exc
    return TermTable(active, user, link_url or _one_url(user, core_url) or core_url)


def _one_url(user: Any, core_url: str) -> str | None:
    """The URL a ``Link`` header can stand for ``user`` with: it must be one URL (+ cores)."""
    if isinstance(user, str):
        return user
    entries = [e for e in effective_context(user, core_url) if e != core_url]
    return entries[0] if len(entries) == 1 and isinstance(entries[0], str) else None


def _check_shape(user: Any) -> None:
    entries = user if isinstance(user, list) else [user]
    for entry in entries:
        if entry is not None and not isinstance(entry, str | dict):
            raise BadRequestData("an @context entry must be a URL or a JSON object")


def _find_missing(exc: BaseException) -> MissingContext | None:
    # pyld wraps loader failures (sometimes twice); the original sits in `cause` or __cause__.
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, MissingContext):
            return seen
        nxt = getattr(seen, "cause", None)
        seen = nxt if isinstance(nxt, BaseException) else seen.__cause__ or seen.__context__
    return None


def _describe(exc: Any) -> str:
    code = getattr(exc, "code", None)
    message = str(exc).split("\n", 1)[0]
    return f"{code}: {message}" if code else message


def context_link_header(url: str) -> str:
    """A ``Link`` header value that points at the @context ``url``."""
    return f'<{url}>; rel="{CONTEXT_REL}"; type="application/ld+json"'


def body_context(terms: TermTable) -> Any:
    """The ``@context`` to put in a JSON-LD body rendered with ``terms``.

    The client's own context as it gave it (URL, list or object), else the core context: the
    core is implied in every NGSI-LD context, so echoing it back adds nothing.
    """
    return terms.link_url if terms.source is None else terms.source
