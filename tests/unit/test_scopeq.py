"""``scopeQ``: parsing, refusing malformed queries, and which scopes a query selects."""

from __future__ import annotations

import pytest
from broker.ngsild.errors import BadRequestData
from broker.ngsild.query.scopeq import (
    MAX_SCOPE_Q_DEPTH,
    MAX_SCOPE_Q_LENGTH,
    ScopeAnd,
    ScopeExpr,
    ScopeOr,
    ScopePattern,
    evaluate_scope,
    parse_scope_query,
)

MADRID = ScopePattern(("Madrid", "Gardens", "ParqueNorte"))
UNIT_C = ScopePattern(("CompanyA", "OrganizationB", "UnitC"))


@pytest.mark.parametrize(
    ("text", "tree"),
    [
        ("/Madrid/Gardens/ParqueNorte", MADRID),
        ("Madrid/Gardens/ParqueNorte", MADRID),
        ("/Madrid/+/ParqueNorte", ScopePattern(("Madrid", "+", "ParqueNorte"))),
        ("/CompanyA/#", ScopePattern(("CompanyA", "#"))),
        ("/#", ScopePattern(("#",))),
        ("/京都/伏見_2", ScopePattern(("京都", "伏見_2"))),
        ("/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC", ScopeAnd((MADRID, UNIT_C))),
        ("/Madrid/Gardens/ParqueNorte,/CompanyA/OrganizationB/UnitC", ScopeOr((MADRID, UNIT_C))),
        ("/Madrid/Gardens/ParqueNorte|/CompanyA/OrganizationB/UnitC", ScopeOr((MADRID, UNIT_C))),
        (
            "(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)|/x",
            ScopeOr((ScopeAnd((MADRID, UNIT_C)), ScopePattern(("x",)))),
        ),
        (
            "/a;/b|/c",
            ScopeOr((ScopeAnd((ScopePattern(("a",)), ScopePattern(("b",)))), ScopePattern(("c",)))),
        ),
        (" ( /a ) ", ScopePattern(("a",))),
    ],
)
def test_parses(text: str, tree: ScopeExpr) -> None:
    assert parse_scope_query(text) == tree


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "scopeQ: the scope query is empty at position 0"),
        ("/a)", "scopeQ: unexpected ')' at position 2"),
        ("(/a", "scopeQ: '(' is never closed at position 0"),
        ("(/a /b)", "scopeQ: unexpected '/' at position 4"),
        ("/a;", "scopeQ: expected a scope, found end of query at position 3"),
        ("/a,,/b", "scopeQ: expected a scope, found ',' at position 3"),
        ("/", "scopeQ: invalid scope level '' in '/' at position 1"),
        ("/a//b", "scopeQ: invalid scope level '' in '/a//b' at position 3"),
        ("/a/b/", "scopeQ: invalid scope level '' in '/a/b/' at position 5"),
        ("/#/a", "scopeQ: invalid scope level '#' in '/#/a' at position 1"),
        ("/a/b-c", "scopeQ: invalid scope level 'b-c' in '/a/b-c' at position 3"),
        ("/a/+x", "scopeQ: invalid scope level '+x' in '/a/+x' at position 3"),
    ],
)
def test_refuses_malformed_queries_saying_where(text: str, message: str) -> None:
    with pytest.raises(BadRequestData) as caught:
        parse_scope_query(text)
    assert caught.value.detail == message


def test_refuses_too_long_or_too_deep_queries() -> None:
    with pytest.raises(BadRequestData, match="longer than"):
        parse_scope_query("/a," * (MAX_SCOPE_Q_LENGTH // 3 + 1))
    depth = MAX_SCOPE_Q_DEPTH
    assert parse_scope_query("(" * depth + "/a" + ")" * depth) == ScopePattern(("a",))
    with pytest.raises(BadRequestData, match="nested deeper than"):
        parse_scope_query("(" * (depth + 1) + "/a" + ")" * (depth + 1))


ONE_SCOPE = ["/Madrid/Gardens/ParqueNorte"]
TWO_SCOPES = ["/Madrid/Gardens/ParqueNorte", "/CompanyA/OrganizationB/UnitC"]


@pytest.mark.parametrize(
    ("text", "one", "two"),
    [
        # the ETSI suite's QueryEntities 019_01_06 and 019_34 cases
        ("/Madrid/Gardens/ParqueNorte", True, True),
        ("/Madrid/+/ParqueNorte", True, True),
        ("/CompanyA/#", False, True),
        ("/#", True, True),
        ("/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC", False, True),
        ("/Madrid/Gardens/ParqueNorte,/CompanyA/OrganizationB/UnitC", True, True),
        ("(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)", False, True),
        (
            "(/Madrid/Gardens/ParqueNorte;/CompanyA/OrganizationB/UnitC)|/Madrid/Gardens/ParqueNorte",
            True,
            True,
        ),
        ("/CompanyA/OrganizationB/UnitC|/Nowhere/AtAll", False, True),
        ("(/Madrid/Gardens/ParqueNorte;/Nowhere/AtAll)", False, False),
        # exact, one-level and subtree matching
        ("/Madrid", False, False),
        ("/Madrid/Gardens", False, False),
        ("/Madrid/#", True, True),
        ("/Madrid/Gardens/ParqueNorte/#", True, True),
        ("/Madrid/Gardens/ParqueNorte/Fountain/#", False, False),
        ("/Madrid/+", False, False),
        ("/+/+/+", True, True),
        ("/+/Gardens/#", True, True),
        ("/+/#", True, True),
        ("/madrid/#", False, False),
    ],
)
def test_which_entities_a_scope_query_selects(text: str, one: bool, two: bool) -> None:
    tree = parse_scope_query(text)
    assert evaluate_scope(tree, ONE_SCOPE) is one
    assert evaluate_scope(tree, TWO_SCOPES) is two


@pytest.mark.parametrize("text", ["/#", "/+/#", "/a|/#", "(/#;/#)"])
def test_entities_without_scope_never_match(text: str) -> None:
    assert not evaluate_scope(parse_scope_query(text), None)
    assert not evaluate_scope(parse_scope_query(text), [])
