"""IoT Agent JSON over MQTT: which topics are devices' messages, and what their bodies mean."""

from __future__ import annotations

import contextlib
from typing import Any, get_args

import orjson
import pytest
from adapters.formats import iota_json
from adapters.formats.errors import DecodeError
from adapters.formats.iota_json import IotaTopic, TopicKind
from adapters.formats.uplink import Reading
from hypothesis import given, settings
from hypothesis import strategies as st

GAUGE = IotaTopic("tA9flood", "gauge-07", "attrs", None)
LEVEL = IotaTopic("tA9flood", "gauge-07", "attr", "lvl")
SIREN = IotaTopic("tA9flood", "siren-03", "cmdexe", None)


@pytest.mark.parametrize(
    "topic",
    [
        "/json/tA9flood/gauge-07/attrs",
        "json/tA9flood/gauge-07/attrs",
        "/JSON/tA9flood/gauge-07/attrs",
        "/tA9flood/gauge-07/attrs",
        "tA9flood/gauge-07/attrs",
    ],
)
def test_every_accepted_spelling_of_a_measure_topic(topic: str) -> None:
    assert iota_json.parse_topic(topic) == GAUGE


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("/json/tA9flood/gauge-07/attrs/lvl", LEVEL),
        ("tA9flood/gauge-07/attrs/lvl", LEVEL),
        ("/json/tA9flood/siren-03/cmdexe", SIREN),
        (
            "/json/tA9flood/gauge-07/configuration/commands",
            IotaTopic("tA9flood", "gauge-07", "config", None),
        ),
        # Only the first "json" is the protocol prefix; a second one is the apikey.
        ("/json/json/gauge-07/attrs", IotaTopic("json", "gauge-07", "attrs", None)),
    ],
)
def test_single_attribute_command_and_config_topics(topic: str, expected: IotaTopic) -> None:
    assert iota_json.parse_topic(topic) == expected


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "/",
        "/json/tA9flood/attrs",
        "/json//gauge-07/attrs",
        "/json/tA9flood//attrs",
        "/json/tA9flood/gauge-07",
        "/json/tA9flood/gauge-07/attrs/",
        "/json/tA9flood/gauge-07/attrs/lvl/extra",
        "/json/tA9flood/gauge-07/cmd",
        "/tA9flood/gauge-07/configuration/values",
        "v3/towna-flood@ttn/devices/gauge-07/up",
    ],
)
def test_other_topics_are_bad_topics(topic: str) -> None:
    with pytest.raises(DecodeError) as caught:
        iota_json.parse_topic(topic)
    assert caught.value.reason == "bad_topic"


def test_documented_river_gauge_measure() -> None:
    body = b'{"lvl": 2.41, "flw": 37.5, "bat": 3.61, "TimeInstant": "2025-03-14T06:30:00Z"}'
    assert iota_json.decode(GAUGE, body) == [
        Reading({"lvl": 2.41, "flw": 37.5, "bat": 3.61}, "2025-03-14T06:30:00Z")
    ]


def test_time_instant_with_an_offset_becomes_utc() -> None:
    body = b'{"lvl": 1, "TimeInstant": "2025-03-14T08:30:00.250+02:00"}'
    [reading] = iota_json.decode(GAUGE, body)
    assert reading.observed_at == "2025-03-14T06:30:00.250000Z"


@pytest.mark.parametrize("stamp", ['"yesterday"', '"2025-02-30T00:00:00Z"', "1741933800", "null"])
def test_invalid_time_instant_leaves_the_arrival_time_to_the_caller(stamp: str) -> None:
    [reading] = iota_json.decode(GAUGE, b'{"lvl": 1, "TimeInstant": %s}' % stamp.encode())
    assert reading == Reading({"lvl": 1}, None)


def test_nested_values_pass_through() -> None:
    body = b'{"pos": {"type": "Point", "coordinates": [8.5, 47.3]}, "tags": ["a", 1], "on": true}'
    [reading] = iota_json.decode(GAUGE, body)
    assert reading.measures == {
        "pos": {"type": "Point", "coordinates": [8.5, 47.3]},
        "tags": ["a", 1],
        "on": True,
    }


def test_array_of_groups_gives_one_reading_each_oldest_first() -> None:
    body = orjson.dumps(
        [
            {"lvl": 3, "TimeInstant": "2025-03-14T06:40:00Z"},
            {"lvl": 0},
            {"lvl": 2, "TimeInstant": "2025-03-14T06:30:00.5Z"},
            {"lvl": 1, "TimeInstant": "2025-03-14T08:30:00+02:00"},
        ]
    )
    assert iota_json.decode(GAUGE, body) == [
        Reading({"lvl": 1}, "2025-03-14T06:30:00Z"),
        Reading({"lvl": 2}, "2025-03-14T06:30:00.500000Z"),
        Reading({"lvl": 3}, "2025-03-14T06:40:00Z"),
        Reading({"lvl": 0}, None),
    ]
    assert iota_json.decode(GAUGE, b"[]") == []


@pytest.mark.parametrize("body", [b"{lvl: 1}", b"", b'{"lvl": NaN}', b'{"lvl": "\xff"}'])
def test_measures_that_are_not_json_are_malformed(body: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        iota_json.decode(GAUGE, body)
    assert caught.value.reason == "malformed_json"


@pytest.mark.parametrize("body", [b"42", b'"lvl"', b"null", b"[1, 2]", b'[{"lvl": 1}, 2]'])
def test_json_of_the_wrong_shape_is_a_bad_envelope(body: bytes) -> None:
    with pytest.raises(DecodeError) as caught:
        iota_json.decode(GAUGE, body)
    assert caught.value.reason == "bad_envelope"


@pytest.mark.parametrize(
    ("body", "value"),
    [
        (b"2.41", 2.41),
        (b'"on"', "on"),
        (b'{"a": 1}', {"a": 1}),
        (b"abc", "616263"),
        (b"on", "6f6e"),
        (b"\xff\x00", "ff00"),
        (b"", ""),
    ],
)
def test_single_attribute_body_is_json_or_else_hex(body: bytes, value: object) -> None:
    assert iota_json.decode(LEVEL, body) == [Reading({"lvl": value})]


def test_single_attribute_time_series() -> None:
    body = orjson.dumps(
        [
            {"timestamp": "2025-03-14T06:40:00Z", "value": 2.45},
            {"timestamp": "2025-03-14T06:30:00Z", "value": 2.41},
        ]
    )
    assert iota_json.decode(LEVEL, body) == [
        Reading({"lvl": 2.41}, "2025-03-14T06:30:00Z"),
        Reading({"lvl": 2.45}, "2025-03-14T06:40:00Z"),
    ]


def test_documented_command_result() -> None:
    assert iota_json.decode(SIREN, b'{"siren":"started"}') == [
        Reading({"siren_info": "started", "siren_status": "OK"})
    ]


def test_several_command_results_in_one_message() -> None:
    [reading] = iota_json.decode(SIREN, b'{"siren": {"secs": 60}, "lamp": "off"}')
    assert reading.measures == {
        "siren_info": {"secs": 60},
        "siren_status": "OK",
        "lamp_info": "off",
        "lamp_status": "OK",
    }


@pytest.mark.parametrize(
    ("body", "reason"), [(b"started", "malformed_json"), (b"{}", "bad_envelope")]
)
def test_command_results_that_say_nothing(body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        iota_json.decode(SIREN, body)
    assert caught.value.reason == reason


def test_configuration_requests_are_refused() -> None:
    topic = iota_json.parse_topic("/json/tA9flood/gauge-07/configuration/commands")
    with pytest.raises(DecodeError) as caught:
        iota_json.decode(topic, b'{"type": "configuration", "fields": ["sleepTime"]}')
    assert caught.value.reason == "bad_envelope"


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=12),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["TimeInstant", "timestamp", "value", "lvl"]) | st.text(max_size=6),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
topics = st.builds(
    IotaTopic,
    apikey=st.just("k"),
    device_id=st.just("d"),
    kind=st.sampled_from(get_args(TopicKind)),
    object_id=st.just("lvl"),
)


def _check(readings: list[Reading]) -> None:
    for reading in readings:
        assert isinstance(reading.measures, dict)
        assert reading.observed_at is None or reading.observed_at.endswith("Z")


@settings(max_examples=300)
@given(topics, st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(topic: IotaTopic, body: bytes) -> None:
    with contextlib.suppress(DecodeError):
        _check(iota_json.decode(topic, body))


@settings(max_examples=300)
@given(topics, json_values)
def test_arbitrary_json_decodes_or_raises_decode_error(topic: IotaTopic, document: Any) -> None:
    with contextlib.suppress(DecodeError):
        _check(iota_json.decode(topic, orjson.dumps(document)))


@given(st.text(st.sampled_from("/jsonJSON+#attrscmdexe"), max_size=30))
def test_arbitrary_topics_parse_or_raise_bad_topic(topic: str) -> None:
    reason = None
    try:
        parsed = iota_json.parse_topic(topic)
    except DecodeError as error:
        reason = error.reason
    else:
        assert parsed.apikey
        assert parsed.device_id
    assert reason in (None, "bad_topic")
