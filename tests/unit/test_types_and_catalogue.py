"""Entity type expressions, the discovery catalogue and discovery rendering (pure parts)."""

from __future__ import annotations

import pytest
from broker.ngsild import discovery
from broker.ngsild.catalogue import CatalogueRow, catalogue_delta, catalogue_keys
from broker.ngsild.errors import BadRequestData
from broker.ngsild.query.types import (
    is_plain,
    matches_types,
    parse_type_expression,
    type_names,
)

E = "https://example.org/"


def expand(name: str) -> str:
    return name if ":" in name else E + name


def compact(iri: str) -> str:
    return iri.removeprefix(E)


@pytest.mark.parametrize(
    ("text", "alternatives"),
    [
        ("A", [{"A"}]),
        ("A,B", [{"A"}, {"B"}]),
        ("A|B", [{"A"}, {"B"}]),
        ("A;B", [{"A", "B"}]),
        ("(A;B)|C", [{"A", "B"}, {"C"}]),
        ("A;(B|C)", [{"A", "B"}, {"A", "C"}]),
        ("(A|B);(C|D)", [{"A", "C"}, {"A", "D"}, {"B", "C"}, {"B", "D"}]),
        (" A , B ", [{"A"}, {"B"}]),
        ("A,A", [{"A"}]),
    ],
)
def test_type_expressions_become_alternatives_of_type_sets(
    text: str, alternatives: list[set[str]]
) -> None:
    expr = parse_type_expression(text, expand)
    assert [{compact(t) for t in alt} for alt in expr] == alternatives


@pytest.mark.parametrize("text", ["", "A,", "(A", "A)", "A;;B", "()", "A|(B;)"])
def test_malformed_type_expressions_are_bad_request_data(text: str) -> None:
    with pytest.raises(BadRequestData, match="type"):
        parse_type_expression(text, expand)


def test_deep_nesting_in_type_expressions_is_refused() -> None:
    with pytest.raises(BadRequestData, match="nested"):
        parse_type_expression("(" * 50 + "A" + ")" * 50, expand)


def test_type_matching_and_index_names() -> None:
    expr = parse_type_expression("(Sensor;Gauge)|Camera", expand)
    assert not is_plain(expr)
    assert is_plain(parse_type_expression("A,B", expand))
    assert type_names(expr) == tuple(sorted(expand(t) for t in ("Camera", "Gauge", "Sensor")))
    assert matches_types(expr, [E + "Gauge", E + "Sensor", E + "Other"])
    assert matches_types(expr, [E + "Camera"])
    assert not matches_types(expr, [E + "Gauge"])


def _doc(types: list[str], **attrs: str) -> dict:
    return {
        "id": "urn:x:1",
        "type": [E + t for t in types],
        "attrs": {E + name: [{"type": kind}] for name, kind in attrs.items()},
    }


def test_catalogue_delta_counts_only_what_changed() -> None:
    before = _doc(["Gauge"], level="Property", bridge="Relationship")
    same_names = _doc(["Gauge"], level="Property", bridge="Relationship")
    assert not catalogue_delta(before, same_names)
    after = _doc(["Gauge"], level="Property")
    delta = catalogue_delta(before, after)
    assert delta == {(E + "Gauge", E + "bridge", "Relationship"): -1, ("", E + "bridge", ""): -1}
    assert set(catalogue_delta(None, before)) == catalogue_keys(before)
    assert all(change == -1 for change in catalogue_delta(before, None).values())


def _rows(*docs: dict) -> list[CatalogueRow]:
    counts: dict = {}
    for doc in docs:
        for key, change in catalogue_delta(None, doc).items():
            counts[key] = counts.get(key, 0) + change
    return [CatalogueRow(*key, n) for key, n in sorted(counts.items())]


ROWS = _rows(
    _doc(["Gauge"], level="Property", bridge="Relationship"),
    _doc(["Gauge"], level="Property"),
    _doc(["Camera", "Sensor"], level="GeoProperty"),
)


def test_type_list_and_details() -> None:
    listed = discovery.entity_type_list(ROWS, compact)
    assert listed["type"] == "EntityTypeList"
    assert listed["id"].startswith("urn:ngsi-ld:EntityTypeList:")
    assert listed["typeList"] == ["Camera", "Gauge", "Sensor"]
    details = {item["typeName"]: item for item in discovery.entity_types(ROWS, compact)}
    assert details["Gauge"] == {
        "id": E + "Gauge",
        "type": "EntityType",
        "typeName": "Gauge",
        "attributeNames": ["bridge", "level"],
    }


def test_type_info_counts_entities_and_lists_attribute_types() -> None:
    info = discovery.entity_type_info(ROWS, E + "Gauge", compact)
    assert info is not None
    assert info["entityCount"] == 2
    assert info["attributeDetails"] == [
        {
            "id": E + "bridge",
            "type": "Attribute",
            "attributeName": "bridge",
            "attributeTypes": ["Relationship"],
        },
        {
            "id": E + "level",
            "type": "Attribute",
            "attributeName": "level",
            "attributeTypes": ["Property"],
        },
    ]
    assert discovery.entity_type_info(ROWS, E + "Nothing", compact) is None


def test_attribute_list_details_and_info() -> None:
    assert discovery.attribute_list(ROWS, compact)["attributeList"] == ["bridge", "level"]
    details = {item["attributeName"]: item for item in discovery.attributes(ROWS, compact)}
    assert details["level"]["typeNames"] == ["Camera", "Gauge", "Sensor"]
    assert "attributeCount" not in details["level"]
    info = discovery.attribute_info(ROWS, E + "level", compact)
    assert info is not None
    # Three entities have "level"; the one with two types is counted once.
    assert info["attributeCount"] == 3
    assert info["attributeTypes"] == ["GeoProperty", "Property"]
    assert discovery.attribute_info(ROWS, E + "speed", compact) is None
