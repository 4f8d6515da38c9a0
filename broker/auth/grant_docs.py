"""Grants in and out: the admin API's JSON, and the lossless records stores keep (pure).

A grant is created with names the admin's @context expands, exactly as a query is, by the same
parsers the API uses for ``type``, ``attrs``, ``q`` and ``geoQ``::

    {"grantee": {"tenant": "kagawa"}  |  {"issuer": "https://id…", "subject": "…"},
     "permissions": ["read", "subscribe"],
     "types": ["WaterLevelObserved"], "attrs": ["waterLevel", "location"],
     "q": "status==\\"public\\"", "geoQ": {"georel": "within", "geometry": "Polygon", …}}

Records keep expanded IRIs (``q`` printed with IRIs, ``geoQ`` as its parameters), so reading them
back needs no @context.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from broker.auth.grants import Grant, Grantee, Permission, Selection
from broker.auth.principal import principal_id
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_name
from broker.ngsild.query.geo import geo_to_params, parse_geo_object
from broker.ngsild.query.params import attribute_names
from broker.ngsild.query.qlang import link_depth, parse_q, to_text
from broker.ngsild.tenants import tenant_from_header
from broker.ngsild.terms import TermTable


def _same(name: str) -> str:
    return name


def parse_request(body: Any, terms: TermTable) -> tuple[Grantee, frozenset[Permission], Selection]:
    """The grantee, permissions and selection of a create-grant request body.

    Raises:
        BadRequestData: a member is missing or not valid.
    """
    if not isinstance(body, dict):
        raise BadRequestData("a grant must be a JSON object")
    return (
        _grantee(body.get("grantee")),
        _permissions(body.get("permissions")),
        _selection(body, terms),
    )


def _grantee(raw: Any) -> Grantee:
    if isinstance(raw, dict) and isinstance(raw.get("tenant"), str):
        return Grantee(tenant=tenant_from_header(raw["tenant"]))
    if isinstance(raw, dict) and isinstance(raw.get("issuer"), str) and raw.get("subject"):
        return Grantee(principal=principal_id(raw["issuer"], str(raw["subject"])))
    raise BadRequestData('\'grantee\' must be {"tenant": …} or {"issuer": …, "subject": …}')


def _permissions(raw: Any) -> frozenset[Permission]:
    if raw is None:
        return frozenset({Permission.READ})
    if not isinstance(raw, list) or not all(item in set(Permission) for item in raw):
        raise BadRequestData("'permissions' must be a list of 'read' and 'subscribe'")
    # Subscribing to entities means being notified of them: it includes reading them.
    return frozenset({Permission.READ, *map(Permission, raw)})


def _selection(body: dict[str, Any], terms: TermTable) -> Selection:
    types = body.get("types")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise BadRequestData("'types' must be a non-empty list of entity types")
    attrs = body.get("attrs")
    if attrs is not None and (
        not isinstance(attrs, list) or not all(isinstance(a, str) for a in attrs)
    ):
        raise BadRequestData("'attrs' must be a list of attribute names")
    q = body.get("q")
    if q is not None and not isinstance(q, str):
        raise BadRequestData("'q' must be a string in the NGSI-LD query language")
    parsed_q = None if q is None else parse_q(q, terms.expand)
    if parsed_q is not None and link_depth(parsed_q) > 0:
        raise BadRequestData("a grant's q cannot follow Relationships to other entities")
    return Selection(
        types=frozenset(terms.expand(check_name(name, "entity type")) for name in types),
        attrs=None if attrs is None else frozenset(attribute_names(attrs, terms)),
        q=parsed_q,
        geo=None if body.get("geoQ") is None else parse_geo_object(body["geoQ"], terms.expand),
    )


def to_doc(grant: Grant) -> dict[str, Any]:
    """The record of ``grant`` (expanded IRIs throughout)."""
    return _document(grant, _same)


def from_doc(doc: dict[str, Any]) -> Grant:
    """The grant a record holds (``KeyError``/``BadRequestData`` if it is damaged)."""
    raw = doc["grantee"]
    grantee = Grantee(tenant=raw["tenant"]) if "tenant" in raw else Grantee(principal=raw["id"])
    selection = Selection(
        types=frozenset(doc["types"]),
        attrs=None if doc.get("attrs") is None else frozenset(doc["attrs"]),
        q=None if doc.get("q") is None else parse_q(doc["q"], _same),
        geo=None if doc.get("geoQ") is None else parse_geo_object(doc["geoQ"], _same),
    )
    permissions = frozenset(map(Permission, doc["permissions"]))
    return Grant(
        doc["id"], doc["owner"], grantee, permissions, selection, doc["createdBy"], doc["createdAt"]
    )


def render(grant: Grant, terms: TermTable) -> dict[str, Any]:
    """``grant`` as the admin API shows it, names compacted with ``terms``."""
    return _document(grant, terms.compact)


def _document(grant: Grant, compact: Callable[[str], str]) -> dict[str, Any]:
    selection = grant.selection
    grantee = grant.grantee
    doc: dict[str, Any] = {
        "id": grant.id,
        "owner": grant.owner,
        "grantee": {"tenant": grantee.tenant} if grantee.tenant is not None else _named(grantee),
        "permissions": sorted(grant.permissions),
        "types": sorted(compact(name) for name in selection.types),
    }
    if selection.attrs is not None:
        doc["attrs"] = sorted(compact(name) for name in selection.attrs)
    if selection.q is not None:
        doc["q"] = to_text(selection.q, compact)
    if selection.geo is not None:
        doc["geoQ"] = geo_to_params(selection.geo, compact)
    return doc | {"createdBy": grant.created_by, "createdAt": grant.created_at}


def _named(grantee: Grantee) -> dict[str, str]:
    assert grantee.principal is not None
    issuer, _, subject = grantee.principal.partition(" ")
    return {"id": grantee.principal, "issuer": issuer, "subject": subject}
