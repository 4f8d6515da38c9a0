"""@context → term tables: expansion/compaction, core protected, processing without network."""

from __future__ import annotations

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.errors import BadRequestData
from broker.ngsild.terms import MissingContext, body_context, build_term_table

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
DEFAULT = "https://uri.etsi.org/ngsi-ld/default-context/"


def table(user: object = None, extra: dict | None = None):
    return build_term_table(user, CORE, {**builtin_documents(), **(extra or {})})


def test_unknown_terms_expand_under_the_core_default_vocab() -> None:
    terms = table()
    assert terms.expand("speed") == DEFAULT + "speed"
    assert terms.compact(DEFAULT + "speed") == "speed"


def test_user_terms_expand_and_compact_both_ways() -> None:
    terms = table({"level": "https://example.org/city#level"})
    assert terms.expand("level") == "https://example.org/city#level"
    assert terms.compact("https://example.org/city#level") == "level"


def test_core_terms_keep_their_core_meaning_whatever_the_user_context_says() -> None:
    terms = table({"location": "https://example.org/not-the-core-location"})
    assert terms.expand("location") == "https://uri.etsi.org/ngsi-ld/location"


def test_every_core_version_is_built_in() -> None:
    for version in ("1.6", "1.7", "1.8", "1.9"):
        url = f"https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v{version}.jsonld"
        terms = build_term_table(None, url, builtin_documents())
        assert terms.expand("location") == "https://uri.etsi.org/ngsi-ld/location"


def test_a_remote_context_not_supplied_yet_is_asked_for_not_fetched() -> None:
    with pytest.raises(MissingContext) as caught:
        table("https://contexts.example.org/city.jsonld")
    assert caught.value.url == "https://contexts.example.org/city.jsonld"


def test_a_supplied_remote_context_is_used() -> None:
    url = "https://contexts.example.org/city.jsonld"
    terms = table(url, {url: {"@context": {"level": "https://example.org/city#level"}}})
    assert terms.expand("level") == "https://example.org/city#level"
    assert terms.link_url == url


def test_an_invalid_context_is_bad_request_data() -> None:
    with pytest.raises(BadRequestData):
        table({"level": {"@id": 42}})
    with pytest.raises(BadRequestData):
        table(42)


def test_a_table_advertised_under_another_core_url_keeps_its_terms() -> None:
    table = build_term_table(None, CORE, builtin_documents())
    v19 = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.9.jsonld"
    twin = table.advertised_as(v19)
    assert (twin.link_url, body_context(twin)) == (v19, v19)
    assert twin.expand("location") == table.expand("location")
    assert table.link_url == CORE
