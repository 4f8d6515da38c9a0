"""The pure parts of batch operations: body shape, member @context rules, the result document."""

from __future__ import annotations

import pytest
from broker.ngsild.batch import (
    BatchResult,
    Entry,
    Outcome,
    Refused,
    batch_ids,
    batch_members,
    entity_error,
    member_context,
    member_id,
    not_overwritten,
    target_id,
)
from broker.ngsild.errors import AlreadyExists, BadRequestData, ResourceNotFound
from broker.ngsild.patch import UpdateResult

A, B, C = "urn:ngsi-ld:T:a", "urn:ngsi-ld:T:b", "urn:ngsi-ld:T:c"


@pytest.mark.parametrize("body", [[], {}, "x", None, 3, [{"id": A}, None], [{"id": A}, [1]]])
def test_an_entity_batch_is_a_non_empty_array_of_objects(body: object) -> None:
    with pytest.raises(BadRequestData):
        batch_members(body)


def test_entity_batch_members_come_back_in_order() -> None:
    assert batch_members([{"id": B}, {"id": A}]) == [{"id": B}, {"id": A}]


def test_delete_batch_ids_that_are_not_uris_fail_alone() -> None:
    entries = batch_ids([A, "not a uri", B])
    assert entries[0] == Entry(A, None) and entries[2] == Entry(B, None)
    refused = entries[1]
    assert isinstance(refused, Refused) and refused.entity_id == "not a uri"
    assert isinstance(refused.error, BadRequestData)
    for body in ([], [A, None], [A, {"id": B}], A):
        with pytest.raises(BadRequestData):
            batch_ids(body)


def test_member_ids() -> None:
    assert member_id({"id": A}) == A and member_id({"@id": B}) == B
    assert member_id({"id": 5}) is None and member_id({}) is None
    assert target_id({"id": A, "x": 1}) == A
    for member in ({"x": 1}, {"id": "relative"}, {"id": 5}):
        with pytest.raises(BadRequestData):
            target_id(member)


def test_member_context_follows_the_content_type() -> None:
    assert member_context({"id": A, "@context": "http://c"}, in_body=True) == "http://c"
    assert member_context({"id": A}, in_body=False) is None
    with pytest.raises(BadRequestData):
        member_context({"id": A}, in_body=True)
    with pytest.raises(BadRequestData):
        member_context({"id": A, "@context": "http://c"}, in_body=False)


def test_result_lists_each_successful_entity_once_and_every_failure() -> None:
    outcomes = [
        Outcome(A, created=True),
        Outcome(B),
        Outcome(A, AlreadyExists("again")),
        Outcome(A),
        Outcome(None, BadRequestData("no id")),
        Outcome(C, created=True),
    ]
    result = BatchResult.of(outcomes)
    assert result.success == [A, B, C]
    assert result.created == [A, C]
    assert not result.complete
    assert [e["entityId"] for e in result.errors] == [A, None]
    assert result.document() == {"success": [A, B, C], "errors": result.errors}
    assert BatchResult.of([Outcome(B)]).complete


def test_entity_error_carries_the_problem_details() -> None:
    error = entity_error(A, ResourceNotFound(f"entity {A} does not exist"))
    assert error == {
        "entityId": A,
        "error": {
            "type": "https://uri.etsi.org/ngsi-ld/errors/ResourceNotFound",
            "title": "Resource not found",
            "detail": f"entity {A} does not exist",
            "status": 404,
        },
    }


def test_not_overwritten_names_the_attributes_kept() -> None:
    kept = UpdateResult(updated=["https://e.org/new"])
    kept.not_updated.append(("https://e.org/level", "the attribute exists"))
    error = not_overwritten(A, kept, None)
    assert isinstance(error, AlreadyExists)
    assert "https://e.org/level" in error.detail
    assert error.problem()["notUpdated"] == [
        {"attributeName": "https://e.org/level", "reason": "the attribute exists"}
    ]
