"""The pure rules of context source registrations: validation, matching, conflicts,
distribution plans and the merge of distributed answers (issue 14)."""

from __future__ import annotations

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.errors import BadRequestData
from broker.ngsild.registrations.distribution import (
    looped,
    outgoing_headers,
    plan_reads,
    plan_writes,
    renamed_body,
    renamed_path,
    split_local,
    via_value,
)
from broker.ngsild.registrations.documents import from_doc, render_registration, to_doc
from broker.ngsild.registrations.matching import Target, overlapping, registration_matches
from broker.ngsild.registrations.merge import LOCAL, merge_entities, merge_lists
from broker.ngsild.registrations.registration import Registration, apply_patch, parse_registration
from broker.ngsild.terms import build_term_table

NOW = "2026-06-01T00:00:00.000Z"
CORE_URL = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
CORE = build_term_table(None, CORE_URL, builtin_documents())
V = "https://uri.etsi.org/ngsi-ld/default-context/"
AGENT = build_term_table(
    {"s": "https://example.org/sluice#", "Sluice": "s:Sluice", "open": "s:open"},
    CORE_URL,
    builtin_documents(),
)
APP = build_term_table(
    {"s": "https://example.org/sluice#", "Gate": "s:Sluice", "aperture": "s:open"},
    CORE_URL,
    builtin_documents(),
)


def reg(**members: object) -> Registration:
    body = {
        "id": "urn:r:1",
        "type": "ContextSourceRegistration",
        "information": [{"entities": [{"type": "Gauge"}]}],
        "endpoint": "http://town.example",
        **members,
    }
    return parse_registration(body, CORE, now=NOW)


def exclusive(
    entity_id: str, *attrs: str, reg_id: str = "urn:r:x", mode: str = "exclusive", **more: object
) -> Registration:
    return reg(
        id=reg_id,
        mode=mode,
        **more,
        information=[
            {"entities": [{"type": "Gauge", "id": entity_id}], "propertyNames": list(attrs)}
        ],
    )


def test_names_are_expanded_and_rendered_back_and_documents_round_trip() -> None:
    parsed = reg(information=[{"entities": [{"type": "Gauge"}], "propertyNames": ["level"]}])
    assert parsed.information[0].entities[0].type == V + "Gauge"
    assert parsed.information[0].property_names == (V + "level",)
    assert from_doc(to_doc(parsed)) == parsed
    shown = render_registration(parsed, CORE)
    assert shown["information"] == [{"entities": [{"type": "Gauge"}], "propertyNames": ["level"]}]
    assert "status" not in shown  # nothing was forwarded yet


@pytest.mark.parametrize(
    "members",
    [
        {"information": []},
        {"information": [{}]},
        {"endpoint": "not a uri"},
        {"mode": "sideways"},
        {"operations": ["fly"]},
        {"expiresAt": "2001-01-01T00:00:00Z"},
        {"management": {"cooldown": 0}},
        {"management": {"cacheDuration": "soon"}},
        {"management": {"localOnly": "yes"}},
        {"contextSourceInfo": [{"key": "X"}]},
        {"mode": "auxiliary", "operations": ["redirectionOps"]},
        {"mode": "exclusive"},  # no attributes named
    ],
)
def test_invalid_registrations_are_refused(members: dict) -> None:
    with pytest.raises(BadRequestData):
        reg(**members)


def test_an_update_keeps_what_it_does_not_name_and_null_removes() -> None:
    before = reg(registrationName="town", expiresAt="2099-01-01T00:00:00Z")
    after = apply_patch(before, {"expiresAt": None, "endpoint": "http://b.example"}, CORE, now=NOW)
    assert after.expires_at is None
    assert after.endpoint == "http://b.example"
    assert after.name == "town"
    with pytest.raises(BadRequestData):
        apply_patch(before, {"endpoint": None}, CORE, now=NOW)


def test_matching_by_id_type_pattern_and_attributes() -> None:
    plain = reg()
    assert registration_matches(plain, Target(ids=("urn:g:1",)))  # type unknown: may hold it
    assert not registration_matches(plain, Target(types=frozenset({V + "Rain"})))
    pattern = reg(information=[{"entities": [{"type": "Gauge", "idPattern": "^urn:g:a"}]}])
    assert registration_matches(pattern, Target(ids=("urn:g:a1",)))
    assert not registration_matches(pattern, Target(ids=("urn:g:b1",)))
    named = exclusive("urn:g:1", "level")
    assert registration_matches(named, Target(ids=("urn:g:1",), attrs=frozenset({V + "level"})))
    assert not registration_matches(named, Target(ids=("urn:g:1",), attrs=frozenset({V + "x"})))


def test_overlapping_exclusive_and_redirect_registrations_conflict() -> None:
    first = exclusive("urn:g:1", "level")
    assert overlapping(exclusive("urn:g:1", "level", reg_id="urn:r:2"), [first]) is first
    assert overlapping(exclusive("urn:g:1", "flow", reg_id="urn:r:2"), [first]) is None
    redirect = exclusive("urn:g:1", "level", reg_id="urn:r:3", mode="redirect")
    assert overlapping(redirect, [first]) is first
    other_redirect = exclusive("urn:g:1", "level", reg_id="urn:r:4", mode="redirect")
    assert overlapping(other_redirect, [redirect]) is None  # redirects may overlap


def test_reads_are_narrowed_to_what_the_source_registered() -> None:
    source = exclusive("urn:g:1", "level")
    (forward,) = plan_reads([source], Target(types=frozenset({V + "Gauge"})), "queryEntity")
    assert forward.attrs == frozenset({V + "level"})
    assert forward.ids == ("urn:g:1",)
    updates_only = reg(operations=["updateOps"])
    assert plan_reads([updates_only], Target(ids=("urn:g:1",)), "retrieveEntity") == []
    batch_only = reg(operations=["queryBatch"])
    (other,) = plan_reads([batch_only], Target(ids=("urn:g:1",)), "retrieveEntity")
    assert other.operation == "queryBatch"


def test_writes_go_to_exclusive_redirect_and_inclusive_sources_never_auxiliary() -> None:
    target = Target(ids=("urn:g:1",), attrs=frozenset({V + "level", V + "name"}))
    owner = exclusive("urn:g:1", "level", operations=["updateOps"])
    assert plan_writes([exclusive("urn:g:1", "level")], target, "updateAttrs") == []  # not offered
    aux = reg(id="urn:r:aux", mode="auxiliary", operations=["retrieveOps"])
    forwards = plan_writes([owner, aux], target, "updateAttrs")
    assert [f.registration.id for f in forwards] == ["urn:r:x"]
    split = split_local(forwards)
    assert split.local and split.withheld == frozenset({V + "level"})
    redirect = reg(id="urn:r:red", mode="redirect", operations=["redirectionOps"])
    assert not split_local(plan_writes([redirect], target, "updateAttrs")).local


def test_context_source_info_headers_tenant_and_via() -> None:
    source = reg(
        tenant="kamo",
        contextSourceInfo=[
            {"key": "Authorization", "value": "Bearer t"},
            {"key": "user", "value": "urn:ngsi-ld:request"},
            {"key": "NGSILD-Tenant", "value": "evil"},
            {"key": "Via", "value": "1.1 evil"},
        ],
    )
    headers = outgoing_headers(source, {"user": "abcd"}, via=via_value("1.1 app", "toshi-p"))
    assert headers == {
        "Authorization": "Bearer t",
        "user": "abcd",
        "NGSILD-Tenant": "kamo",
        "Via": "1.1 app, 1.1 toshi-p",
    }
    assert looped("1.1 toshi-a, 1.1 toshi-p", "toshi-p")
    assert not looped("1.1 toshi-pp", "toshi-p")


def test_without_a_registered_tenant_the_request_tenant_is_forwarded() -> None:
    # A FIWARE IoT Agent registers without ``tenant``, in the tenant named after its service.
    agent = reg(contextSourceInfo=[{"key": "jsonldContext", "value": "https://x/c.jsonld"}])
    assert outgoing_headers(agent, {}, via="1.1 p", tenant="osaka") == {
        "NGSILD-Tenant": "osaka",
        "Via": "1.1 p",
    }
    assert outgoing_headers(agent, {}, via="1.1 p", tenant="") == {"Via": "1.1 p"}
    assert outgoing_headers(reg(tenant="kamo"), {}, via="1.1 p", tenant="osaka") == {
        "NGSILD-Tenant": "kamo",
        "Via": "1.1 p",
    }


def instance(value: float, observed: str | None = None, dataset: str | None = None) -> dict:
    item: dict = {"type": "Property", "value": value}
    if observed is not None:
        item["observedAt"] = observed
    if dataset is not None:
        item["datasetId"] = dataset
    return item


def entity(**attrs: list[dict]) -> dict:
    return {"id": "urn:g:1", "type": [V + "Gauge"], "attrs": {V + k: v for k, v in attrs.items()}}


def test_merge_by_dataset_id_most_recent_observed_at_and_precedence() -> None:
    local = entity(level=[instance(1, "2026-01-01T00:00:00Z")], name=[instance(7)])
    inclusive = entity(
        level=[instance(2, "2026-02-01T00:00:00Z"), instance(9, dataset="urn:d:b")],
        name=[instance(8)],
    )
    auxiliary = entity(name=[instance(5)], flow=[instance(3)])
    merged = merge_entities([("auxiliary", auxiliary), ("inclusive", inclusive), (LOCAL, local)])
    assert merged is not None
    attrs = merged["attrs"]
    assert [i["value"] for i in attrs[V + "level"]] == [2, 9]  # newer wins; other dataset kept
    assert [i["value"] for i in attrs[V + "name"]] == [7]  # no observedAt: local wins
    assert [i["value"] for i in attrs[V + "flow"]] == [3]  # auxiliary fills in only


def test_merged_lists_keep_first_appearance_order() -> None:
    one, two = entity(level=[instance(1)]), {**entity(), "id": "urn:g:2"}
    merged = merge_lists([("inclusive", [two, one]), (LOCAL, [one])])
    assert [doc["id"] for doc in merged] == ["urn:g:1", "urn:g:2"]


def test_a_forwarded_write_is_renamed_into_the_sources_context() -> None:
    assert renamed_path("/entities/urn:g:1/attrs/aperture", APP, AGENT) == (
        "/entities/urn:g:1/attrs/open"
    )
    assert renamed_path("/entities/urn:g:1/attrs", APP, AGENT) == "/entities/urn:g:1/attrs"
    entity = {"id": "urn:g:1", "type": "Gate", "aperture": {"value": 1}, "note": {"value": 2}}
    assert renamed_body(entity, APP, AGENT, entity=True) == {
        "id": "urn:g:1",
        "type": "Sluice",
        "open": {"value": 1},
        "note": {"value": 2},  # the same default-context IRI in both
    }
    assert renamed_body([entity], APP, AGENT, entity=True)[0]["type"] == "Sluice"
    # The one attribute of an .../attrs/{attrId} path keeps its members as they are.
    attribute = {"type": "Property", "value": 1}
    assert renamed_body(attribute, APP, AGENT, entity=False) == attribute
