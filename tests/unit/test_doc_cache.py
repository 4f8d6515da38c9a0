"""The parsed-document cache: one document per stored text, renderings kept beside it."""

from __future__ import annotations

import orjson
import pytest
from broker.doc_cache import ChangedInPlace, DocCache


def text(value: int) -> bytes:
    return orjson.dumps({"id": "urn:ngsi-ld:Gauge:1", "type": ["T"], "attrs": {"v": [value]}})


def test_the_same_bytes_give_the_same_document_and_new_bytes_a_new_one() -> None:
    cache = DocCache(10)
    first = cache.load(text(1))
    assert cache.load(text(1)) is first
    changed = cache.load(text(2))
    assert changed is not first
    assert changed["attrs"]["v"] == [2]


def test_a_rendering_is_kept_for_its_own_version_only() -> None:
    cache = DocCache(10)
    calls: list[int] = []

    def render(doc: dict) -> bytes:
        calls.append(1)
        return orjson.dumps(doc["attrs"])

    old = cache.load(text(1))
    assert cache.fragment(old, "k", lambda: render(old)) == b'{"v":[1]}'
    assert cache.fragment(old, "k", lambda: render(old)) == b'{"v":[1]}'
    assert len(calls) == 1
    new = cache.load(text(2))  # a write stored new bytes
    assert cache.fragment(new, "k", lambda: render(new)) == b'{"v":[2]}'
    assert len(calls) == 2


def test_documents_not_loaded_through_the_cache_are_rendered_every_time() -> None:
    cache = DocCache(10)
    derived = {**cache.load(text(1)), "attrs": {}}  # e.g. expired instances removed
    calls: list[int] = []
    for _ in range(2):
        cache.fragment(derived, "k", lambda: calls.append(1) or b"{}")
    assert len(calls) == 2


def test_the_least_recently_used_go_first() -> None:
    cache = DocCache(2)
    one = cache.load(text(1))
    two = cache.load(text(2))
    assert cache.load(text(1)) is one  # used again: it gets a second chance
    three = cache.load(text(3))  # so 2, unused since it came in, goes
    assert len(cache) == 2
    assert cache.load(text(1)) is one
    assert cache.load(text(3)) is three
    calls: list[int] = []
    cache.fragment(two, "k", lambda: calls.append(1) or b"{}")
    cache.fragment(two, "k", lambda: calls.append(1) or b"{}")
    assert calls == [1, 1]  # an evicted document is rendered every time
    # Both are used now: each is passed over once, the older (1) then goes, and the newest
    # entry is kept for a full round even though everything else was in use.
    again = cache.load(text(2))
    assert again is not two and cache.load(text(2)) is again
    assert cache.load(text(3)) is three and cache.load(text(1)) is not one


def test_size_zero_keeps_nothing() -> None:
    cache = DocCache(0)
    assert cache.load(text(1)) is not cache.load(text(1))
    assert len(cache) == 0


def test_the_check_catches_a_reader_changing_a_shared_document() -> None:
    cache = DocCache(10, check=True)
    doc = cache.load(text(1))
    doc["attrs"]["v"].append(9)
    with pytest.raises(ChangedInPlace):
        cache.load(text(1))
