"""Stored entity documents parsed once, and their rendered JSON kept beside them (issue 16).

Theory of operation. The SQLite store keeps each entity as the JSON bytes of its document. A read
used to parse those bytes and rebuild the response's dicts every time; for a page of 20 entities
that was half of the server's time. Here the bytes themselves are the key: ``load`` hands out one
parsed document per distinct stored text, and ``fragment`` keeps, per such document, the JSON
bytes of each way it was rendered (term table × view). A write stores new bytes, which are a new
key, so the next read parses and renders the new document: nothing has to be invalidated, and no
read can see an older version than the row it read. Entries stale after a write are simply the
least recently used ones when the cache is full. "Least recently used" is approximated the CLOCK
way: a hit only marks its entry, and eviction gives a marked entry one more round at the end of
the queue instead of dropping it; moving every hit to the end (``OrderedDict.move_to_end``)
cost a second lookup of its key bytes, about a tenth of a cached page of 100.

Only documents handed out by ``load`` are memoised: ``fragment`` recognises them by identity
(the entry holds the document, so its ``id`` cannot be reused while the entry lives). Anything a
reader derives from one (an entity with expired instances removed, the part a grant shares, a
merge of context sources) is a new object and is rendered afresh. So the one rule for callers is
that documents from ``load`` are never changed in place; ``TOSHI_DOC_CACHE_CHECK`` makes every
hit compare the document with a fresh parse (``check``), which the test suite turns on.

Readers run on the event loop and on the store's reader threads at once. A hit takes no lock:
each dict operation is atomic, and an entry found is right even if evicted the next moment (a
lock here was contended between the loop and the reader thread, and cost more than the lookup).
Inserting and evicting, which must keep both maps in step, take the lock.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

import orjson

from broker.ngsild.entity import EntityDoc

_FRAGMENTS_PER_DOC = 8
"""Renderings kept per document; a client cycling through more views starts the set anew."""


@dataclass(slots=True)
class _Entry:
    doc: EntityDoc
    fragments: dict[Hashable, bytes] = field(default_factory=dict)
    used: bool = False  # hit since it last reached the front of the queue


class ChangedInPlace(AssertionError):
    """A cached document was changed by a reader (only raised with the check on)."""


class DocCache:
    """Parsed documents by their stored bytes, at most ``size`` of them (LRU)."""

    def __init__(self, size: int, *, check: bool = False) -> None:
        self.size = size
        self.check = check
        self._by_raw: OrderedDict[bytes, _Entry] = OrderedDict()
        self._by_doc: dict[int, tuple[bytes, _Entry]] = {}
        self._lock = threading.Lock()

    def load(self, raw: bytes) -> EntityDoc:
        """The document stored as ``raw``; the same object for the same bytes while cached."""
        if self.size <= 0:
            return orjson.loads(raw)  # type: ignore[no-any-return]
        entry = self._by_raw.get(raw)
        if entry is not None:
            entry.used = True  # no lock: a lost mark only costs the entry its second chance
            if self.check and entry.doc != orjson.loads(raw):
                raise ChangedInPlace(f"cached document {entry.doc.get('id')} was changed")
            return entry.doc
        doc: EntityDoc = orjson.loads(raw)
        with self._lock:
            entry = self._by_raw.get(raw)
            if entry is not None:  # another thread parsed the same bytes meanwhile
                return entry.doc
            # Room first, then the new entry behind every survivor: it gets a full round.
            while len(self._by_raw) >= self.size:
                old_raw, old = self._by_raw.popitem(last=False)
                if old.used:  # a second chance, at the end of the queue
                    old.used = False
                    self._by_raw[old_raw] = old
                    continue
                del self._by_doc[id(old.doc)]
            entry = _Entry(doc)
            self._by_raw[raw] = entry
            self._by_doc[id(doc)] = (raw, entry)
        return doc

    def fragment(self, doc: EntityDoc, key: Hashable, render: Callable[[], bytes]) -> bytes:
        """``render()``, kept for ``doc`` under ``key`` when ``doc`` came from ``load``.

        ``key`` must name everything the rendering depends on besides the document.
        """
        found = self._by_doc.get(id(doc))
        if found is None or found[1].doc is not doc:
            return render()
        fragments = found[1].fragments
        text = fragments.get(key)
        if text is None:
            text = render()
            if len(fragments) >= _FRAGMENTS_PER_DOC:
                fragments.clear()
            fragments[key] = text
        elif self.check and text != render():
            raise ChangedInPlace(f"cached rendering of {doc.get('id')} differs from a fresh one")
        return text

    def clear(self) -> None:
        """Forget everything (tests, and a resize)."""
        with self._lock:
            self._by_raw.clear()
            self._by_doc.clear()

    def __len__(self) -> int:
        return len(self._by_raw)


SHARED = DocCache(10_000)
"""The process's cache. Keys are document bytes, so stores, tenants and applications in one
process can share it without seeing each other's data: equal bytes are equal documents. Its
size is the ``doc_cache_entries`` setting, applied when the broker starts."""
