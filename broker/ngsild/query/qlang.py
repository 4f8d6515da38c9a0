"""The NGSI-LD Query Language ``q`` (GS CIM 009 v1.8.1 §4.9): syntax tree and printer.

Theory of operation. ``parse_q`` turns the (already URL-decoded) text into a small immutable tree
whose attribute names are expanded IRIs, so evaluators and stores never see the @context again
(the grammar and the parser are in ``qparser``); ``to_text`` prints a tree back, compacting the
names: ``parse_q(to_text(e, c), x) == e`` whenever ``c`` and ``x`` are inverse. A parenthesised
group stays a node of its own, so printing and parsing again gives back the very same tree.

A ``Path`` names the target element: an attribute (or the entity's ``createdAt``/``modifiedAt``),
then sub-attributes, then optionally a core member such as ``observedAt``, then keys into the
value. ``qeval`` gives the tree its meaning; ``required_attributes`` lets stores narrow candidates
with an attribute index before the evaluator has the last word.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from typing import Final, Literal, TypeAlias

from broker.ngsild.errors import BadRequestData

MAX_Q_LENGTH: Final = 4000
MAX_Q_DEPTH: Final = 20

ENTITY_MEMBERS: Final = frozenset({"createdAt", "modifiedAt"})
"""Members of the entity itself that a Query Term may name instead of an attribute."""

METADATA_MEMBERS: Final = frozenset(
    {"observedAt", "createdAt", "modifiedAt", "deletedAt", "expiresAt", "unitCode", "datasetId"}
    | {"objectType", "valueType"}
)
"""Core members of an attribute a path may end with (``temperature.observedAt``)."""

Operator: TypeAlias = Literal["==", "!=", ">", ">=", "<", "<=", "~=", "!~="]
Scalar: TypeAlias = bool | int | float | str

EQUALITY: Final = frozenset({"==", "!="})
PATTERN: Final = frozenset({"~=", "!~="})


class QSyntaxError(BadRequestData):
    """A ``q`` that is not well formed; ``position`` is the 0-based offset of the offence."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"q: {message} at position {position}")
        self.position = position


@dataclass(frozen=True, slots=True)
class Path:
    """The target element of a Query Term.

    Attributes:
        attr: attribute IRI, or ``createdAt``/``modifiedAt`` of the entity itself.
        subs: sub-attribute IRIs, outermost first.
        member: a core member of the (sub-)attribute, e.g. ``observedAt``.
        keys: keys into the value; ``*`` stands for every key.
        via: linked-entity hops (v1.9 §4.9, ``rel{Type:attr}``), outermost first: each is a
            Relationship IRI of the entity before and an optional type the target must have;
            the rest of the path then applies to the target entity.
    """

    attr: str
    subs: tuple[str, ...] = ()
    member: str | None = None
    keys: tuple[str, ...] = ()
    via: tuple[tuple[str, str | None], ...] = ()


@dataclass(frozen=True, slots=True)
class Range:
    """``low..high``, both included."""

    low: Scalar
    high: Scalar


Value: TypeAlias = Scalar | tuple[Scalar, ...] | Range
"""A single value, a value list (any of them), a range; for ``~=`` the pattern text."""


@dataclass(frozen=True, slots=True)
class Comparison:
    path: Path
    op: Operator
    value: Value


@dataclass(frozen=True, slots=True)
class Exists:
    """``attr`` (the target element exists) or, negated, ``!attr``."""

    path: Path
    negated: bool = False


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[QExpr, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[QExpr, ...]


QExpr: TypeAlias = Comparison | Exists | And | Or


def parse_q(text: str, expand: Callable[[str], str]) -> QExpr:
    """Parse ``text``, expanding attribute and sub-attribute names with ``expand``.

    Raises:
        BadRequestData: the text is too long or too deeply nested, or (``QSyntaxError``) is not
            a valid query; the message gives the position.
    """
    if len(text) > MAX_Q_LENGTH:
        raise BadRequestData(f"q: longer than {MAX_Q_LENGTH} characters")
    # Imported here: the parser builds this module's tree, so it imports this module.
    from broker.ngsild.query.qparser import Parser

    return Parser(text, expand).parse()


def to_text(expr: QExpr, compact: Callable[[str], str] = lambda iri: iri) -> str:
    """Print ``expr`` as ``q`` text, compacting IRIs with ``compact``."""
    if isinstance(expr, And | Or):
        separator = ";" if isinstance(expr, And) else "|"
        return separator.join(_child_text(item, expr, compact) for item in expr.items)
    if isinstance(expr, Exists):
        return ("!" if expr.negated else "") + _path_text(expr.path, compact)
    if expr.op in PATTERN:
        return _path_text(expr.path, compact) + expr.op + _quote(str(expr.value))
    return _path_text(expr.path, compact) + expr.op + _value_text(expr.value)


def attributes_of(expr: QExpr) -> frozenset[str]:
    """Every attribute IRI of the queried entity the expression refers to (entity members
    excluded; for a linked-entity path, the Relationship it starts from)."""
    if isinstance(expr, And | Or):
        return frozenset().union(*(attributes_of(item) for item in expr.items))
    attr = _own_attribute(expr.path)
    return frozenset() if attr in ENTITY_MEMBERS else frozenset({attr})


def link_depth(expr: QExpr) -> int:
    """How many Relationship hops the deepest linked-entity path takes (0: none)."""
    if isinstance(expr, And | Or):
        return max(link_depth(item) for item in expr.items)
    return len(expr.path.via)


def linked_paths(expr: QExpr) -> list[Path]:
    """The linked-entity paths (``rel{…}``) in the expression."""
    if isinstance(expr, And | Or):
        return [path for item in expr.items for path in linked_paths(item)]
    return [expr.path] if expr.path.via else []


def _own_attribute(path: Path) -> str:
    return path.via[0][0] if path.via else path.attr


def required_attributes(expr: QExpr) -> frozenset[str]:
    """Attribute IRIs that every entity matching ``expr`` has.

    A comparison needs its target to exist, so it requires its attribute; ``!attr`` requires
    nothing; a conjunction requires what any part requires, a disjunction what all parts do.
    """
    if isinstance(expr, And):
        return frozenset().union(*(required_attributes(item) for item in expr.items))
    if isinstance(expr, Or):
        return frozenset.intersection(*(required_attributes(item) for item in expr.items))
    attr = _own_attribute(expr.path)
    if (isinstance(expr, Exists) and expr.negated) or attr in ENTITY_MEMBERS:
        return frozenset()
    return frozenset({attr})


def expand_values(expr: QExpr, attributes: Collection[str], expand: Callable[[str], str]) -> QExpr:
    """Expand the string values compared with ``attributes`` (the ``expandValues`` parameter).

    Vocab values are stored expanded, so ``category==commercial`` can only match them once
    ``commercial`` is expanded with the request's @context (GS CIM 009 v1.8.1 §4.9, EXAMPLE 12).
    """
    if isinstance(expr, And | Or):
        return replace(expr, items=tuple(expand_values(i, attributes, expand) for i in expr.items))
    if isinstance(expr, Exists) or expr.op in PATTERN or expr.path.attr not in attributes:
        return expr

    def one(value: Scalar) -> Scalar:
        return expand(value) if isinstance(value, str) else value

    value = expr.value
    if isinstance(value, Range):
        return replace(expr, value=Range(one(value.low), one(value.high)))
    if isinstance(value, tuple):
        return replace(expr, value=tuple(one(item) for item in value))
    return replace(expr, value=one(value))


def _child_text(item: QExpr, parent: And | Or, compact: Callable[[str], str]) -> str:
    text = to_text(item, compact)
    # Groups the parser would otherwise merge or re-associate keep their parentheses.
    if isinstance(item, type(parent)) or (isinstance(item, Or) and isinstance(parent, And)):
        return f"({text})"
    return text


def _path_text(path: Path, compact: Callable[[str], str]) -> str:
    if path.via:
        (relationship, hint), rest = path.via[0], replace(path, via=path.via[1:])
        inner = _path_text(rest, compact)
        return f"{compact(relationship)}{{{'' if hint is None else compact(hint) + ':'}{inner}}}"
    if path.attr in ENTITY_MEMBERS:
        return path.attr
    names = [compact(path.attr), *(compact(sub) for sub in path.subs)]
    if path.member is not None:
        names.append(path.member)
    return ".".join(names) + "".join(f"[{key}]" for key in path.keys)


def _value_text(value: Value) -> str:
    if isinstance(value, Range):
        return f"{_scalar_text(value.low)}..{_scalar_text(value.high)}"
    if isinstance(value, tuple):
        return ",".join(_scalar_text(item) for item in value)
    return _scalar_text(value)


def _scalar_text(value: Scalar) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    return repr(value)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
