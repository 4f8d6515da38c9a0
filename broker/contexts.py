"""Getting @context documents and keeping their term tables (GS CIM 009 v1.8.1 §5.5.7, §6.3.5).

The core contexts (v1.6-v1.9 and the legacy one) ship in ``schemas/contexts`` and are never
fetched. User contexts arrive as a ``Link`` header URL or an ``@context`` member. A URL that
names a context hosted here (``/ngsi-ld/v1/jsonldContexts/{id}``, §5.13.2) is taken from the
@context store, never over the network; other remote documents are fetched over HTTP with a
timeout and a size cap. Fetched documents (the Cached @contexts of §5.13) and processed term
tables are kept in LRU caches shared by all requests, so a busy broker processes each distinct
context once.

Each term table remembers the Cached and hosted documents it was built from: a request that
reuses it counts as a use of those documents, and deleting or reloading one of them drops the
tables built from it, so the next request builds them from what is there now.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator, Mapping, Set
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

import httpx
import orjson

from broker.clock import Clock, utc_now
from broker.context_cache import CachedDocument, DocumentCache, Lru
from broker.context_fetch import ContextFetcher
from broker.ngsild.errors import BadRequestData
from broker.ngsild.jsonld_contexts import hosted_id
from broker.ngsild.terms import (
    CORE_CONTEXT_FILES,
    EXTRA_BUILTIN_FILES,
    MissingContext,
    TermTable,
    build_term_table,
)
from broker.settings import ContextSettings

_MAX_DOCUMENTS_PER_CONTEXT = 32

HostedLookup = Callable[[str], Any]
"""A hosted @context's local id → its document, or ``None`` when no tenant hosts that id."""


def builtin_documents() -> dict[str, Any]:
    """The @context documents shipped with Toshi, by the URL they stand for."""
    folder = files("schemas").joinpath("contexts")
    return {
        url: orjson.loads(folder.joinpath(name).read_bytes())
        for url, name in {**CORE_CONTEXT_FILES, **EXTRA_BUILTIN_FILES}.items()
    }


@dataclass(frozen=True, slots=True)
class _Built:
    table: TermTable
    cached: tuple[str, ...]
    """URLs of the Cached documents the table was built from."""
    hosted: tuple[str, ...]
    """Local ids of the hosted @contexts it was built from."""


class _Sources(Mapping[str, Any]):
    """The documents one build may read (built in, hosted, Cached), noting what it read."""

    def __init__(
        self, builtin: Mapping[str, Any], hosted: HostedLookup, cache: DocumentCache
    ) -> None:
        self._builtin = builtin
        self._hosted = hosted
        self._cache = cache
        self.cached: set[str] = set()
        self.hosted: set[str] = set()

    def _find(self, url: str, *, note: bool) -> Any:
        if url in self._builtin:
            return self._builtin[url]
        local_id = hosted_id(url)
        if local_id is not None:
            document = self._hosted(local_id)
            if document is not None:
                if note:
                    self.hosted.add(local_id)
                return document
        entry = self._cache.get(url)
        if entry is None:
            return None
        if note:
            self.cached.add(url)
        return entry.document

    def __contains__(self, url: object) -> bool:
        return isinstance(url, str) and self._find(url, note=False) is not None

    def __getitem__(self, url: str) -> Any:
        document = self._find(url, note=True)
        if document is None:
            raise KeyError(url)
        return document

    def __iter__(self) -> Iterator[str]:
        return iter(self._builtin)

    def __len__(self) -> int:
        return len(self._builtin)


class ContextLoader:
    """Turns the @context of a request into a ``TermTable``, fetching what it must.

    Args:
        settings: Timeouts, size caps and cache sizes.
        client: The HTTP client remote documents are fetched with (tests pass their own).
        hosted: Where hosted @contexts are found by local id (``broker.context_store``).
        clock: When documents are downloaded and used.
    """

    def __init__(
        self,
        settings: ContextSettings,
        client: httpx.AsyncClient | None = None,
        *,
        hosted: HostedLookup | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self._settings = settings
        self._builtin = builtin_documents()
        if settings.core not in self._builtin:
            raise ValueError(f"the core @context {settings.core} is not built in")
        self._hosted: HostedLookup = hosted or (lambda _local_id: None)
        self._cache = DocumentCache(settings.cache_size, clock)
        self._tables = Lru(settings.cache_size)
        # Bumped whenever documents change, so a build that started before does not keep a
        # table made from what was there then.
        self._generation = 0
        self._pending: dict[Any, asyncio.Future[TermTable]] = {}
        self._fetcher = ContextFetcher(settings, client)
        self.core = build_term_table(None, settings.core, self._builtin)

    @property
    def core_url(self) -> str:
        """The core @context URL every term table ends with."""
        return self._settings.core

    @property
    def builtin(self) -> Mapping[str, Any]:
        """The documents shipped with Toshi, by URL."""
        return self._builtin

    async def close(self) -> None:
        """Release the HTTP client."""
        await self._fetcher.close()

    async def from_link(self, url: str) -> TermTable:
        """The term table for a ``Link`` header's context URL."""
        if url in CORE_CONTEXT_FILES:
            return self.core
        return await self._table(("link", url), url, url)

    async def from_body(self, context: Any) -> TermTable:
        """The term table for an ``@context`` member of a request body."""
        if context is None or (isinstance(context, str) and context in CORE_CONTEXT_FILES):
            return self.core
        key = ("body", orjson.dumps(context))
        return await self._table(key, context, context if isinstance(context, str) else None)

    def check(self, context: Any) -> None:
        """Raise ``BadRequestData`` unless ``context`` is a valid JSON-LD context, as far as can
        be told from the documents at hand: what it names but nobody fetched yet is fetched when
        a request first uses it (a context server may be unreachable while one adds it)."""
        with contextlib.suppress(MissingContext):
            build_term_table(context, self.core_url, self._sources())

    def cached(self) -> list[CachedDocument]:
        """The Cached @contexts: downloaded documents, least recently used first."""
        return self._cache.entries()

    def cached_document(self, url: str, *, use: bool = False) -> CachedDocument | None:
        """The Cached copy of ``url``, if any; ``use`` counts serving it as a use."""
        if use:
            self._cache.use([url])
        return self._cache.get(url)

    async def reload(self, url: str) -> None:
        """Download ``url`` again (Delete @context with ``reload``, §5.13.5). If that fails,
        the copy there was stays and the error (``LdContextNotAvailable``) is raised."""
        self._cache.put(url, await self._fetcher.fetch(url))
        self._drop_tables(lambda built: url in built.cached)

    def forget(self, url: str) -> bool:
        """Drop the Cached copy of ``url`` (and the tables built from it); whether there was
        one. The next request that names it downloads it again."""
        self._drop_tables(lambda built: url in built.cached)
        return self._cache.remove(url)

    def forget_hosted(self, local_ids: Set[str]) -> None:
        """Drop the tables built from hosted @contexts that were just deleted."""
        self._drop_tables(lambda built: not local_ids.isdisjoint(built.hosted))

    def _sources(self) -> _Sources:
        return _Sources(self._builtin, self._hosted, self._cache)

    def _drop_tables(self, stale: Callable[[_Built], bool]) -> None:
        self._generation += 1
        for key in [key for key, built in self._tables.items() if stale(built)]:
            del self._tables[key]

    async def _table(self, key: Any, user: Any, link_url: str | None) -> TermTable:
        built: _Built | None = self._tables.get_fresh(key)
        if built is not None:
            self._cache.use(built.cached)
            return built.table
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[TermTable] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            generation = self._generation
            built = await self._build(user, link_url)
            if generation == self._generation:
                self._tables.put(key, built)
            future.set_result(built.table)
            return built.table
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: later waiters get it, nobody logs it as lost
            raise
        finally:
            del self._pending[key]

    async def _build(self, user: Any, link_url: str | None) -> _Built:
        fetched: set[str] = set()
        for _ in range(_MAX_DOCUMENTS_PER_CONTEXT):
            sources = self._sources()
            try:
                table = build_term_table(user, self._settings.core, sources, link_url)
            except MissingContext as missing:
                self._cache.put(missing.url, await self._fetcher.fetch(missing.url))
                fetched.add(missing.url)
                continue
            self._cache.use(sources.cached - fetched)  # what was downloaded now was not reused
            return _Built(table, tuple(sources.cached), tuple(sources.hosted))
        raise BadRequestData(f"an @context may refer to at most {_MAX_DOCUMENTS_PER_CONTEXT} URLs")
