"""Rendering (normalized, concise, simplified, lang, pick/omit, joins) and response parameters."""

from __future__ import annotations

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.entity import parse_entity
from broker.ngsild.errors import BadRequestData, InvalidRequest
from broker.ngsild.language import pick_language
from broker.ngsild.linked import flatten, render_inline
from broker.ngsild.params import build_view, parse_options, parse_projection
from broker.ngsild.patch import new_entity
from broker.ngsild.render import View, render_entity, shows_anything
from broker.ngsild.terms import build_term_table
from broker.ngsild.versions import downgrade, preferred_version

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
TERMS = build_term_table(None, CORE, builtin_documents())


def stored(body: dict) -> dict:
    return new_entity(parse_entity(body, TERMS), now="2026-11-23T00:00:00.000Z")


BUILDING = stored(
    {
        "id": "urn:ngsi-ld:Building:1",
        "type": "Building",
        "name": {"type": "LanguageProperty", "languageMap": {"en": "Hall", "ja": "会館"}},
        "height": {"type": "Property", "value": 20, "unitCode": "MTR"},
        "speed": [{"value": 1}, {"value": 2, "datasetId": "urn:ngsi-ld:Dataset:b"}],
        "category": {"type": "VocabProperty", "vocab": "office"},
        "locatedAt": {"type": "Relationship", "object": "urn:ngsi-ld:City:kyoto"},
    }
)
CITY = stored({"id": "urn:ngsi-ld:City:kyoto", "type": "City", "pop": 1_460_000})


def test_normalized_hides_system_times_unless_sys_attrs() -> None:
    out = render_entity(BUILDING, TERMS, View())
    assert out["height"] == {"type": "Property", "value": 20, "unitCode": "MTR"}
    assert "createdAt" in render_entity(BUILDING, TERMS, View(sys_attrs=True))


def test_simplified_wraps_kinds_that_would_look_like_plain_values() -> None:
    out = render_entity(BUILDING, TERMS, View(format="simplified"))
    assert out["height"] == 20
    assert out["name"] == {"languageMap": {"en": "Hall", "ja": "会館"}}
    assert out["category"] == {"vocab": "office"}
    assert out["locatedAt"] == "urn:ngsi-ld:City:kyoto"
    assert out["speed"] == {"dataset": {"@none": 1, "urn:ngsi-ld:Dataset:b": 2}}


def test_concise_drops_type_and_collapses_bare_values() -> None:
    out = render_entity(BUILDING, TERMS, View(format="concise"))
    assert out["height"] == {"value": 20, "unitCode": "MTR"}
    assert out["locatedAt"] == {"object": "urn:ngsi-ld:City:kyoto"}


def test_lang_picks_one_text_and_says_which() -> None:
    out = render_entity(BUILDING, TERMS, View(lang="ja"))
    assert out["name"] == {"type": "Property", "value": "会館", "lang": "ja"}


def test_language_lookup_truncates_longer_ranges() -> None:
    assert pick_language({"nl": "a", "fr": "b"}, "nl-BE,fr;q=0.5") == ("nl", "a")
    assert pick_language({"en": "a", "fr": "b"}, "de,fr;q=0.2") == ("fr", "b")
    assert pick_language({"@none": "x", "fr": "b"}, "de") == ("@none", "x")


def test_pick_and_omit_with_braces_and_pipes() -> None:
    assert parse_projection("id,locatedAt{id,pop}") == [
        ("id", None),
        ("locatedAt", [("id", None), ("pop", None)]),
    ]
    assert parse_projection("a|b") == parse_projection("a,b")
    for bad in ("a{b", "a,,b", "a}b", ""):
        with pytest.raises(BadRequestData):
            parse_projection(bad)
    view = build_view(TERMS, pick="id,height")
    assert render_entity(BUILDING, TERMS, view) == {
        "id": "urn:ngsi-ld:Building:1",
        "height": {"type": "Property", "value": 20, "unitCode": "MTR"},
    }
    omitted = render_entity(BUILDING, TERMS, build_view(TERMS, omit="type,height"))
    assert "type" not in omitted and "height" not in omitted and "name" in omitted


def test_attrs_that_match_nothing_show_nothing() -> None:
    assert not shows_anything(BUILDING, build_view(TERMS, attrs="colour"))
    assert shows_anything(BUILDING, build_view(TERMS, attrs="height,colour"))


def test_invalid_options_and_formats_are_invalid_requests() -> None:
    with pytest.raises(InvalidRequest):
        parse_options("keyValues,bogus")
    with pytest.raises(InvalidRequest):
        build_view(TERMS, format_="tabular")
    with pytest.raises(BadRequestData):
        build_view(TERMS, attrs="a", pick="b")


def test_inline_join_nests_the_linked_entity_and_flat_lists_it() -> None:
    linked = {CITY["id"]: CITY}
    view = build_view(TERMS, pick="id,locatedAt{id,pop}")
    inline = render_inline(BUILDING, TERMS, view, linked, levels=1)
    assert inline["locatedAt"]["entity"] == {
        "id": "urn:ngsi-ld:City:kyoto",
        "pop": {"type": "Property", "value": 1_460_000},
    }
    flat = flatten(BUILDING, View(), linked, levels=1)
    assert [doc["id"] for doc, _ in flat] == [BUILDING["id"], CITY["id"]]


def test_prefer_an_older_version_reformats_newer_attribute_types() -> None:
    out = render_entity(BUILDING, TERMS, View())
    old, changed = downgrade(out, preferred_version("ngsi-ld=1.5") or (1, 9))
    assert changed and old["category"] == {"type": "Property", "value": "office"}
    same, changed = downgrade(out, (1, 9))
    assert not changed and same == out


def test_the_version_preference_is_found_as_rfc_7240_writes_it() -> None:
    for header in (
        "ngsi-ld=1.5",
        "NGSI-LD=1.5",
        'ngsi-ld="1.5"',
        "respond-async, ngsi-ld=1.5;q=0.1",
    ):
        assert preferred_version(header) == (1, 5)
    assert preferred_version("ngsi-ld=2.0") == (1, 9)  # later than ours means ours
    for header in (None, "", "respond-async", "ngsi-ld=latest", "x-ngsi-ld=1.5"):
        assert preferred_version(header) is None
