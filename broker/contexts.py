"""Getting @context documents and keeping their term tables (GS CIM 009 v1.8.1 §5.5.7, §6.3.5).

The core contexts (v1.6-v1.9 and the legacy one) ship in ``schemas/contexts`` and are never
fetched. User contexts arrive as a ``Link`` header URL or an ``@context`` member; remote
documents are fetched over HTTP with a timeout and a size cap, and both the documents and the
processed term tables are kept in LRU caches shared by all requests, so a busy broker processes
each distinct context once.
"""

from __future__ import annotations

import asyncio
import logging
from collections import ChainMap, OrderedDict
from importlib.resources import files
from typing import Any

import httpx
import orjson

from broker.ngsild.errors import BadRequestData, LdContextNotAvailable
from broker.ngsild.terms import (
    CORE_CONTEXT_FILES,
    EXTRA_BUILTIN_FILES,
    MissingContext,
    TermTable,
    build_term_table,
)
from broker.settings import ContextSettings

_log = logging.getLogger(__name__)
_MAX_DOCUMENTS_PER_CONTEXT = 32


def builtin_documents() -> dict[str, Any]:
    """The @context documents shipped with Toshi, by the URL they stand for."""
    folder = files("schemas").joinpath("contexts")
    return {
        url: orjson.loads(folder.joinpath(name).read_bytes())
        for url, name in {**CORE_CONTEXT_FILES, **EXTRA_BUILTIN_FILES}.items()
    }


class _Lru(OrderedDict[Any, Any]):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_fresh(self, key: Any) -> Any:
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


class ContextLoader:
    """Turns the @context of a request into a ``TermTable``, fetching what it must."""

    def __init__(self, settings: ContextSettings, client: httpx.AsyncClient | None = None) -> None:
        self._settings = settings
        self._builtin = builtin_documents()
        if settings.core not in self._builtin:
            raise ValueError(f"the core @context {settings.core} is not built in")
        self._remote = _Lru(settings.cache_size)
        self._tables = _Lru(settings.cache_size)
        self._pending: dict[Any, asyncio.Future[TermTable]] = {}
        self._client = client or httpx.AsyncClient(
            timeout=settings.fetch_timeout, follow_redirects=True, max_redirects=5
        )
        self.core = build_term_table(None, settings.core, self._builtin)

    @property
    def core_url(self) -> str:
        """The core @context URL every term table ends with."""
        return self._settings.core

    async def close(self) -> None:
        """Release the HTTP client."""
        await self._client.aclose()

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

    async def _table(self, key: Any, user: Any, link_url: str | None) -> TermTable:
        table = self._tables.get_fresh(key)
        if table is not None:
            return table  # type: ignore[no-any-return]
        pending = self._pending.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[TermTable] = asyncio.get_running_loop().create_future()
        self._pending[key] = future
        try:
            table = await self._build(user, link_url)
            self._tables.put(key, table)
            future.set_result(table)
            return table
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: later waiters get it, nobody logs it as lost
            raise
        finally:
            del self._pending[key]

    async def _build(self, user: Any, link_url: str | None) -> TermTable:
        documents = ChainMap(self._builtin, self._remote)
        for _ in range(_MAX_DOCUMENTS_PER_CONTEXT):
            try:
                return build_term_table(user, self._settings.core, documents, link_url)
            except MissingContext as missing:
                self._remote.put(missing.url, await self._fetch(missing.url))
        raise BadRequestData(f"an @context may refer to at most {_MAX_DOCUMENTS_PER_CONTEXT} URLs")

    async def _fetch(self, url: str) -> Any:
        if not url.startswith(("http://", "https://")):
            raise BadRequestData(f"cannot load @context {url!r}: only http(s) URLs are supported")
        try:
            body = await self._download(url)
        except (httpx.HTTPError, OSError) as exc:
            _log.warning("remote @context %s unavailable: %s", url, exc)
            raise LdContextNotAvailable(f"could not retrieve @context {url}: {exc}") from None
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequestData(f"@context {url} is not valid JSON") from None
        if not isinstance(document, dict) or "@context" not in document:
            raise BadRequestData(f"@context {url} has no '@context' member")
        _log.info("fetched remote @context %s (%d bytes)", url, len(body))
        return document

    async def _download(self, url: str) -> bytes:
        limit = self._settings.max_bytes
        headers = {"Accept": "application/ld+json, application/json;q=0.9"}
        async with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise LdContextNotAvailable(
                    f"could not retrieve @context {url}: HTTP {response.status_code}"
                )
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    raise BadRequestData(f"@context {url} is larger than {limit} bytes")
                chunks.append(chunk)
        return b"".join(chunks)
