"""Client JSON → internal entity documents: normalized and concise input, validation errors."""

from __future__ import annotations

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.entity import parse_entity, parse_fragment, parse_instance
from broker.ngsild.errors import BadRequestData, InvalidRequest
from broker.ngsild.terms import build_term_table
from broker.ngsild.values import MERGE_NULLS, UPDATE_NULLS

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
D = "https://uri.etsi.org/ngsi-ld/default-context/"
TERMS = build_term_table(None, CORE, builtin_documents())


def test_normalized_input_is_stored_expanded() -> None:
    doc = parse_entity(
        {"id": "urn:ngsi-ld:T:1", "type": "T", "speed": {"type": "Property", "value": 3}}, TERMS
    )
    assert doc == {
        "id": "urn:ngsi-ld:T:1",
        "type": [D + "T"],
        "attrs": {D + "speed": [{"type": "Property", "value": 3}]},
    }


def test_concise_input_is_typed_by_its_value_member() -> None:
    doc = parse_entity(
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "speed": 3,
            "owner": {"object": "urn:ngsi-ld:Person:1"},
            "location": {"type": "Point", "coordinates": [1, 2]},
            "name": {"languageMap": {"en": "x"}},
        },
        TERMS,
    )
    kinds = {iri.rsplit("/", 1)[-1]: inst[0]["type"] for iri, inst in doc["attrs"].items()}
    assert kinds == {
        "speed": "Property",
        "owner": "Relationship",
        "location": "GeoProperty",
        "name": "LanguageProperty",
    }


def test_multi_attribute_instances_are_kept_by_dataset_id() -> None:
    doc = parse_entity(
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "speed": [{"value": 1}, {"value": 2, "datasetId": "urn:ngsi-ld:Dataset:gps"}],
        },
        TERMS,
    )
    assert [i.get("datasetId") for i in doc["attrs"][D + "speed"]] == [
        None,
        "urn:ngsi-ld:Dataset:gps",
    ]


@pytest.mark.parametrize(
    "body",
    [
        {"type": "T"},  # no id
        {"id": "not a uri", "type": "T"},
        {"id": "urn:ngsi-ld:T:1"},  # no type
        {"id": "urn:ngsi-ld:T:1", "type": "1T"},
        {"id": "urn:ngsi-ld:T:1", "type": "type"},  # a keyword alias, not a type
        {"id": "urn:ngsi-ld:T:1", "type": "T", "speed": None},
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "speed": {"type": "Property", "value": "urn:ngsi-ld:null"},
        },
        {"id": "urn:ngsi-ld:T:1", "type": "T", "speed": {"type": "Relationship", "object": "x y"}},
        {"id": "urn:ngsi-ld:T:1", "type": "T", "location": {"type": "Property", "value": 1}},
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "speed": {"value": 1, "observedAt": "2026-01-01T00:00:00+09:00"},
        },
        {"id": "urn:ngsi-ld:T:1", "type": "T", "speed": [{"value": 1}, {"value": 2}]},
        {"id": "urn:ngsi-ld:T:1", "type": "T", "scope": "no-leading-slash"},
        {"id": "urn:ngsi-ld:T:1", "type": "T", "createdAt": {"value": 1}},
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "where": {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [200, 0]}},
        },
    ],
)
def test_invalid_entities_are_bad_request_data(body: dict) -> None:
    with pytest.raises(BadRequestData):
        parse_entity(body, TERMS)


def test_an_empty_body_is_an_invalid_request() -> None:
    with pytest.raises(InvalidRequest):
        parse_entity({}, TERMS)


def test_geometry_given_as_a_string_is_normalised_to_an_object() -> None:
    doc = parse_entity(
        {
            "id": "urn:ngsi-ld:T:1",
            "type": "T",
            "location": {"type": "GeoProperty", "value": '{"type":"Point","coordinates":[1,2]}'},
        },
        TERMS,
    )
    assert doc["attrs"]["https://uri.etsi.org/ngsi-ld/location"][0]["value"] == {
        "type": "Point",
        "coordinates": [1, 2],
    }


def test_update_fragments_may_carry_the_ngsi_ld_null_to_delete() -> None:
    fragment = parse_fragment({"speed": {"value": "urn:ngsi-ld:null"}}, TERMS, nulls=UPDATE_NULLS)
    assert fragment.attrs[D + "speed"][0]["value"] == "urn:ngsi-ld:null"


def test_merge_fragments_may_null_the_scope() -> None:
    fragment = parse_fragment({"scope": "urn:ngsi-ld:null"}, TERMS, nulls=MERGE_NULLS)
    assert fragment.delete_scope


def test_partial_fragments_need_neither_type_nor_value() -> None:
    instance = parse_instance({"observedAt": "2026-01-01T00:00:00Z"}, TERMS, partial=True)
    assert instance == {"observedAt": "2026-01-01T00:00:00Z"}


PROOF = {"type": "DataIntegrityProof", "cryptosuite": "eddsa-rdfc-2022", "proofValue": "zQe"}


def test_ngsildproof_keeps_its_sealed_members_and_proof_object() -> None:
    # v1.9 §4.5.2.2: entityIdSealed / entityTypeSealed are plain strings of ngsildproof only.
    body = {
        "id": "urn:ngsi-ld:Vehicle:1",
        "type": "Vehicle",
        "ngsildproof": {
            "type": "Property",
            "value": PROOF,
            "entityIdSealed": "urn:ngsi-ld:Vehicle:1",
            "entityTypeSealed": "Vehicle",
        },
    }
    doc = parse_entity(body, TERMS)
    (proof,) = next(iter(doc["attrs"].values()))
    assert proof["value"] == PROOF
    assert proof["entityIdSealed"] == "urn:ngsi-ld:Vehicle:1"
    assert proof["entityTypeSealed"] == TERMS.expand("Vehicle")


@pytest.mark.parametrize(
    "attrs",
    [
        {"speed": {"type": "Property", "value": 1, "entityIdSealed": "urn:ngsi-ld:Vehicle:1"}},
        {"ngsildproof": {"type": "Property", "value": "not-a-proof-object"}},
        {"ngsildproof": {"type": "Property", "value": PROOF, "entityTypeSealed": 42}},
        {"ngsildproof": {"type": "Property", "value": PROOF, "entityIdSealed": "no uri"}},
    ],
)
def test_sealed_members_elsewhere_or_malformed_are_bad_request_data(attrs: dict) -> None:
    with pytest.raises(BadRequestData):
        parse_entity({"id": "urn:ngsi-ld:Vehicle:1", "type": "Vehicle", **attrs}, TERMS)
