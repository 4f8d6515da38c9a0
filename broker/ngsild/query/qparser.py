"""Text → ``q`` syntax tree: a recursive-descent parser (GS CIM 009 v1.8.1 §4.9).

The accepted grammar is the ABNF of §4.9 with the extensions in common use::

    Query  = Term *( ("|" / ";") Term )        ; ";" (and) binds tighter than "|" (or)
    Term   = "(" Query ")" / "!" Path / Path [ Operator Value ]
    Path   = Name *("." Name) *("[" Key *("." Key) "]")
    Value  = Scalar [ ".." Scalar / 1*("," Scalar) ]    ; ranges and lists only after == and !=
    Scalar = "true" / "false" / Number / DQUOTE *char DQUOTE / BareWord

The first ``Name`` is an attribute (or the entity's own ``createdAt``/``modifiedAt``); the following
ones are sub-attributes, except a final core member such as ``observedAt`` or ``unitCode``.
Bracketed keys walk into the value: compound JSON (``address[city]``; ``a[b.c]`` is ``a[b][c]``)
and languageMaps (``name[en]``, ``name[*]``). Unquoted words (URIs like ``urn:ngsi-ld:City:Pisa``,
dates like ``2018-12-04T12:00:00Z``) are strings exactly like their quoted forms; the evaluator
compares strings that are dates, times or date-times temporally. Inside quotes ``\\"`` and
``\\\\`` are the only escapes. The pattern after ``~=`` may also be written unquoted, up to the
next ``;`` or ``|`` outside parentheses, and keeps any other backslash as written, so ``"\\d+"``
is the pattern ``\\d+``.

Full IRIs may be used as names: a ``.`` inside their host, or followed by text with a ``/`` or
``#``, belongs to the IRI. Linked-entity paths (``attr{...}``) are refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Final

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import CORE_MEMBERS, check_name
from broker.ngsild.query.patterns import compile_pattern
from broker.ngsild.query.qlang import (
    ENTITY_MEMBERS,
    EQUALITY,
    MAX_Q_DEPTH,
    METADATA_MEMBERS,
    PATTERN,
    And,
    Comparison,
    Exists,
    Operator,
    Or,
    Path,
    QExpr,
    QSyntaxError,
    Range,
    Scalar,
    Value,
)

# Longest first: "!~=" before "!=", ">=" before ">".
_OPERATORS: Final[tuple[Operator, ...]] = ("==", "!~=", "!=", "~=", ">=", "<=", ">", "<")
_NAME_STOP: Final = frozenset('[]{}()!=<>~;|,"')
_VALUE_STOP: Final = frozenset(';|(),"')
_NUMBER: Final = re.compile(r"-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")
_KEY: Final = re.compile(r"\*|[\w@-]+")


_TYPE_HINT = re.compile(r"\s*([^\W\d_]\w*):(?=[^\W\d_])")
"""``Type:`` at the start of a linked-entity query; a plain term, so ``ex:name`` compact IRIs
cannot be used right after ``{`` (use the term or the full IRI there)."""
_MAX_HOPS = 5


class Parser:
    """Recursive descent over the text; ``pos`` is the offset of the next unread character."""

    def __init__(self, text: str, expand: Callable[[str], str]) -> None:
        self.text = text
        self.pos = 0
        self.expand = expand

    def parse(self) -> QExpr:
        if not self.text.strip():
            raise QSyntaxError("the query is empty", 0)
        expr = self._disjunction(0)
        self._skip()
        if self.pos < len(self.text):
            raise QSyntaxError(f"unexpected {self._found()}", self.pos)
        return expr

    def _peek(self) -> str:
        return self.text[self.pos : self.pos + 1]

    def _skip(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def _next_is(self, char: str) -> bool:
        self._skip()
        return self._peek() == char

    def _found(self) -> str:
        return repr(self._peek()) if self.pos < len(self.text) else "end of query"

    def _expected(self, what: str) -> QSyntaxError:
        return QSyntaxError(f"expected {what}, found {self._found()}", self.pos)

    def _disjunction(self, depth: int) -> QExpr:
        items = [self._conjunction(depth)]
        while self._next_is("|"):
            self.pos += 1
            items.append(self._conjunction(depth))
        return items[0] if len(items) == 1 else Or(tuple(items))

    def _conjunction(self, depth: int) -> QExpr:
        items = [self._term(depth)]
        while self._next_is(";"):
            self.pos += 1
            items.append(self._term(depth))
        return items[0] if len(items) == 1 else And(tuple(items))

    def _term(self, depth: int) -> QExpr:
        self._skip()
        start = self.pos
        if self._peek() == "(":
            if depth >= MAX_Q_DEPTH:
                raise QSyntaxError(f"parentheses nested deeper than {MAX_Q_DEPTH}", start)
            self.pos += 1
            expr = self._disjunction(depth + 1)
            self._skip()
            if self._peek() != ")":
                if self.pos >= len(self.text):
                    raise QSyntaxError("'(' is never closed", start)
                raise QSyntaxError(f"unexpected {self._found()}", self.pos)
            self.pos += 1
            return expr
        if self._peek() == "!":
            self.pos += 1
            path = self._path()
            if self._operator() is not None:
                raise QSyntaxError("'!' negates existence and cannot precede a comparison", start)
            return Exists(path, negated=True)
        path = self._path()
        op = self._operator()
        return Exists(path) if op is None else Comparison(path, op, self._value(op))

    def _path(self) -> Path:
        self._skip()
        start = self.pos
        while self.pos < len(self.text) and not _stops_name(self.text[self.pos]):
            self.pos += 1
        if self.pos == start:
            raise self._expected("an attribute name")
        names = _split_names(self.text[start : self.pos], start)
        keys_at = self.pos
        keys = self._keys()
        if self._peek() == "{":
            return self._linked(names, keys, start)
        if self._peek() == ".":
            raise QSyntaxError("'.' cannot follow ']'", self.pos)
        (first, first_at), rest = names[0], names[1:]
        if first in ENTITY_MEMBERS:
            if rest or keys:
                raise QSyntaxError(f"the entity's {first} has no members", first_at)
            return Path(first)
        subs: list[str] = []
        member: str | None = None
        for name, at in rest:
            if member is not None:
                raise QSyntaxError(f"{member} has no member {name!r}", at)
            if name in METADATA_MEMBERS:
                member = name
            else:
                subs.append(self._attribute(name, at))
        if member is not None and keys:
            raise QSyntaxError(f"{member} has no keys", keys_at)
        return Path(self._attribute(first, first_at), tuple(subs), member, keys)

    def _linked(self, names: list[tuple[str, int]], keys: tuple[str, ...], start: int) -> Path:
        """``rel{[Type:]path}``: ``path`` evaluated on the entity ``rel`` points at."""
        if len(names) != 1 or keys:
            raise QSyntaxError("'{' must follow a plain Relationship name", self.pos)
        relationship = self._attribute(*names[0])
        self.pos += 1
        hint = None
        found = _TYPE_HINT.match(self.text, self.pos)
        if found is not None:
            hint = self.expand(found.group(1))
            self.pos = found.end()
        inner = self._path()
        if self._peek() != "}":
            raise self._expected("'}' closing the linked-entity query")
        self.pos += 1
        via = ((relationship, hint), *inner.via)
        if len(via) > _MAX_HOPS:
            raise QSyntaxError(f"linked-entity queries nest at most {_MAX_HOPS} levels", start)
        return Path(inner.attr, inner.subs, inner.member, inner.keys, via)

    def _attribute(self, name: str, at: int) -> str:
        if name in CORE_MEMBERS:
            raise QSyntaxError(f"{name!r} is a core member, not an attribute", at)
        try:
            check_name(name, "attribute")
        except BadRequestData:
            raise QSyntaxError(f"invalid attribute name {name!r}", at) from None
        iri = self.expand(name)
        if iri.startswith("@"):
            raise QSyntaxError(f"{name!r} is a JSON-LD keyword, not an attribute", at)
        return iri

    def _keys(self) -> tuple[str, ...]:
        keys: list[str] = []
        while self._peek() == "[":
            close = self.text.find("]", self.pos)
            if close < 0:
                raise QSyntaxError("'[' is never closed", self.pos)
            at = self.pos + 1
            for key in self.text[at:close].split("."):
                if not _KEY.fullmatch(key):
                    raise QSyntaxError(f"invalid key {key!r}", at)
                keys.append(key)
                at += len(key) + 1
            self.pos = close + 1
        return tuple(keys)

    def _operator(self) -> Operator | None:
        self._skip()
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        return None

    def _value(self, op: Operator) -> Value:
        if op in PATTERN:
            return self._pattern()
        start = self.pos
        first = self._scalar()
        if self.text.startswith("..", self.pos):
            if op not in EQUALITY:
                raise QSyntaxError(f"a range needs == or !=, not {op}", self.pos)
            self.pos += 2
            high = self._scalar()
            if isinstance(first, bool) or isinstance(high, bool):
                raise QSyntaxError("a range needs numbers or strings", start)
            if isinstance(first, str) != isinstance(high, str):
                raise QSyntaxError("both ends of a range must be numbers, or both strings", start)
            return Range(first, high)
        if self._peek() == ",":
            if op not in EQUALITY:
                raise QSyntaxError(f"a value list needs == or !=, not {op}", self.pos)
            items = [first]
            while self._peek() == ",":
                self.pos += 1
                items.append(self._scalar())
            return tuple(items)
        if isinstance(first, bool) and op not in EQUALITY:
            raise QSyntaxError(f"true and false can only follow == or !=, not {op}", start)
        return first

    def _scalar(self) -> Scalar:
        self._skip()
        start = self.pos
        if self._peek() == '"':
            return self._quoted(strict=True)
        first = self._peek()
        if not first or not (first.isalnum() or first in "-_"):
            raise self._expected("a value")
        while self.pos < len(self.text) and not self._ends_value():
            self.pos += 1
        word = self.text[start : self.pos]
        if word in ("true", "false"):
            return word == "true"
        if not _NUMBER.fullmatch(word):
            return word
        if not any(char in word for char in ".eE"):
            return int(word)
        number = float(word)
        if not math.isfinite(number):
            raise QSyntaxError(f"number {word} is out of range", start)
        return number

    def _ends_value(self) -> bool:
        char = self.text[self.pos]
        return char in _VALUE_STOP or char.isspace() or self.text.startswith("..", self.pos)

    def _quoted(self, *, strict: bool) -> str:
        start = self.pos
        self.pos += 1
        chars: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(chars)
            if char == "\\":
                escaped = self.text[self.pos + 1 : self.pos + 2]
                if escaped in ('"', "\\"):
                    chars.append(escaped)
                    self.pos += 2
                    continue
                if strict:
                    raise QSyntaxError(f"bad escape '\\{escaped}' in a string", self.pos)
            chars.append(char)
            self.pos += 1
        raise QSyntaxError("string is never closed", start)

    def _pattern(self) -> str:
        self._skip()
        start = self.pos
        if self._peek() == '"':
            pattern = self._quoted(strict=False)
        else:
            depth = 0
            while self.pos < len(self.text):
                char = self.text[self.pos]
                if depth == 0 and (char in ";|" or char == ")"):
                    break
                if char == "\\":
                    self.pos += 1
                depth += (char == "(") - (char == ")")
                self.pos += 1
            pattern = self.text[start : self.pos].rstrip()
        if not pattern:
            raise QSyntaxError("expected a pattern", start)
        try:
            compile_pattern(pattern)
        except BadRequestData as exc:
            raise QSyntaxError(exc.detail, start) from None
        return pattern


def _stops_name(char: str) -> bool:
    return char in _NAME_STOP or char.isspace()


def _split_names(run: str, start: int) -> list[tuple[str, int]]:
    """Split ``a.b.observedAt`` into names with their positions; IRIs keep their own dots."""
    names: list[tuple[str, int]] = []
    at = start
    for piece in run.split("."):
        if names and _continues_iri(names[-1][0], piece):
            names[-1] = (f"{names[-1][0]}.{piece}", names[-1][1])
        else:
            names.append((piece, at))
        at += len(piece) + 1
    return names


def _continues_iri(name: str, piece: str) -> bool:
    _, separator, rest = name.partition("://")
    if not separator:
        return False
    in_host = "/" not in rest and "#" not in rest
    return in_host or "/" in piece or "#" in piece
