"""Cayenne LPP frames: the spec's and our own worked examples, every type, broken frames, and
ChirpStack's nested rendering of the same data."""

from __future__ import annotations

import base64
from decimal import Decimal
from typing import Any

import pytest
from adapters.formats import cayenne_lpp
from adapters.formats.errors import DecodeError
from hypothesis import given, settings
from hypothesis import strategies as st

# 29-byte multi-sensor frame from ingest-formats.md d.
MULTI_SENSOR = bytes.fromhex(
    "01 67 00 7B 02 68 A3 03 02 00 F1 04 73 27 67 05 88 07 3A A9 01 4D A9 00 9F 60 06 00 01"
)
MULTI_SENSOR_B64 = "AWcAewJoowMCAPEEcydnBYgHOqkBTakAn2AGAAE="
MULTI_SENSOR_VALUES = {
    "temperature_1": 12.3,
    "relative_humidity_2": 81.5,
    "analog_in_3": 2.41,
    "barometric_pressure_4": 1008.7,
    "gps_5": {"latitude": 47.3769, "longitude": 8.5417, "altitude": 408.0},
    "digital_in_6": 1,
}


def test_multi_sensor_frame_decodes_to_the_documented_values() -> None:
    assert len(MULTI_SENSOR) == 29
    assert base64.b64decode(MULTI_SENSOR_B64) == MULTI_SENSOR
    assert cayenne_lpp.decode(MULTI_SENSOR) == MULTI_SENSOR_VALUES


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        ("03670110056700FF", {"temperature_3": 27.2, "temperature_5": 25.5}),
        ("0167FFD7", {"temperature_1": -4.1}),
        ("067104D2FB2E0000", {"accelerometer_6": {"x": 1.234, "y": -1.234, "z": 0.0}}),
    ],
)
def test_spec_readme_frames(frame: str, expected: dict[str, Any]) -> None:
    assert cayenne_lpp.decode(bytes.fromhex(frame)) == expected


@pytest.mark.parametrize(
    ("record", "name", "value"),
    [
        ("0000FF", "digital_in_0", 255),
        ("0701 01", "digital_out_7", 1),
        ("0202FF9C", "analog_in_2", -1.0),
        ("0303 7FFF", "analog_out_3", 327.67),
        ("0465FFFF", "luminosity_4", 65535),  # unsigned, unlike IoTagent-LoRaWAN's decoder
        ("056601", "presence_5", 1),
        ("0868 C8", "relative_humidity_8", 100.0),
        ("0973 FFFF", "barometric_pressure_9", 6553.5),  # unsigned as well
        ("0A86 0001 FFFF 8000", "gyrometer_10", {"x": 0.01, "y": -0.01, "z": -327.68}),
        (
            "0B88 F8C557 FFD8F0 FFFF9C",
            "gps_11",
            {"latitude": -47.3769, "longitude": -1.0, "altitude": -1.0},
        ),
        ("0C64 FFFFFFFF", "generic_sensor_12", 4294967295),
        ("0D74 0171", "voltage_13", 3.69),
        ("0E75 04D2", "current_14", 1.234),
        ("0F76 3B9ACA00", "frequency_15", 1_000_000_000),
        ("1078 64", "percentage_16", 100),
        ("1179 FF38", "altitude_17", -200),
        ("1280 FFFF", "power_18", 65535),
        ("1382 0001E240", "distance_19", 123.456),
        ("1483 FFFFFFFF", "energy_20", 4294967.295),
        ("1584 0167", "direction_21", 359),
        ("1685 67D3CCE8", "unix_time_22", 0x67D3CCE8),
        ("FF8E 01", "switch_255", 1),
    ],
)
def test_every_type_decodes_with_its_size_sign_and_resolution(
    record: str, name: str, value: object
) -> None:
    assert cayenne_lpp.decode(bytes.fromhex(record)) == {name: value}


def test_empty_frame_means_nothing_to_report() -> None:
    assert cayenne_lpp.decode(b"") == {}


def test_truncated_record_fails_the_frame_instead_of_giving_a_partial_value() -> None:
    with pytest.raises(DecodeError) as caught:
        cayenne_lpp.decode(MULTI_SENSOR[:-1])
    assert caught.value.reason == "truncated_payload"
    with pytest.raises(DecodeError) as caught:
        cayenne_lpp.decode(MULTI_SENSOR + b"\x07")  # a channel byte without a type
    assert caught.value.reason == "truncated_payload"


def test_unknown_type_fails_the_frame() -> None:
    with pytest.raises(DecodeError) as caught:
        cayenne_lpp.decode(bytes.fromhex("0167007B01FF00"))
    assert caught.value.reason == "unknown_lpp_type"


def test_position_off_the_earth_is_out_of_range() -> None:
    latitude_95 = (950000).to_bytes(3, "big")
    with pytest.raises(DecodeError) as caught:
        cayenne_lpp.decode(b"\x01\x88" + latitude_95 + bytes(6))
    assert caught.value.reason == "out_of_range"


def test_a_repeated_channel_keeps_the_later_value() -> None:
    assert cayenne_lpp.decode(bytes.fromhex("016700010167000A")) == {"temperature_1": 1.0}


def test_unix_time_channel_gives_the_reading_time() -> None:
    values = cayenne_lpp.decode(bytes.fromhex("0167007B 0285 67D3CCE8"))
    assert cayenne_lpp.observed_at(values) == "2025-03-14T06:30:00Z"
    assert cayenne_lpp.observed_at(MULTI_SENSOR_VALUES) is None


CHIRPSTACK_MULTI_SENSOR = {
    "temperatureSensor": {"1": 12.3},
    "humiditySensor": {"2": 81.5},
    "analogInput": {"3": 2.41},
    "barometer": {"4": 1008.7},
    "gpsLocation": {"5": {"latitude": 47.3769, "longitude": 8.5417, "altitude": 408.0}},
    "digitalInput": {"6": 1},
}


def test_chirpstack_object_flattens_to_the_names_of_the_binary_decoder() -> None:
    assert cayenne_lpp.is_chirpstack_object(CHIRPSTACK_MULTI_SENSOR)
    assert cayenne_lpp.from_chirpstack_object(CHIRPSTACK_MULTI_SENSOR) == cayenne_lpp.decode(
        MULTI_SENSOR
    )


def test_every_chirpstack_type_name_maps_to_a_tts_name() -> None:
    nested = {
        "digitalInput": {"0": 1},
        "digitalOutput": {"1": 0},
        "analogInput": {"2": 1.5},
        "analogOutput": {"3": -1.5},
        "illuminanceSensor": {"4": 300},
        "presenceSensor": {"5": 1},
        "temperatureSensor": {"6": 20.5},
        "humiditySensor": {"7": 50.0},
        "accelerometer": {"8": {"x": 0.0, "y": 0.0, "z": 1.0}},
        "barometer": {"9": 1013.2},
        "gyrometer": {"10": {"x": 1.0, "y": 2.0, "z": 3.0}},
        "gpsLocation": {"11": {"latitude": 1.0, "longitude": 2.0, "altitude": 3.0}},
    }
    assert set(cayenne_lpp.from_chirpstack_object(nested)) == {
        "digital_in_0",
        "digital_out_1",
        "analog_in_2",
        "analog_out_3",
        "luminosity_4",
        "presence_5",
        "temperature_6",
        "relative_humidity_7",
        "accelerometer_8",
        "barometric_pressure_9",
        "gyrometer_10",
        "gps_11",
    }


@pytest.mark.parametrize(
    "custom",
    [
        {},
        {"temperature": 12.3},
        {"temperatureSensor": 12.3},
        {"temperatureSensor": {"outside": 12.3}},
        {"temperatureSensor": {"256": 12.3}},
        {"temperatureSensor": {"1": 12.3}, "battery": 3.6},
    ],
)
def test_objects_of_other_codecs_are_not_taken_for_cayenne(custom: dict[str, Any]) -> None:
    assert not cayenne_lpp.is_chirpstack_object(custom)
    with pytest.raises(DecodeError) as caught:
        cayenne_lpp.from_chirpstack_object(custom)
    assert caught.value.reason == "bad_envelope"


@settings(max_examples=500)
@given(st.binary(max_size=64))
def test_arbitrary_bytes_decode_or_raise_decode_error(frame: bytes) -> None:
    try:
        values = cayenne_lpp.decode(frame)
    except DecodeError:
        return
    assert all(isinstance(name, str) for name in values)
    cayenne_lpp.observed_at(values)


# The tables of ingest-formats.md d, restated: type id -> (name, signed, component widths and
# divisors, component names). Kept independent of the decoder's own table on purpose.
SPEC: dict[int, tuple[str, bool, list[tuple[int, int]], tuple[str, ...]]] = {
    0x00: ("digital_in", False, [(1, 1)], ()),
    0x01: ("digital_out", False, [(1, 1)], ()),
    0x02: ("analog_in", True, [(2, 100)], ()),
    0x03: ("analog_out", True, [(2, 100)], ()),
    0x65: ("luminosity", False, [(2, 1)], ()),
    0x66: ("presence", False, [(1, 1)], ()),
    0x67: ("temperature", True, [(2, 10)], ()),
    0x68: ("relative_humidity", False, [(1, 2)], ()),
    0x71: ("accelerometer", True, [(2, 1000)] * 3, ("x", "y", "z")),
    0x73: ("barometric_pressure", False, [(2, 10)], ()),
    0x86: ("gyrometer", True, [(2, 100)] * 3, ("x", "y", "z")),
    0x88: ("gps", True, [(3, 10000), (3, 10000), (3, 100)], ("latitude", "longitude", "altitude")),
    0x64: ("generic_sensor", False, [(4, 1)], ()),
    0x74: ("voltage", False, [(2, 100)], ()),
    0x75: ("current", False, [(2, 1000)], ()),
    0x76: ("frequency", False, [(4, 1)], ()),
    0x78: ("percentage", False, [(1, 1)], ()),
    0x79: ("altitude", True, [(2, 1)], ()),
    0x80: ("power", False, [(2, 1)], ()),
    0x82: ("distance", False, [(4, 1000)], ()),
    0x83: ("energy", False, [(4, 1000)], ()),
    0x84: ("direction", False, [(2, 1)], ()),
    0x85: ("unix_time", False, [(4, 1)], ()),
    0x8E: ("switch", False, [(1, 1)], ()),
}
GPS_LIMITS = (900_000, 1_800_000, None)


@st.composite
def lpp_records(draw: st.DrawFn) -> tuple[bytes, str, object]:
    """One encoded record, its name, and the value it stands for (exact decimal arithmetic)."""
    type_id = draw(st.sampled_from(sorted(SPEC)))
    channel = draw(st.integers(0, 255))
    name, signed, layout, components = SPEC[type_id]
    encoded = bytes([channel, type_id])
    values: list[int | float] = []
    for index, (width, divisor) in enumerate(layout):
        bits = 8 * width
        low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
        limit = GPS_LIMITS[index] if type_id == 0x88 else None
        raw = draw(st.integers(-limit, limit) if limit else st.integers(low, high))
        encoded += raw.to_bytes(width, "big", signed=signed)
        values.append(raw if divisor == 1 else float(Decimal(raw) / divisor))
    value = dict(zip(components, values, strict=True)) if components else values[0]
    return encoded, f"{name}_{channel}", value


@given(st.lists(lpp_records(), max_size=12))
def test_encoded_records_decode_to_the_values_encoded(
    records: list[tuple[bytes, str, object]],
) -> None:
    expected = {name: value for _, name, value in records}
    assert cayenne_lpp.decode(b"".join(encoded for encoded, _, _ in records)) == expected
