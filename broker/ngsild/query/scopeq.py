"""The Scope Query Language ``scopeQ`` (GS CIM 009 v1.8.1 §4.19): parser and evaluator.

A scope is a path such as ``/Madrid/Gardens/ParqueNorte``. A query names scope patterns and
combines them::

    ScopeQ  = Conj *( ("|" / ",") Conj )       ; "," is the older spelling of "|"
    Conj    = Term *( ";" Term )               ; ";" (and) binds tighter than "|" (or)
    Term    = "(" ScopeQ ")" / Pattern
    Pattern = ["/"] Level *("/" Level)         ; Level: letters, digits, "_"; or "+"; or a final "#"

``+`` matches exactly one level and a final ``#`` the scope before it and everything below it,
so ``/#`` matches every scope. A pattern holds for an entity if any of the entity's scopes
matches it; an entity without scopes matches no pattern, hence no scope query at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, TypeAlias

from broker.ngsild.errors import BadRequestData

MAX_SCOPE_Q_LENGTH: Final = 4000
MAX_SCOPE_Q_DEPTH: Final = 20

_LEVEL: Final = re.compile(r"\w+|\+|#")
_STOP: Final = frozenset("();|,")


@dataclass(frozen=True, slots=True)
class ScopePattern:
    """A scope with wildcards: ``levels`` are names, ``+``, or (last only) ``#``."""

    levels: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ScopeAnd:
    items: tuple[ScopeExpr, ...]


@dataclass(frozen=True, slots=True)
class ScopeOr:
    items: tuple[ScopeExpr, ...]


ScopeExpr: TypeAlias = ScopePattern | ScopeAnd | ScopeOr


def parse_scope_query(text: str) -> ScopeExpr:
    """Parse a ``scopeQ``.

    Raises:
        BadRequestData: the text is too long, too deeply nested or not a valid scope query; the
            message gives the 0-based position of the offence.
    """
    if len(text) > MAX_SCOPE_Q_LENGTH:
        raise BadRequestData(f"scopeQ: longer than {MAX_SCOPE_Q_LENGTH} characters")
    if not text.strip():
        raise _error("the scope query is empty", 0)
    parser = _Parser(text)
    expr = parser.disjunction(0)
    parser.skip()
    if parser.pos < len(text):
        raise _error(f"unexpected {text[parser.pos]!r}", parser.pos)
    return expr


def evaluate_scope(expr: ScopeExpr, scopes: list[str] | None) -> bool:
    """Whether an entity with ``scopes`` (None: no scope at all) satisfies ``expr``."""
    if isinstance(expr, ScopeAnd):
        return all(evaluate_scope(item, scopes) for item in expr.items)
    if isinstance(expr, ScopeOr):
        return any(evaluate_scope(item, scopes) for item in expr.items)
    return any(_matches(expr.levels, scope) for scope in scopes or ())


def _matches(levels: tuple[str, ...], scope: str) -> bool:
    parts = scope.strip("/").split("/")
    if levels[-1] == "#":
        levels = levels[:-1]
        parts = parts[: len(levels)]
    if len(parts) != len(levels):
        return False
    return all(level in ("+", part) for level, part in zip(levels, parts, strict=True))


def _error(message: str, position: int) -> BadRequestData:
    return BadRequestData(f"scopeQ: {message} at position {position}")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _next_in(self, chars: str) -> bool:
        self.skip()
        return self.pos < len(self.text) and self.text[self.pos] in chars

    def disjunction(self, depth: int) -> ScopeExpr:
        items = [self._conjunction(depth)]
        while self._next_in("|,"):
            self.pos += 1
            items.append(self._conjunction(depth))
        return items[0] if len(items) == 1 else ScopeOr(tuple(items))

    def _conjunction(self, depth: int) -> ScopeExpr:
        items = [self._term(depth)]
        while self._next_in(";"):
            self.pos += 1
            items.append(self._term(depth))
        return items[0] if len(items) == 1 else ScopeAnd(tuple(items))

    def _term(self, depth: int) -> ScopeExpr:
        self.skip()
        start = self.pos
        if self._next_in("("):
            if depth >= MAX_SCOPE_Q_DEPTH:
                raise _error(f"parentheses nested deeper than {MAX_SCOPE_Q_DEPTH}", start)
            self.pos += 1
            expr = self.disjunction(depth + 1)
            if not self._next_in(")"):
                if self.pos >= len(self.text):
                    raise _error("'(' is never closed", start)
                raise _error(f"unexpected {self.text[self.pos]!r}", self.pos)
            self.pos += 1
            return expr
        while self.pos < len(self.text) and not _stops(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            found = repr(self.text[start]) if start < len(self.text) else "end of query"
            raise _error(f"expected a scope, found {found}", start)
        return _pattern(self.text[start : self.pos], start)


def _stops(char: str) -> bool:
    return char in _STOP or char.isspace()


def _pattern(word: str, start: int) -> ScopePattern:
    levels = word.removeprefix("/").split("/")
    at = start + (word[0] == "/")
    for index, level in enumerate(levels):
        if not _LEVEL.fullmatch(level) or (level == "#" and index < len(levels) - 1):
            raise _error(f"invalid scope level {level!r} in {word!r}", at)
        at += len(level) + 1
    return ScopePattern(tuple(levels))
