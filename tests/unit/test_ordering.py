"""orderBy (v1.9.1 §4.23): parsing, value ranks, directions, distance and collation."""

from __future__ import annotations

import pytest
from broker.ngsild.errors import BadRequestData
from broker.ngsild.query.ordering import order, parse_ordering

X = "https://example.org/"


def expand(name: str) -> str:
    if name == "location":
        return "https://uri.etsi.org/ngsi-ld/location"
    return name if ":" in name else X + name


def doc(key: str, lon: float = 0.0, **attrs: object) -> dict:
    found = {X + name: [{"type": "Property", "value": value}] for name, value in attrs.items()}
    point = {"type": "Point", "coordinates": [lon, 0.0]}
    found["https://uri.etsi.org/ngsi-ld/location"] = [{"type": "GeoProperty", "value": point}]
    return {"id": f"urn:x:{key}", "type": [X + "T"], "createdAt": key, "attrs": found}


def ids(docs: list[dict]) -> list[str]:
    return [d["id"].removeprefix("urn:x:") for d in docs]


DOCS = [
    doc("a", 3.0, level=2, address={"city": "Zurich"}),
    doc("b", 1.0, level="high", address={"city": "Amsterdam"}),
    doc("c", 2.0, level=1),
    doc("d", 0.5),
]


@pytest.mark.parametrize(
    ("order_by", "expected"),
    [
        ("level", ["c", "a", "b", "d"]),  # numbers, then strings, then absent
        ("level;desc", ["b", "a", "c", "d"]),  # absent stays last
        ("address[city]", ["b", "a", "c", "d"]),
        ("id;desc", ["d", "c", "b", "a"]),
        ("createdAt", ["a", "b", "c", "d"]),
    ],
)
def test_attribute_member_and_compound_paths(order_by: str, expected: list[str]) -> None:
    assert ids(order(parse_ordering(order_by, expand), DOCS)) == expected


def test_distance_ordering_needs_and_uses_the_reference() -> None:
    near_first = parse_ordering("location;dist-asc", expand, coordinates="[0, 0]")
    assert ids(order(near_first, DOCS)) == ["d", "b", "c", "a"]
    far_first = parse_ordering(["location;dist-desc"], expand, coordinates=[0, 0])
    assert ids(order(far_first, DOCS)) == ["a", "c", "b", "d"]
    for bad in ({}, {"coordinates": "8,40"}, {"coordinates": [0, 0], "geometry": 5}):
        with pytest.raises(BadRequestData):
            parse_ordering("location;dist-asc", expand, **bad)


def test_collation_orders_accents_with_their_base_letter() -> None:
    names = [doc(str(n), name=name) for n, name in enumerate(["A", "b", "á"])]

    def values(ordered: list[dict]) -> list[str]:
        return [d["attrs"][X + "name"][0]["value"] for d in ordered]

    assert values(order(parse_ordering("name", expand), names)) == ["A", "b", "á"]
    assert values(order(parse_ordering("name", expand, collation="und"), names)) == ["A", "á", "b"]
    with pytest.raises(BadRequestData):
        parse_ordering("name", expand, collation="!!nope")


@pytest.mark.parametrize("bad", ["", "level;sideways", "!level", "level>2"])
def test_malformed_order_by_is_bad_request_data(bad: str) -> None:
    with pytest.raises(BadRequestData):
        parse_ordering(bad, expand)
