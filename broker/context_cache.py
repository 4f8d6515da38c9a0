"""The broker's copies of downloaded @context documents: the *Cached* @contexts (§5.13.1).

An LRU of documents by URL, each with when it was downloaded, when it was last used and how many
times (``numberOfHits``, §5.13.3). A use is a time the broker took its copy instead of
downloading the document again: processing a new @context that names it, a request whose term
table was built from it (the document itself is not read again then), or Serve @context.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from broker.clock import Clock, utc_now


class Lru(OrderedDict[Any, Any]):
    """A dict that forgets its least recently used entries beyond ``size``."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def get_fresh(self, key: Any) -> Any:
        """The value of ``key``, marked as just used; ``None`` if absent."""
        value = self.get(key)
        if value is not None:
            self.move_to_end(key)
        return value

    def put(self, key: Any, value: Any) -> None:
        """Set ``key``, marked as just used, and forget the oldest entries beyond the size."""
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.size:
            self.popitem(last=False)


@dataclass(slots=True)
class CachedDocument:
    """A downloaded @context document and how it has been used since."""

    url: str
    document: Any
    fetched_at: datetime
    last_used: datetime | None = None
    hits: int = 0


class DocumentCache:
    """Downloaded @context documents by URL, at most ``size`` of them (least used go first)."""

    def __init__(self, size: int, clock: Clock = utc_now) -> None:
        self._entries = Lru(size)
        self._clock = clock

    def __contains__(self, url: object) -> bool:
        return url in self._entries

    def get(self, url: str) -> CachedDocument | None:
        """The entry for ``url``, without counting a use."""
        return self._entries.get(url)

    def put(self, url: str, document: Any) -> None:
        """Keep a freshly downloaded ``document``; a download is not a use."""
        self._entries.put(url, CachedDocument(url, document, self._clock()))

    def use(self, urls: Iterable[str]) -> None:
        """Count one use of each of ``urls`` that is still cached."""
        now = None
        for url in urls:
            entry: CachedDocument | None = self._entries.get_fresh(url)
            if entry is not None:
                now = now or self._clock()
                entry.hits += 1
                entry.last_used = now

    def remove(self, url: str) -> bool:
        """Forget ``url``; whether it was cached."""
        return self._entries.pop(url, None) is not None

    def entries(self) -> list[CachedDocument]:
        """Every entry, least recently used first."""
        return list(self._entries.values())
