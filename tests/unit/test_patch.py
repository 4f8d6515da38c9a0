"""Write rules (append, update, partial, merge, replace, delete) as pure functions."""

from __future__ import annotations

import copy

import pytest
from broker.ngsild.entity import Fragment
from broker.ngsild.errors import BadRequestData, ResourceNotFound
from broker.ngsild.patch import (
    SCOPE,
    append_attributes,
    delete_attribute,
    merge_entity,
    merge_patch,
    new_entity,
    partial_update,
    update_attributes,
)

T0, T1 = "2026-11-23T00:00:00.000Z", "2026-11-23T00:00:01.000Z"
SPEED, COLOR = "urn:x:speed", "urn:x:color"


def entity() -> dict:
    return new_entity(
        {
            "id": "urn:ngsi-ld:T:1",
            "type": ["urn:x:T"],
            "attrs": {
                SPEED: [
                    {"type": "Property", "value": 1},
                    {"type": "Property", "value": 9, "datasetId": "urn:ngsi-ld:Dataset:gps"},
                ],
                COLOR: [{"type": "Property", "value": {"r": 1, "g": 2}}],
            },
        },
        now=T0,
    )


def test_new_entities_get_creation_and_modification_times_everywhere() -> None:
    doc = entity()
    assert doc["createdAt"] == doc["modifiedAt"] == T0
    assert all(i["createdAt"] == T0 for i in doc["attrs"][SPEED])


def test_rules_never_mutate_their_input() -> None:
    before = entity()
    snapshot = copy.deepcopy(before)
    update_attributes(before, Fragment({SPEED: [{"type": "Property", "value": 5}]}), now=T1)
    merge_entity(before, Fragment({COLOR: [{"type": "Property", "value": {"r": None}}]}), now=T1)
    assert before == snapshot


def test_append_overwrites_unless_no_overwrite() -> None:
    fragment = Fragment({SPEED: [{"type": "Property", "value": 5}]})
    after, result = append_attributes(entity(), fragment, now=T1)
    assert after["attrs"][SPEED][0]["value"] == 5
    assert after["attrs"][SPEED][0]["createdAt"] == T0  # created once, modified now
    assert after["modifiedAt"] == T1
    kept, result = append_attributes(entity(), fragment, now=T1, no_overwrite=True)
    assert kept["attrs"][SPEED][0]["value"] == 1
    assert result.not_updated and result.not_updated[0][0] == SPEED


def test_append_with_no_overwrite_that_changes_nothing_returns_the_same_document() -> None:
    before = entity()
    after, _ = append_attributes(
        before, Fragment({SPEED: [{"type": "Property", "value": 5}]}), now=T1, no_overwrite=True
    )
    assert after is before  # the store then writes nothing


def test_update_replaces_adds_and_null_deletes_one_instance() -> None:
    fragment = Fragment(
        {
            SPEED: [
                {
                    "type": "Property",
                    "value": "urn:ngsi-ld:null",
                    "datasetId": "urn:ngsi-ld:Dataset:gps",
                }
            ],
            "urn:x:new": [{"type": "Property", "value": 1}],
        }
    )
    after, result = update_attributes(entity(), fragment, now=T1)
    assert [i.get("datasetId") for i in after["attrs"][SPEED]] == [None]
    assert after["attrs"]["urn:x:new"][0]["value"] == 1
    assert set(result.updated) == {SPEED, "urn:x:new"}


def test_update_of_scope_on_an_entity_without_scope_is_reported_not_updated() -> None:
    after, result = update_attributes(entity(), Fragment({}, scope=["/Kyoto"]), now=T1)
    assert "scope" not in after
    assert result.not_updated[0][0] == SCOPE


def test_partial_update_overwrites_only_given_members() -> None:
    after, _ = partial_update(
        entity(), SPEED, {"observedAt": "2026-11-23T00:00:00Z"}, now=T1, name="speed"
    )
    assert after["attrs"][SPEED][0]["value"] == 1
    assert after["attrs"][SPEED][0]["observedAt"] == "2026-11-23T00:00:00Z"


def test_partial_update_refuses_a_type_change_and_missing_instances() -> None:
    with pytest.raises(BadRequestData):
        partial_update(
            entity(), SPEED, {"type": "Relationship", "object": "urn:a:b"}, now=T1, name="speed"
        )
    with pytest.raises(ResourceNotFound):
        partial_update(
            entity(),
            SPEED,
            {"value": 1, "datasetId": "urn:ngsi-ld:Dataset:no"},
            now=T1,
            name="speed",
        )


def test_merge_patches_compound_values_and_deletes_with_null() -> None:
    fragment = Fragment(
        {
            COLOR: [{"type": "Property", "value": {"g": "urn:ngsi-ld:null", "b": 3}}],
            SPEED: [{"type": "Property", "value": "urn:ngsi-ld:null"}],
        }
    )
    after, _ = merge_entity(entity(), fragment, now=T1)
    assert after["attrs"][COLOR][0]["value"] == {"r": 1, "b": 3}
    assert [i.get("datasetId") for i in after["attrs"][SPEED]] == ["urn:ngsi-ld:Dataset:gps"]


def test_merge_patch_follows_rfc_7396() -> None:
    assert merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 4}}) == {
        "a": {"c": 2, "d": 4}
    }
    assert merge_patch({"a": 1}, [1, 2]) == [1, 2]


def test_delete_attribute_one_instance_or_all() -> None:
    after, _ = delete_attribute(
        entity(), SPEED, now=T1, name="speed", dataset_id="urn:ngsi-ld:Dataset:gps"
    )
    assert len(after["attrs"][SPEED]) == 1
    after, _ = delete_attribute(entity(), SPEED, now=T1, name="speed", delete_all=True)
    assert SPEED not in after["attrs"]
    with pytest.raises(ResourceNotFound):
        delete_attribute(entity(), "urn:x:none", now=T1, name="none")
