"""Change-stream events → cache changes (``broker.store.mongo_changes``), on events shaped as
MongoDB's manual documents them (``operationType``, ``ns``, ``documentKey``,
``fullDocument``)."""

from __future__ import annotations

from typing import Any

import orjson
from broker.store.mongo_changes import (
    RecordChange,
    Reload,
    after_error,
    record_change,
    record_pipeline,
)

TENANTS = {"toshi": "", "toshi-t-kyoto": "kyoto"}
KEY = {"k": "subscription", "n": "urn:ngsi-ld:Subscription:1"}


def event(operation: str, db: str = "toshi-t-kyoto", **extra: Any) -> dict[str, Any]:
    return {"operationType": operation, "ns": {"db": db, "coll": "records"}, **extra}


def test_inserts_replacements_and_updates_carry_the_record_as_it_now_is() -> None:
    doc = {"id": KEY["n"], "q": "level>2"}
    full = {"_id": KEY, "doc": orjson.dumps(doc), "seq": 7}
    for operation in ("insert", "replace", "update"):
        change = record_change(
            event(operation, documentKey={"_id": KEY}, fullDocument=full), TENANTS
        )
        assert change == RecordChange("kyoto", "subscription", KEY["n"], doc)


def test_a_delete_is_known_by_its_key_alone() -> None:
    change = record_change(event("delete", "toshi", documentKey={"_id": KEY}), TENANTS)
    assert change == RecordChange("", "subscription", KEY["n"], None)


def test_an_update_whose_record_vanished_before_the_lookup_waits_for_its_delete() -> None:
    gone = event("update", documentKey={"_id": KEY}, fullDocument=None)
    assert record_change(gone, TENANTS) is None


def test_other_databases_collections_and_entities_are_ignored() -> None:
    assert record_change(event("insert", "other", documentKey={"_id": KEY}), TENANTS) is None
    entities = {**event("insert"), "ns": {"db": "toshi", "coll": "entities"}}
    assert record_change({**entities, "documentKey": {"_id": "urn:x"}}, TENANTS) is None


def test_dropped_tenants_and_invalidated_streams_reload() -> None:
    assert record_change(event("dropDatabase"), TENANTS) == Reload("kyoto")
    assert record_change({"operationType": "invalidate"}, TENANTS) == Reload(None)
    assert record_change(event("dropDatabase", "other"), TENANTS) is None


def test_a_lost_history_means_reloading_everything() -> None:
    assert after_error(286) == "reload"  # ChangeStreamHistoryLost
    assert after_error(280) == "reload"  # ChangeStreamFatalError
    assert after_error(None) == after_error(6) == "resume"  # network trouble: resume


def test_the_pipeline_selects_the_cached_kinds_by_the_record_key() -> None:
    (stage,) = record_pipeline(["subscription", "registration"])
    records, reloads = stage["$match"]["$or"]
    assert records["documentKey._id.k"] == {"$in": ["subscription", "registration"]}
    assert "delete" in records["operationType"]["$in"]
    assert "dropDatabase" in reloads["operationType"]["$in"]
