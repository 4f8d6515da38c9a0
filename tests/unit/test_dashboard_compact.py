"""The dashboard's compact form: what its page draws of an entity, nothing else."""

from __future__ import annotations

from broker.contexts import ContextLoader
from broker.dashboard.compact import StreamView, compact_entity, deleted_entity
from broker.ngsild.entity import EntityDoc
from broker.settings import ContextSettings

TERMS = ContextLoader(ContextSettings()).core
GAUGE = TERMS.expand("WaterObserved")


def iri(name: str) -> str:
    return TERMS.expand(name)


DOC: EntityDoc = {
    "id": "urn:g",
    "type": [GAUGE],
    "createdAt": "2026-01-01T00:00:00.000Z",
    "modifiedAt": "2026-01-01T00:00:05.000Z",
    "attrs": {
        iri("height"): [
            {
                "type": "Property",
                "value": 2.5,
                "observedAt": "2026-01-01T00:00:04Z",
                "unitCode": "MTR",
                "createdAt": "2026-01-01T00:00:00.000Z",
                "modifiedAt": "2026-01-01T00:00:05.000Z",
                iri("quality"): {"type": "Property", "value": "ok"},
            }
        ],
        iri("status"): [{"type": "VocabProperty", "vocab": iri("closed")}],
        iri("name"): [
            {"type": "LanguageProperty", "languageMap": {"ja": "三条", "en": "Sanjo"}},
        ],
        iri("reading"): [
            {"type": "Property", "value": 1, "datasetId": "urn:a"},
            {"type": "Property", "value": 2},
        ],
        iri("owner"): [{"type": "Relationship", "object": "urn:town"}],
    },
}


def view(*names: str) -> StreamView:
    return StreamView(frozenset({GAUGE}), {iri(name): name for name in names}, TERMS)


def test_only_the_attributes_asked_for_with_their_value_and_observation() -> None:
    shown = compact_entity(DOC, view("height", "name", "location"))
    assert shown == {
        "id": "urn:g",
        "type": "WaterObserved",
        "modifiedAt": "2026-01-01T00:00:05.000Z",
        # No sub-attributes, no per-attribute system times.
        "height": {
            "type": "Property",
            "value": 2.5,
            "observedAt": "2026-01-01T00:00:04Z",
            "unitCode": "MTR",
        },
        "name": {"type": "LanguageProperty", "languageMap": {"ja": "三条", "en": "Sanjo"}},
    }


def test_vocab_is_compacted_and_several_instances_are_a_list() -> None:
    shown = compact_entity(DOC, view("status", "reading", "owner"))
    assert shown["status"] == {"type": "VocabProperty", "vocab": "closed"}
    assert shown["reading"] == [
        {"type": "Property", "value": 1, "datasetId": "urn:a"},
        {"type": "Property", "value": 2},
    ]
    assert shown["owner"] == {"type": "Relationship", "object": "urn:town"}


def test_without_a_choice_every_attribute_is_shown_by_its_short_name() -> None:
    everything = StreamView(frozenset({GAUGE}), None, TERMS)
    shown = compact_entity(DOC, everything)
    assert set(shown) == {"id", "type", "modifiedAt", "height", "status", "name", "reading"} | {
        "owner"
    }


def test_a_deletion_is_the_id_the_type_and_when() -> None:
    gone = deleted_entity(DOC, view("height"), "2026-01-01T00:01:00.000Z")
    assert gone == {"id": "urn:g", "type": "WaterObserved", "deletedAt": "2026-01-01T00:01:00.000Z"}


def test_a_stream_shows_entities_of_its_types_only() -> None:
    assert view().shows(DOC)
    assert not view().shows({**DOC, "type": [iri("Alert")]})
    assert not view().shows(None)
