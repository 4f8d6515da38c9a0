"""The @context store's pure rules: what Add accepts, how hosted URLs are recognised, details."""

from __future__ import annotations

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.errors import BadRequestData, InvalidRequest
from broker.ngsild.jsonld_contexts import (
    ContextInfo,
    Kind,
    cached_id,
    hosted_document,
    hosted_id,
    hosted_url,
    parse_kind,
)
from broker.ngsild.terms import MissingContext, build_term_table

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"


@pytest.mark.parametrize(
    "context",
    [
        {"level": "https://example.org/city#level"},
        "https://contexts.example.org/city.jsonld",
        ["https://contexts.example.org/city.jsonld", {"x": "urn:x"}],
    ],
)
def test_add_keeps_only_the_context_member(context: object) -> None:
    assert hosted_document({"@context": context, "other": 1}) == {"@context": context}


@pytest.mark.parametrize("body", [[{"@context": {}}], {"level": "urn:level"}, "text", None])
def test_a_body_without_a_context_member_is_an_invalid_request(body: object) -> None:
    with pytest.raises(InvalidRequest):
        hosted_document(body)


@pytest.mark.parametrize("context", [42, True, None, [], ["urn:x", 7], "", [["urn:x"]]])
def test_a_context_member_that_is_no_json_ld_context_is_bad_request_data(context: object) -> None:
    with pytest.raises(BadRequestData):
        hosted_document({"@context": context})


@pytest.mark.parametrize(
    ("url", "local_id"),
    [
        ("http://127.0.0.1:1026/ngsi-ld/v1/jsonldContexts/abc", "abc"),
        ("https://broker.town.example/ngsi-ld/v1/jsonldContexts/abc?details=true", "abc"),
        ("http://localhost:9090/ngsi-ld/v1/jsonldContexts/a%2Db", "a-b"),
        ("/ngsi-ld/v1/jsonldContexts/abc", "abc"),
        ("http://toshi.invalid/ngsi-ld/v1/jsonldContexts/abc", "abc"),
    ],
)
def test_the_hosted_path_names_a_local_id_whatever_the_host(url: str, local_id: str) -> None:
    assert hosted_id(url) == local_id


@pytest.mark.parametrize(
    "url",
    [
        "https://contexts.example.org/city.jsonld",
        "https://contexts.example.org/ngsi-ld/v1/jsonldContexts/",
        "https://contexts.example.org/ngsi-ld/v1/jsonldContexts/a/b",
        "https://contexts.example.org",
        "urn:ngsi-ld:x",
        "https://contexts.example.org/prefix/ngsi-ld/v1/jsonldContexts/abc",
    ],
)
def test_other_urls_name_no_hosted_context(url: str) -> None:
    assert hosted_id(url) is None


def test_hosted_urls_are_the_broker_url_and_the_serving_path() -> None:
    url = hosted_url("http://127.0.0.1:1026/", "abc")
    assert url == "http://127.0.0.1:1026/ngsi-ld/v1/jsonldContexts/abc"
    assert hosted_id(url) == "abc"


def test_a_relative_context_url_means_this_broker() -> None:
    with pytest.raises(MissingContext) as caught:
        build_term_table("/ngsi-ld/v1/jsonldContexts/abc", CORE, builtin_documents())
    assert hosted_id(caught.value.url) == "abc"


def test_cached_local_ids_stay_the_same_for_a_url() -> None:
    url = "https://contexts.example.org/city.jsonld"
    assert cached_id(url) == cached_id(url) != cached_id(url + "?v=2")
    assert len(cached_id(url)) == 32


def test_kind_parameter() -> None:
    assert parse_kind(None) is None
    assert parse_kind("ImplicitlyCreated") is Kind.IMPLICITLY_CREATED
    with pytest.raises(BadRequestData):
        parse_kind("hosted")


def test_details_show_usage_only_where_it_was_counted() -> None:
    hosted = ContextInfo(
        "http://b/ngsi-ld/v1/jsonldContexts/a", "a", Kind.HOSTED, "2026-01-01T00:00:00.000Z"
    )
    assert hosted.details() == {
        "URL": "http://b/ngsi-ld/v1/jsonldContexts/a",
        "localId": "a",
        "kind": "Hosted",
        "createdAt": "2026-01-01T00:00:00.000Z",
    }
    cached = ContextInfo("https://c/x", "id", Kind.CACHED, "t0", last_usage="t1", hits=0)
    assert cached.details()["numberOfHits"] == 0
    assert cached.details()["lastUsage"] == "t1"
