"""Query parameters of ``GET /entities`` → ``EntityQuery`` (GS CIM 009 v1.8.1 §6.4.3.2)."""

from __future__ import annotations

from broker.ngsild.errors import BadRequestData, TooManyResults
from broker.ngsild.names import check_uri
from broker.ngsild.params import expand_names, split_list
from broker.ngsild.query.model import EntityQuery, compile_pattern
from broker.ngsild.terms import TermTable


def parse_entity_query(
    terms: TermTable,
    *,
    types: str | None = None,
    ids: str | None = None,
    id_pattern: str | None = None,
    attrs: str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    count: bool = False,
    default_limit: int = 20,
    max_limit: int = 1000,
) -> EntityQuery:
    """Validate and expand the parameters; at least one filter must be present."""
    if types is None and ids is None and id_pattern is None and attrs is None:
        raise BadRequestData("a query needs at least one of type, id, idPattern, attrs, q or geoQ")
    type_names = split_list(types)
    id_list = split_list(ids)
    attr_names = split_list(attrs)
    if id_pattern is not None:
        compile_pattern(id_pattern)
    page_size = default_limit if limit is None else limit
    if page_size < 0 or (offset or 0) < 0:
        raise BadRequestData("limit and offset must not be negative")
    if page_size > max_limit:
        raise TooManyResults(f"limit {page_size} is over the maximum of {max_limit}")
    if page_size == 0 and not count:
        raise BadRequestData("limit=0 is only allowed together with options=count")
    return EntityQuery(
        types=None if type_names is None else tuple(sorted(expand_names(type_names, terms))),
        ids=None if id_list is None else tuple(check_uri(i, "entity id") for i in id_list),
        id_pattern=id_pattern,
        attrs=None if attr_names is None else tuple(sorted(expand_names(attr_names, terms))),
        limit=page_size,
        offset=offset or 0,
        count=count,
    )
