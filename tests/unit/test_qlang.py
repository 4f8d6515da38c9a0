"""The ``q`` grammar: what parses to which tree, what is refused and where, printing back."""

from __future__ import annotations

import pytest
from broker.contexts import builtin_documents
from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import CORE_MEMBERS
from broker.ngsild.query.qlang import (
    ENTITY_MEMBERS,
    EQUALITY,
    MAX_Q_DEPTH,
    MAX_Q_LENGTH,
    METADATA_MEMBERS,
    PATTERN,
    And,
    Comparison,
    Exists,
    Or,
    Path,
    QExpr,
    QSyntaxError,
    Range,
    attributes_of,
    expand_values,
    link_depth,
    parse_q,
    required_attributes,
    to_text,
)
from broker.ngsild.terms import build_term_table
from hypothesis import given
from hypothesis import strategies as st

EX = "https://example.org/ns#"
CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
TERMS = build_term_table(None, CORE, builtin_documents())


def expand(name: str) -> str:
    return name if ":" in name else EX + name


def compact(iri: str) -> str:
    return iri.removeprefix(EX)


def a(name: str, *subs: str, member: str | None = None, keys: tuple[str, ...] = ()) -> Path:
    return Path(EX + name, tuple(EX + sub for sub in subs), member, keys)


def cmp(path: Path, op: str, value: object) -> Comparison:
    return Comparison(path, op, value)  # type: ignore[arg-type]


PARSES = [
    # operators
    ("speed==5", cmp(a("speed"), "==", 5)),
    ("speed!=5", cmp(a("speed"), "!=", 5)),
    ("speed>5", cmp(a("speed"), ">", 5)),
    ("speed>=5", cmp(a("speed"), ">=", 5)),
    ("speed<5", cmp(a("speed"), "<", 5)),
    ("speed<=5", cmp(a("speed"), "<=", 5)),
    ('name~="^Eiff.*"', cmp(a("name"), "~=", "^Eiff.*")),
    ('name!~="^Eiffel"', cmp(a("name"), "!~=", "^Eiffel")),
    ("brand~=(?i)mercedes", cmp(a("brand"), "~=", "(?i)mercedes")),
    ("name~=(?i)(red|green);x", And((cmp(a("name"), "~=", "(?i)(red|green)"), Exists(a("x"))))),
    (r'code~="\d+-\"x\""', cmp(a("code"), "~=", r'\d+-"x"')),
    # values
    ("t==-12.5", cmp(a("t"), "==", -12.5)),
    ("t==1.5e3", cmp(a("t"), "==", 1500.0)),
    ("t==2E-2", cmp(a("t"), "==", 0.02)),
    ("t==007", cmp(a("t"), "==", 7)),
    ("almostFull==false", cmp(a("almostFull"), "==", False)),
    ("almostFull!=true", cmp(a("almostFull"), "!=", True)),
    ('name=="Eiffel Tower"', cmp(a("name"), "==", "Eiffel Tower")),
    (r'name=="say \"hi\" \\ bye"', cmp(a("name"), "==", 'say "hi" \\ bye')),
    ('name==""', cmp(a("name"), "==", "")),
    ('name=="a;b|c)(d,e..f"', cmp(a("name"), "==", "a;b|c)(d,e..f")),
    ("locatedIn==urn:ngsi-ld:City:Pisa", cmp(a("locatedIn"), "==", "urn:ngsi-ld:City:Pisa")),
    ("category==commercial", cmp(a("category"), "==", "commercial")),
    ("at>2018-12-04T12:00:00Z", cmp(a("at"), ">", "2018-12-04T12:00:00Z")),
    ("at>2018-12-04T12:00:00.250+01:00", cmp(a("at"), ">", "2018-12-04T12:00:00.250+01:00")),
    ("day<=2018-12-04", cmp(a("day"), "<=", "2018-12-04")),
    ("opens<12:00:00Z", cmp(a("opens"), "<", "12:00:00Z")),
    ("t==5G", cmp(a("t"), "==", "5G")),
    # ranges and lists
    ("level==1..5", cmp(a("level"), "==", Range(1, 5))),
    ("level!=-1.5..2", cmp(a("level"), "!=", Range(-1.5, 2))),
    ('code=="a".."c"', cmp(a("code"), "==", Range("a", "c"))),
    ("at==2018-01-01..2018-12-31", cmp(a("at"), "==", Range("2018-01-01", "2018-12-31"))),
    (
        "at==2018-01-01T00:00:00Z..2018-02-01T00:00:00Z",
        cmp(a("at"), "==", Range("2018-01-01T00:00:00Z", "2018-02-01T00:00:00Z")),
    ),
    ("level==1,2,3", cmp(a("level"), "==", (1, 2, 3))),
    ('name!="Eiffel Tower","Big Ben"', cmp(a("name"), "!=", ("Eiffel Tower", "Big Ben"))),
    ("flag==true,false", cmp(a("flag"), "==", (True, False))),
    # paths
    ("temperature", Exists(a("temperature"))),
    ("!temperature", Exists(a("temperature"), negated=True)),
    ("speed.accuracy<0.5", cmp(a("speed", "accuracy"), "<", 0.5)),
    ("a.b.c==1", cmp(a("a", "b", "c"), "==", 1)),
    (
        "speed.observedAt>=2017-12-24T12:00:00Z",
        cmp(a("speed", member="observedAt"), ">=", "2017-12-24T12:00:00Z"),
    ),
    ('speed.unitCode=="KMH"', cmp(a("speed", member="unitCode"), "==", "KMH")),
    ("speed.accuracy.modifiedAt", Exists(a("speed", "accuracy", member="modifiedAt"))),
    ('address[city]=="Berlin"', cmp(a("address", keys=("city",)), "==", "Berlin")),
    ("a[b][c]==1", cmp(a("a", keys=("b", "c")), "==", 1)),
    (
        "sensor.rawdata[airquality.particulate]==40",
        cmp(a("sensor", "rawdata", keys=("airquality", "particulate")), "==", 40),
    ),
    ('color[en]=="red"', cmp(a("color", keys=("en",)), "==", "red")),
    ('color[*]!="red"', cmp(a("color", keys=("*",)), "!=", "red")),
    ("tags[0]", Exists(a("tags", keys=("0",)))),
    ('createdAt>"2020-01-01T00:00:00Z"', cmp(Path("createdAt"), ">", "2020-01-01T00:00:00Z")),
    ("modifiedAt<2020-01-01", cmp(Path("modifiedAt"), "<", "2020-01-01")),
    ("ex:speed>1", cmp(Path("ex:speed"), ">", 1)),
    (f"{EX}speed.observedAt", Exists(a("speed", member="observedAt"))),
    ("https://w3id.org/v1.0/speed==1", cmp(Path("https://w3id.org/v1.0/speed"), "==", 1)),
    # logic
    ("a;b", And((Exists(a("a")), Exists(a("b"))))),
    ("a|b", Or((Exists(a("a")), Exists(a("b"))))),
    ("a;b|c", Or((And((Exists(a("a")), Exists(a("b")))), Exists(a("c"))))),
    ("a|b;c", Or((Exists(a("a")), And((Exists(a("b")), Exists(a("c"))))))),
    ("(a|b);c", And((Or((Exists(a("a")), Exists(a("b")))), Exists(a("c"))))),
    ("a;b;c", And((Exists(a("a")), Exists(a("b")), Exists(a("c"))))),
    ("(a;b);c", And((And((Exists(a("a")), Exists(a("b")))), Exists(a("c"))))),
    ("((a))", Exists(a("a"))),
    (" ( a == 1 ) ; b ", And((cmp(a("a"), "==", 1), Exists(a("b"))))),
]


@pytest.mark.parametrize(("text", "tree"), PARSES, ids=[text for text, _ in PARSES])
def test_parses(text: str, tree: QExpr) -> None:
    assert parse_q(text, expand) == tree


@pytest.mark.parametrize(("text", "tree"), PARSES, ids=[text for text, _ in PARSES])
def test_printed_text_parses_to_the_same_tree(text: str, tree: QExpr) -> None:
    assert parse_q(to_text(tree, compact), expand) == tree


REFUSED = [
    ("", "q: the query is empty at position 0"),
    ("   ", "q: the query is empty at position 0"),
    ("a==1)", "q: unexpected ')' at position 4"),
    ("(a==1", "q: '(' is never closed at position 0"),
    ("(a==1 b)", "q: unexpected 'b' at position 6"),
    ("a==1;", "q: expected an attribute name, found end of query at position 5"),
    ("a==1|", "q: expected an attribute name, found end of query at position 5"),
    (";a", "q: expected an attribute name, found ';' at position 0"),
    ("a==1;;b", "q: expected an attribute name, found ';' at position 5"),
    ("speed>", "q: expected a value, found end of query at position 6"),
    ("speed==;a", "q: expected a value, found ';' at position 7"),
    ("a=1", "q: unexpected '=' at position 1"),
    ("a==1 2", "q: unexpected '2' at position 5"),
    ('a=="x\\q"', "q: bad escape '\\q' in a string at position 5"),
    ('a=="open', "q: string is never closed at position 3"),
    ("a>4..5", "q: a range needs == or !=, not > at position 3"),
    ("a<1,2", "q: a value list needs == or !=, not < at position 3"),
    ("a==1..", "q: expected a value, found end of query at position 6"),
    ('a==1.."z"', "q: both ends of a range must be numbers, or both strings at position 3"),
    ("a==true..false", "q: a range needs numbers or strings at position 3"),
    ("a>true", "q: true and false can only follow == or !=, not > at position 2"),
    ("a==1e999", "q: number 1e999 is out of range at position 3"),
    ("a~=", "q: expected a pattern at position 3"),
    ('a~="("', "q: invalid pattern"),
    ("!a==1", "q: '!' negates existence and cannot precede a comparison at position 0"),
    ("a..b==1", "q: invalid attribute name '' at position 2"),
    ("a-b==1", "q: invalid attribute name 'a-b' at position 0"),
    ("a.b[c].d", "q: '.' cannot follow ']' at position 6"),
    ("a[b", "q: '[' is never closed at position 1"),
    ("a[]==1", "q: invalid key '' at position 2"),
    ("a[b c]==1", "q: invalid key 'b c' at position 2"),
    ("a.observedAt.b", "q: observedAt has no member 'b' at position 13"),
    ("a.observedAt[x]", "q: observedAt has no keys at position 12"),
    ("createdAt.x", "q: the entity's createdAt has no members at position 0"),
    ("type==Building", "q: 'type' is a core member, not an attribute at position 0"),
    ("id==urn:x", "q: 'id' is a core member, not an attribute at position 0"),
    ("a.value==1", "q: 'value' is a core member, not an attribute at position 2"),
    (
        'owner{name=="x"',
        "q: expected '}' closing the linked-entity query, found '=' at position 10",
    ),
    ('owner[a]{name}=="x"', "q: '{' must follow a plain Relationship name at position 8"),
]


@pytest.mark.parametrize(("text", "message"), REFUSED, ids=[text for text, _ in REFUSED])
def test_refuses_malformed_queries_saying_where(text: str, message: str) -> None:
    with pytest.raises(QSyntaxError) as caught:
        parse_q(text, expand)
    assert caught.value.detail.startswith(message)
    assert isinstance(caught.value, BadRequestData)


def test_refuses_too_long_queries() -> None:
    text = ";".join(["speed>1"] * (MAX_Q_LENGTH // 8 + 1))
    with pytest.raises(BadRequestData, match=f"longer than {MAX_Q_LENGTH} characters"):
        parse_q(text, expand)


def test_refuses_too_deep_nesting_and_accepts_the_limit() -> None:
    assert parse_q("(" * MAX_Q_DEPTH + "a" + ")" * MAX_Q_DEPTH, expand) == Exists(a("a"))
    deeper = "(" * (MAX_Q_DEPTH + 1) + "a" + ")" * (MAX_Q_DEPTH + 1)
    with pytest.raises(BadRequestData, match=f"nested deeper than {MAX_Q_DEPTH} at position 20"):
        parse_q(deeper, expand)


def test_names_are_expanded_with_the_context_but_keys_and_members_are_not() -> None:
    tree = parse_q('address[city]=="Kyoto";location.observedAt;speed.accuracy>1', TERMS.expand)
    assert tree == And(
        (
            cmp(Path(TERMS.expand("address"), keys=("city",)), "==", "Kyoto"),
            Exists(Path("https://uri.etsi.org/ngsi-ld/location", member="observedAt")),
            cmp(Path(TERMS.expand("speed"), (TERMS.expand("accuracy"),)), ">", 1),
        )
    )
    assert to_text(tree, TERMS.compact) == (
        'address[city]=="Kyoto";location.observedAt;speed.accuracy>1'
    )


def test_json_ld_keyword_aliases_are_not_attributes() -> None:
    terms = build_term_table({"identifier": "@id"}, CORE, builtin_documents())
    with pytest.raises(QSyntaxError, match="'identifier' is a JSON-LD keyword"):
        parse_q("speed;identifier==1", terms.expand)


ANALYSIS = [
    # text, attributes_of, required_attributes
    ("speed>1", {"speed"}, {"speed"}),
    ("speed!=1", {"speed"}, {"speed"}),
    ("speed", {"speed"}, {"speed"}),
    ("!speed", {"speed"}, set()),
    ("speed>1;name", {"speed", "name"}, {"speed", "name"}),
    ("speed>1|name", {"speed", "name"}, set()),
    ("speed>1|speed<0", {"speed"}, {"speed"}),
    ("(speed>1;name)|(speed<0;x)", {"speed", "name", "x"}, {"speed"}),
    ("speed.observedAt>2020-01-01", {"speed"}, {"speed"}),
    ('modifiedAt>"2020-01-01T00:00:00Z"', set(), set()),
    ("createdAt>2020-01-01;!speed", {"speed"}, set()),
]


@pytest.mark.parametrize(("text", "referenced", "required"), ANALYSIS)
def test_referenced_and_required_attributes(
    text: str, referenced: set[str], required: set[str]
) -> None:
    tree = parse_q(text, expand)
    assert attributes_of(tree) == {EX + name for name in referenced}
    assert required_attributes(tree) == {EX + name for name in required}


def test_expand_values_expands_strings_of_the_named_attributes_only() -> None:
    tree = parse_q('category==commercial,"shop";kind==commercial;category~="^c";n==1', expand)
    expanded = expand_values(tree, {EX + "category"}, expand)
    assert to_text(expanded, compact) == (
        f'category=="{EX}commercial","{EX}shop";kind=="commercial";category~="^c";n==1'
    )


# Random trees -> text -> the same tree.

_RESERVED = CORE_MEMBERS | ENTITY_MEMBERS | METADATA_MEMBERS | {"true", "false"}
_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,6}", fullmatch=True).filter(
    lambda name: name not in _RESERVED
)
_iris = _names.map(lambda name: EX + name)
_keys = st.one_of(st.just("*"), st.from_regex(r"[A-Za-z0-9_@-]{1,6}", fullmatch=True))
_attribute_paths = st.builds(
    Path,
    _iris,
    st.lists(_iris, max_size=2).map(tuple),
    st.none() | st.sampled_from(sorted(METADATA_MEMBERS)),
    st.lists(_keys, max_size=2).map(tuple),
).map(lambda path: Path(path.attr, path.subs, path.member) if path.member else path)
_paths = st.one_of(_attribute_paths, st.sampled_from(sorted(ENTITY_MEMBERS)).map(Path))
_numbers = st.integers() | st.floats(allow_nan=False, allow_infinity=False)
_ordered_scalars = _numbers | st.text()
_scalars = st.booleans() | _ordered_scalars
_ranges = st.builds(Range, _numbers, _numbers) | st.builds(Range, st.text(), st.text())
_patterns = st.sampled_from([r"^a", r"\d+$", "(?i)x|y", 'say "hi"', r"a\\b", "é.*"])

_comparisons = st.one_of(
    st.builds(
        Comparison,
        _paths,
        st.sampled_from(sorted(EQUALITY)),
        _scalars | _ranges | st.lists(_scalars, min_size=2, max_size=4).map(tuple),
    ),
    st.builds(Comparison, _paths, st.sampled_from([">", ">=", "<", "<="]), _ordered_scalars),
    st.builds(Comparison, _paths, st.sampled_from(sorted(PATTERN)), _patterns),
)
_leaves = _comparisons | st.builds(Exists, _paths, st.booleans())
_trees = st.recursive(
    _leaves,
    lambda children: st.one_of(
        st.lists(children, min_size=2, max_size=4).map(lambda items: And(tuple(items))),
        st.lists(children, min_size=2, max_size=4).map(lambda items: Or(tuple(items))),
    ),
    max_leaves=12,
)


@given(_trees)
def test_any_tree_survives_printing_and_parsing(tree: QExpr) -> None:
    assert parse_q(to_text(tree, compact), expand) == tree


_fragments = st.sampled_from(
    [*'ab1.-e"\\;|(),=!<>~[]{}*#/: ', "..", "==", "true", "urn:x", "2020-01-01T00:00:00Z"]
).map(str) | st.sampled_from(["observedAt", "createdAt", "type"])


@given(st.lists(_fragments, max_size=25).map("".join))
def test_any_text_parses_to_a_printable_tree_or_is_bad_request_data(text: str) -> None:
    try:
        tree = parse_q(text, expand)
    except BadRequestData:
        return
    assert parse_q(to_text(tree, compact), expand) == tree


def test_linked_entity_paths_parse_print_and_report_their_depth() -> None:
    tree = parse_q('managedBy{Building:name}=="Pisa";owner{works{level}}>2', expand)
    assert isinstance(tree, And)
    first, second = tree.items
    assert isinstance(first, Comparison) and isinstance(second, Comparison)
    assert first.path == Path(EX + "name", via=((EX + "managedBy", EX + "Building"),))
    assert second.path.via == ((EX + "owner", None), (EX + "works", None))
    assert parse_q(to_text(tree, compact), expand) == tree
    assert link_depth(tree) == 2
    # The queried entity itself must have the Relationships the paths start from.
    assert required_attributes(tree) == {EX + "managedBy", EX + "owner"}
