"""Entity type expressions of the ``type`` parameter (GS CIM 009 v1.8.1 §4.17).

``A,B`` and ``A|B`` mean either type; ``A;B`` means both; parentheses group. An expression is
kept in disjunctive normal form: a tuple of alternatives, each the set of type IRIs an entity must
all have. DNF makes the two uses cheap: the evaluator checks "some alternative is a subset of the
entity's types", and stores narrow by an index with the union of all named types (every matching
entity has at least one of them).
"""

from __future__ import annotations

from collections.abc import Callable

from broker.ngsild.errors import BadRequestData

TypeExpr = tuple[frozenset[str], ...]
"""Alternatives (OR) of type sets (AND)."""

_MAX_LENGTH = 2000
_MAX_DEPTH = 10
_OPERATORS = frozenset(",|;()")


def parse_type_expression(text: str, expand: Callable[[str], str]) -> TypeExpr:
    """Parse ``text`` into DNF, expanding each type name with ``expand``."""
    if len(text) > _MAX_LENGTH:
        raise BadRequestData(f"type: expression longer than {_MAX_LENGTH} characters")
    tokens = _tokens(text)
    expr, position = _disjunction(tokens, 0, expand, 0)
    if position != len(tokens):
        raise BadRequestData(f"type: unexpected {tokens[position]!r} in {text!r}")
    return expr


def type_names(expr: TypeExpr) -> tuple[str, ...]:
    """Every type named in the expression, sorted: a superset filter for indexes."""
    return tuple(sorted(frozenset().union(*expr)))


def is_plain(expr: TypeExpr) -> bool:
    """Whether the expression is a plain list of alternatives (no ``;``)."""
    return all(len(alternative) == 1 for alternative in expr)


def matches_types(expr: TypeExpr, entity_types: list[str]) -> bool:
    """Whether an entity with ``entity_types`` satisfies the expression."""
    have = set(entity_types)
    return any(alternative <= have for alternative in expr)


def _tokens(text: str) -> list[str]:
    tokens: list[str] = []
    name: list[str] = []
    for char in text:
        if char in _OPERATORS:
            if name:
                tokens.append("".join(name).strip())
                name = []
            tokens.append(char)
        else:
            name.append(char)
    if name:
        tokens.append("".join(name).strip())
    return tokens


def _disjunction(
    tokens: list[str], position: int, expand: Callable[[str], str], depth: int
) -> tuple[TypeExpr, int]:
    alternatives, position = _conjunction(tokens, position, expand, depth)
    result = list(alternatives)
    while position < len(tokens) and tokens[position] in (",", "|"):
        more, position = _conjunction(tokens, position + 1, expand, depth)
        result.extend(more)
    return tuple(dict.fromkeys(result)), position


def _conjunction(
    tokens: list[str], position: int, expand: Callable[[str], str], depth: int
) -> tuple[TypeExpr, int]:
    expr, position = _term(tokens, position, expand, depth)
    while position < len(tokens) and tokens[position] == ";":
        right, position = _term(tokens, position + 1, expand, depth)
        # (a|b);(c|d) = a;c | a;d | b;c | b;d
        expr = tuple(left | other for left in expr for other in right)
    return expr, position


def _term(
    tokens: list[str], position: int, expand: Callable[[str], str], depth: int
) -> tuple[TypeExpr, int]:
    if position >= len(tokens):
        raise BadRequestData("type: the expression ends where a type name was expected")
    item = tokens[position]
    if item == "(":
        if depth >= _MAX_DEPTH:
            raise BadRequestData(f"type: parentheses nested deeper than {_MAX_DEPTH}")
        expr, position = _disjunction(tokens, position + 1, expand, depth + 1)
        if position >= len(tokens) or tokens[position] != ")":
            raise BadRequestData("type: a '(' is not closed")
        return expr, position + 1
    if item in _OPERATORS or not item:
        raise BadRequestData(f"type: expected a type name, found {item!r}")
    return (frozenset({expand(item)}),), position + 1
