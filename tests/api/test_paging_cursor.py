"""Keyset paging behind ``rel="next"`` (``broker.api.cursors``): a client following the links
sees exactly the pages ``offset`` gives, on a real SQLite store; a cursor sent with anything but
the query it was made for is refused."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import httpx

from tests.conftest import API, gauge

JSON = {"Content-Type": "application/json"}
_NEXT = re.compile(r'<([^>]*)>; rel="next"')


async def seed(client: httpx.AsyncClient, numbers: range) -> None:
    for n in numbers:
        body = gauge(f"urn:ngsi-ld:RiverGauge:g{n:03d}", level=n % 7)
        response = await client.post(f"{API}/entities", json=body, headers=JSON)
        assert response.status_code == 201, response.text


def next_link(response: httpx.Response) -> str | None:
    found = _NEXT.search(response.headers.get("link", ""))
    return None if found is None else found.group(1)


def next_params(response: httpx.Response) -> dict[str, list[str]]:
    """The query parameters of a page's ``rel="next"`` link, which it must have."""
    link = next_link(response)
    assert link is not None
    return parse_qs(urlsplit(link).query)


async def follow(client: httpx.AsyncClient, params: dict[str, str]) -> list[list[str]]:
    """The pages a client sees starting at page 1 and following ``rel="next"``."""
    pages = []
    response = await client.get(f"{API}/entities", params=params)
    while True:
        assert response.status_code == 200, response.text
        pages.append([entity["id"] for entity in response.json()])
        link = next_link(response)
        if link is None:
            return pages
        response = await client.get(link)


async def by_offset(client: httpx.AsyncClient, params: dict[str, str]) -> list[list[str]]:
    """The same walk by ``offset``, as a client computing offsets itself."""
    pages, limit = [], int(params["limit"])
    while True:
        response = await client.get(
            f"{API}/entities", params={**params, "offset": str(len(pages) * limit)}
        )
        assert response.status_code == 200, response.text
        pages.append([entity["id"] for entity in response.json()])
        if len(pages[-1]) < limit:
            return pages


QUERIES = [
    {"type": "RiverGauge", "limit": "4"},  # exact SQL
    {"type": "RiverGauge", "q": "level>2", "limit": "3"},  # numeric q vouched by SQL
    {"type": "RiverGauge", "q": 'alert=="none";level<5', "limit": "4"},  # the evaluator decides
    {"type": "RiverGauge", "attrs": "level", "limit": "5", "options": "keyValues"},
    {"q": "level>=1", "limit": "4", "orderBy": "level;desc"},  # orderBy: pages by offset
    {"type": "RiverGauge", "limit": "6", "count": "true"},
]


async def test_following_next_links_sees_the_pages_offset_gives(
    client: httpx.AsyncClient,
) -> None:
    await seed(client, range(23))
    for params in QUERIES:
        followed = await follow(client, params)
        assert followed == await by_offset(client, params), params
        assert sum(len(page) for page in followed) > 2 * int(params["limit"]), params


async def test_next_links_carry_offset_limit_and_a_cursor_only_in_insertion_order(
    client: httpx.AsyncClient,
) -> None:
    await seed(client, range(5))
    first = await client.get(f"{API}/entities", params={"type": "RiverGauge", "limit": 2})
    params = next_params(first)
    assert params["offset"] == ["2"] and params["limit"] == ["2"] and "cursor" in params
    second = await client.get(next_link(first) or "")
    assert 'rel="prev"' in second.headers["link"]
    prev = re.search(r'<([^>]*)>; rel="prev"', second.headers["link"])
    assert prev is not None and "cursor" not in prev.group(1) and "offset=0" in prev.group(1)
    later = next_params(second)
    assert later["offset"] == ["4"] and later["cursor"] != params["cursor"]
    ordered = await client.get(
        f"{API}/entities", params={"type": "RiverGauge", "limit": 2, "orderBy": "level"}
    )
    assert "cursor" not in next_params(ordered)


async def test_a_cursor_for_another_query_or_offset_or_no_cursor_is_bad_request_data(
    client: httpx.AsyncClient,
) -> None:
    await seed(client, range(6))
    first = await client.get(f"{API}/entities", params={"type": "RiverGauge", "limit": 2})
    link = next_link(first)
    assert link is not None
    cursor = parse_qs(urlsplit(link).query)["cursor"][0]
    base = {"type": "RiverGauge", "limit": "2", "cursor": cursor}
    for params in (
        {**base, "offset": "2", "q": "level>1"},  # another query
        {**base, "offset": "2", "type": "Bridge"},
        {**base, "offset": "4"},  # another offset
        {**base},  # no offset: 0
        {**base, "offset": "2", "cursor": "not-a-cursor"},
        {**base, "offset": "2", "cursor": cursor[:-3]},
    ):
        response = await client.get(f"{API}/entities", params=params)
        assert response.status_code == 400, params
        assert response.json()["type"].endswith("/BadRequestData"), params
    # Another tenant's cursor does not fit either.
    other = await client.get(
        f"{API}/entities", params={**base, "offset": "2"}, headers={"NGSILD-Tenant": "t2"}
    )
    assert other.status_code == 400
    # Another page size does: the position does not depend on it.
    wider = await client.get(f"{API}/entities", params={**base, "offset": "2", "limit": "3"})
    assert [e["id"] for e in wider.json()] == [
        f"urn:ngsi-ld:RiverGauge:g{n:03d}" for n in (2, 3, 4)
    ]


async def test_a_walk_by_links_neither_skips_nor_repeats_while_entities_come_and_go(
    client: httpx.AsyncClient,
) -> None:
    """What happens under concurrent writes: a link walk resumes after the last entity it
    showed, so deleting entities it has passed skips nothing (an offset walk would skip as
    many entities as were deleted before its offset) and entities created meanwhile, which
    come last in insertion order, are seen at the end."""
    await seed(client, range(10))
    params = {"type": "RiverGauge", "limit": "3"}
    first = await client.get(f"{API}/entities", params=params)
    seen = [entity["id"] for entity in first.json()]
    for entity_id in seen[:2]:
        assert (await client.delete(f"{API}/entities/{entity_id}")).status_code == 204
    await seed(client, range(10, 12))
    link = next_link(first)
    while link is not None:
        response = await client.get(link)
        assert response.status_code == 200, response.text
        seen += [entity["id"] for entity in response.json()]
        link = next_link(response)
    assert seen == [f"urn:ngsi-ld:RiverGauge:g{n:03d}" for n in range(12)]
    offset_second = await client.get(f"{API}/entities", params={**params, "offset": "3"})
    # By offset, the second page now starts two entities later: g003 and g004 are never seen.
    assert offset_second.json()[0]["id"] == "urn:ngsi-ld:RiverGauge:g005"


async def test_a_page_that_cannot_resume_links_to_the_plain_next_offset(
    client: httpx.AsyncClient,
) -> None:
    # With a count, orderBy or near the store needs every match anyway, so the link carries
    # no cursor: it is the plain link clients and the ETSI suite (019_31) compare with.
    await seed(client, range(5))
    for extra in ({"count": "true"}, {"orderBy": "level"}):
        params = {"type": "RiverGauge", "limit": "2", **extra}
        query = next_params(await client.get(f"{API}/entities", params=params))
        assert "cursor" not in query, extra
        assert query["offset"] == ["2"] and query["limit"] == ["2"]
    plain = await client.get(f"{API}/entities", params={"type": "RiverGauge", "limit": "2"})
    assert "cursor" in next_params(plain)
