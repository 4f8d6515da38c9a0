"""Downloading a remote @context document: http(s) only, with a timeout and a size cap.

A failure to reach the document is ``LdContextNotAvailable`` (504, GS CIM 009 v1.8.1 §6.3.2); a
document that is not a JSON object with an ``@context`` member is ``BadRequestData``. A URL under
one of the configured mirrors (``ContextSettings.mirrors``) is downloaded from the mirror's copy;
the document is still the one its own URL names.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import orjson

from broker.ngsild.errors import BadRequestData, LdContextNotAvailable
from broker.ngsild.jsonld_contexts import SELF_BASE
from broker.settings import ContextSettings

_log = logging.getLogger("broker.contexts")


class ContextFetcher:
    """Fetches @context documents over HTTP for the ``ContextLoader``."""

    def __init__(self, settings: ContextSettings, client: httpx.AsyncClient | None = None) -> None:
        self._limit = settings.max_bytes
        # Longest first, so that the most specific prefix wins.
        self._mirrors = sorted(settings.mirrors.items(), key=lambda item: -len(item[0]))
        self._client = client or httpx.AsyncClient(
            timeout=settings.fetch_timeout, follow_redirects=True, max_redirects=5
        )

    async def close(self) -> None:
        """Release the HTTP client."""
        await self._client.aclose()

    async def fetch(self, url: str) -> Any:
        """The JSON document at ``url``."""
        if url.startswith(SELF_BASE):  # a relative URL: this broker, which hosts no such id
            path = url.removeprefix(SELF_BASE.rstrip("/"))
            raise BadRequestData(f"cannot load @context {path!r}: no @context is hosted there")
        if not url.startswith(("http://", "https://")):
            raise BadRequestData(f"cannot load @context {url!r}: only http(s) URLs are supported")
        source = self.source_of(url)
        shown = url if source == url else f"{url} (from {source})"
        try:
            body = await self._download(source)
        except (httpx.HTTPError, OSError) as exc:
            _log.warning("remote @context %s unavailable: %s", shown, exc)
            raise LdContextNotAvailable(f"could not retrieve @context {shown}: {exc}") from None
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise BadRequestData(f"@context {url} is not valid JSON") from None
        if not isinstance(document, dict) or "@context" not in document:
            raise BadRequestData(f"@context {url} has no '@context' member")
        _log.info("fetched remote @context %s (%d bytes)", shown, len(body))
        return document

    def source_of(self, url: str) -> str:
        """Where ``url`` is downloaded from: its mirror's copy, or itself."""
        for prefix, copy in self._mirrors:
            if url.startswith(prefix):
                return copy + url[len(prefix) :]
        return url

    async def _download(self, url: str) -> bytes:
        headers = {"Accept": "application/ld+json, application/json;q=0.9"}
        async with self._client.stream("GET", url, headers=headers) as response:
            if response.status_code != 200:
                raise LdContextNotAvailable(
                    f"could not retrieve @context {url}: HTTP {response.status_code}"
                )
            chunks, size = [], 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self._limit:
                    raise BadRequestData(f"@context {url} is larger than {self._limit} bytes")
                chunks.append(chunk)
        return b"".join(chunks)
