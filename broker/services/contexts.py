"""The @context store's operations (GS CIM 009 v1.8.1 §5.13): Add, List, Serve and Delete.

Hosted @contexts belong to one tenant (``broker.context_store``). Cached ones are the
``ContextLoader``'s copies of documents it downloaded, and the built-in core contexts are shown
as Cached too (they are copies of ETSI's documents that ship with Toshi); every tenant sees those,
since they are copies of public documents. A ``{contextId}`` is a local id or a URL.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from broker.clock import Clock, timestamp, utc_now
from broker.context_cache import CachedDocument
from broker.context_store import HostedContext, HostedContexts
from broker.contexts import ContextLoader
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.jsonld_contexts import (
    ContextInfo,
    Kind,
    cached_id,
    hosted_document,
    hosted_id,
    hosted_url,
)
from broker.ngsild.names import format_timestamp
from broker.ngsild.terms import TermTable, effective_context


@dataclass(frozen=True, slots=True)
class Entry:
    """A @context the broker has: what ``details=true`` shows, and the document itself."""

    info: ContextInfo
    document: Any
    local_id: str | None = None
    """The local id of a hosted one."""


class ContextService:
    """Add, List, Serve and Delete @contexts (§5.13.2-§5.13.5)."""

    def __init__(
        self, hosted: HostedContexts, loader: ContextLoader, clock: Clock = utc_now
    ) -> None:
        self._hosted = hosted
        self._loader = loader
        started = timestamp(clock)
        self._builtin = {
            url: ContextInfo(url, cached_id(url), Kind.CACHED, started) for url in loader.builtin
        }
        self._builtin_ids = {info.local_id: url for url, info in self._builtin.items()}

    async def add(self, tenant: str, body: Any) -> HostedContext:
        """Add @context (§5.13.2): host the ``@context`` of ``body`` for ``tenant``."""
        document = hosted_document(body)
        self._loader.check(document["@context"])
        return await self._hosted.add(tenant, document)

    async def implicit(self, tenant: str, terms: TermTable, base: str) -> str | None:
        """The URL of an ImplicitlyCreated @context (§5.13.1) standing for ``terms``' @context
        when no single URL does (a list, an object), so that a notification in JSON can name
        it in its ``Link`` header; ``None`` when a URL does. Each tenant hosts one per distinct
        @context, which counts towards ``max_hosted``."""
        core = self._loader.core_url
        if terms.link_url != core or effective_context(terms.source, core) == [core]:
            return None
        document = {"@context": terms.source}
        for hosted in self._hosted.of(tenant):
            if hosted.kind is Kind.IMPLICITLY_CREATED and hosted.document == document:
                return hosted_url(base, hosted.local_id)
        hosted = await self._hosted.add(tenant, document, Kind.IMPLICITLY_CREATED)
        return hosted_url(base, hosted.local_id)

    def list(self, tenant: str, kind: Kind | None, base: str) -> list[ContextInfo]:
        """List @contexts (§5.13.3): ``tenant``'s hosted ones, then the Cached ones."""
        infos = [_hosted_info(hosted, base) for hosted in self._hosted.of(tenant)]
        infos += self._builtin.values()
        infos += [_cached_info(entry) for entry in self._loader.cached()]
        return [info for info in infos if kind is None or info.kind is kind]

    def serve(self, tenant: str, context_id: str, base: str) -> Entry:
        """Serve @context (§5.13.4); serving a Cached copy counts as a use of it."""
        entry = self._find(tenant, context_id, base, use=True)
        if entry is None:
            raise ResourceNotFound(f"no @context {context_id!r} here")
        return entry

    async def delete(self, tenant: str, context_id: str, *, reload: bool) -> None:
        """Delete @context (§5.13.5); with ``reload``, download a Cached one again instead.

        A failed reload raises ``LdContextNotAvailable`` and keeps the copy there was.
        """
        if context_id in self._builtin or context_id in self._builtin_ids:
            if reload:
                return  # built in: what ships with Toshi is what there is to load
            raise BadRequestData(f"the core @context {context_id!r} cannot be deleted")
        entry = self._find(tenant, context_id, "", use=False)
        if reload:
            if entry is None or entry.info.kind is not Kind.CACHED:
                raise BadRequestData("only a Cached @context can be reloaded (reload=true)")
            await self._loader.reload(entry.info.url)
        elif entry is None:
            raise ResourceNotFound(f"no @context {context_id!r} here")
        elif entry.local_id is not None:
            await self._hosted.delete(tenant, entry.local_id)
            self._loader.forget_hosted({entry.local_id})
        else:
            self._loader.forget(entry.info.url)

    def drop_tenant(self, tenant: str) -> None:
        """Forget what a deleted tenant hosted."""
        self._loader.forget_hosted(self._hosted.drop_tenant(tenant))

    def _find(self, tenant: str, context_id: str, base: str, *, use: bool) -> Entry | None:
        local_id = hosted_id(context_id) or context_id
        hosted = self._hosted.get(tenant, local_id)
        if hosted is not None:
            return Entry(_hosted_info(hosted, base), hosted.document, hosted.local_id)
        url = self._builtin_ids.get(context_id, context_id)
        if url in self._builtin:
            return Entry(self._builtin[url], self._loader.builtin[url])
        cached = self._loader.cached_document(url, use=use) or self._cached_by_id(context_id, use)
        return None if cached is None else Entry(_cached_info(cached), cached.document)

    def _cached_by_id(self, local_id: str, use: bool) -> CachedDocument | None:
        for entry in self._loader.cached():
            if cached_id(entry.url) == local_id:
                return self._loader.cached_document(entry.url, use=use)
        return None


def _hosted_info(hosted: HostedContext, base: str) -> ContextInfo:
    url = hosted_url(base, hosted.local_id)
    return ContextInfo(url, hosted.local_id, hosted.kind, hosted.created_at)


def _cached_info(entry: CachedDocument) -> ContextInfo:
    used = None if entry.last_used is None else format_timestamp(entry.last_used)
    created = format_timestamp(entry.fetched_at)
    return ContextInfo(entry.url, cached_id(entry.url), Kind.CACHED, created, used, entry.hits)
