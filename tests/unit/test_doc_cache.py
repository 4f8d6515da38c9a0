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
    cache.load(text(2))
    assert cache.load(text(1)) is one  # used again: now the most recent
    cache.load(text(3))
    assert len(cache) == 2
    assert cache.load(text(1)) is one
    evicted = cache.load(text(2))
    assert evicted["attrs"]["v"] == [2]
    calls: list[int] = []
    cache.fragment(one, "k", lambda: calls.append(1) or b"{}")  # one was evicted by 2 now
    assert calls == [1]


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
