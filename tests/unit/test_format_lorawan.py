"""LoRaWAN uplinks from The Things Stack and ChirpStack (v4 and v3), and the timestamps they
carry: the documented examples, the omitted-default rules, broken envelopes, fuzzing."""

from __future__ import annotations

import base64
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from adapters.formats import cayenne_lpp, chirpstack, ttn_v3
from adapters.formats.errors import REASONS, DecodeError
from adapters.formats.uplink import Uplink, parse_utc, utc_timestamp
from hypothesis import given, settings
from hypothesis import strategies as st

TTS_TOPIC = "v3/towna-flood@ttn/devices/gauge-07/up"
TTS_UPLINK: dict[str, Any] = {
    "end_device_ids": {
        "device_id": "gauge-07",
        "application_ids": {"application_id": "towna-flood"},
        "dev_eui": "70B3D57ED0061A2B",
        "join_eui": "0000000000000000",
        "dev_addr": "260B1C2D",
    },
    "correlation_ids": ["as:up:01HRZ0000000000000000000AA"],
    "received_at": "2025-03-14T06:30:01.612345678Z",
    "uplink_message": {
        "session_key_id": "AY3Fb5n0aQ7v0u7H6f3sTQ==",
        "f_port": 2,
        "f_cnt": 1042,
        "frm_payload": "AWcAewMCAPE=",
        "decoded_payload": {"temperature_1": 12.300000190734863, "analog_in_3": 2.41},
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "towna-gw-01", "eui": "A840411D2C3F4E5F"},
                "time": "2025-03-14T06:30:01.498Z",
                "timestamp": 3120456789,
                "rssi": -97,
                "channel_rssi": -97,
                "snr": 7.25,
                "channel_index": 3,
            }
        ],
        "settings": {
            "data_rate": {
                "lora": {"bandwidth": 125000, "spreading_factor": 7, "coding_rate": "4/5"}
            },
            "frequency": "867100000",
            "timestamp": 3120456789,
        },
        "received_at": "2025-03-14T06:30:01.560000000Z",
        "consumed_airtime": "0.051456s",
    },
}
FRAME = bytes.fromhex("01 67 00 7B 03 02 00 F1")  # temperature_1 = 12.3, analog_in_3 = 2.41

CS_APPLICATION = "7d3c2f7a-2a4e-4d8e-9c1a-5b2f0e6d1a10"
CS_TOPIC = f"application/{CS_APPLICATION}/device/70b3d57ed0061a2b/event/up"
CS_UPLINK: dict[str, Any] = {
    "deduplicationId": "0f6a7c1e-3b52-4d8b-a6a1-8c2d4e9b7f10",
    "time": "2025-03-14T06:30:01.512345678+00:00",
    "deviceInfo": {
        "tenantId": "4b1e0a52-6f0e-4c1d-9a7e-2a6c0d3f8e11",
        "tenantName": "Town A",
        "applicationId": CS_APPLICATION,
        "applicationName": "flood-gauges",
        "deviceProfileId": "c2f9d5a0-1e7b-4e44-8c1f-6f0a9b3d2e77",
        "deviceProfileName": "lpp-gauge",
        "deviceName": "gauge-07",
        "devEui": "70b3d57ed0061a2b",
        "tags": {"town": "towna"},
    },
    "devAddr": "260b1c2d",
    "adr": True,
    "dr": 5,
    "fCnt": 1042,
    "fPort": 2,
    "data": "AWcAewMCAPE=",
    "object": {"temperatureSensor": {"1": 12.3}, "analogInput": {"3": 2.41}},
    "rxInfo": [
        {
            "gatewayId": "a840411d2c3f4e5f",
            "uplinkId": 31415,
            "nsTime": "2025-03-14T06:30:01.498Z",
            "rssi": -97,
            "snr": 7.25,
            "channel": 3,
            "context": "uhn1Ag==",
            "metadata": {"region_config_id": "eu868", "region_common_name": "EU868"},
            "crcStatus": "CRC_OK",
        }
    ],
    "txInfo": {
        "frequency": 867100000,
        "modulation": {"lora": {"bandwidth": 125000, "spreadingFactor": 7, "codeRate": "CR_4_5"}},
    },
}

# ChirpStack v3 (json marshaler) carrying the 29-byte LPP frame of ingest-formats.md d and e.
CS3_TOPIC = "application/12/device/70b3d57ed0061a2b/event/up"
CS3_FRAME_B64 = "AWcAewJoowMCAPEEcydnBYgHOqkBTakAn2AGAAE="
CS3_UPLINK: dict[str, Any] = {
    "applicationID": "12",
    "applicationName": "weather",
    "deviceName": "ws-3",
    "devEUI": base64.b64encode(bytes.fromhex("70b3d57ed0061a2b")).decode(),
    "rxInfo": [
        {
            "gatewayID": base64.b64encode(bytes.fromhex("a840411d2c3f4e5f")).decode(),
            "time": "2025-03-14T06:30:01.498123Z",
            "rssi": -101,
            "loRaSNR": 3.5,
        }
    ],
    "txInfo": {
        "frequency": 868100000,
        "modulation": "LORA",
        "loRaModulationInfo": {"bandwidth": 125, "spreadingFactor": 9, "codeRate": "4/5"},
    },
    "fCnt": 7,
    "fPort": 1,
    "data": CS3_FRAME_B64,
    "objectJSON": orjson.dumps(
        {"temperatureSensor": {"1": 12.3}, "gpsLocation": {"5": {"latitude": 47.3769}}}
    ).decode(),
}


def tts(changes: Callable[[dict[str, Any]], None] | None = None) -> Uplink:
    message = orjson.loads(orjson.dumps(TTS_UPLINK))
    if changes:
        changes(message)
    return ttn_v3.decode(TTS_TOPIC, orjson.dumps(message))


def cs(changes: Callable[[dict[str, Any]], None] | None = None, *, v3: bool = False) -> Uplink:
    message = orjson.loads(orjson.dumps(CS3_UPLINK if v3 else CS_UPLINK))
    if changes:
        changes(message)
    return chirpstack.decode(CS3_TOPIC if v3 else CS_TOPIC, orjson.dumps(message))


def reason(call: Callable[[], object]) -> str:
    with pytest.raises(DecodeError) as caught:
        call()
    return caught.value.reason


def test_decode_error_carries_a_metrics_reason() -> None:
    error = DecodeError("bad_topic", "not ours")
    assert isinstance(error, ValueError)
    assert (error.reason, str(error)) == ("bad_topic", "not ours")
    assert {
        "malformed_json",
        "bad_topic",
        "bad_envelope",
        "undecodable_payload",
        "truncated_payload",
        "unknown_lpp_type",
        "out_of_range",
    } == REASONS


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2025-03-14T06:30:01.612345678Z", "2025-03-14T06:30:01.612345Z"),
        ("2025-03-14T06:30:01.512345678+00:00", "2025-03-14T06:30:01.512345Z"),
        ("2025-03-14T08:30:00+02:00", "2025-03-14T06:30:00Z"),
        ("2025-03-14T01:00:00-0530", "2025-03-14T06:30:00Z"),
        ("2025-03-14t06:30:00.000z", "2025-03-14T06:30:00Z"),
        ("2025-03-14 06:30:00.1", "2025-03-14T06:30:00.100000Z"),
        ("2025-01-01T00:30:00+01:00", "2024-12-31T23:30:00Z"),
    ],
)
def test_timestamps_are_normalised_to_utc_z(text: str, utc: str) -> None:
    assert utc_timestamp(text) == utc


@pytest.mark.parametrize(
    "text",
    [
        "",
        "yesterday",
        "2025-03-14",
        "2025-02-30T00:00:00Z",
        "2025-03-14T24:00:00Z",
        "2025-03-14T06:30:00+24:00",
        "2025-03-14T06:30:00+01:60",
        "0001-01-01T00:00:00+01:00",
        "٢٠٢٥-03-14T06:30:00Z",
    ],
)
def test_unparsable_timestamps_are_bad_envelopes(text: str) -> None:
    assert reason(lambda: utc_timestamp(text)) == "bad_envelope"


EARLIEST = datetime(2, 1, 1, tzinfo=UTC)
LATEST = datetime(9998, 12, 31, tzinfo=UTC)
instants = st.builds(
    lambda after, minutes: (EARLIEST + timedelta(microseconds=after)).astimezone(
        timezone(timedelta(minutes=minutes))
    ),
    st.integers(0, (LATEST - EARLIEST) // timedelta(microseconds=1)),
    st.integers(-(23 * 60 + 59), 23 * 60 + 59),
)


@given(instants)
def test_any_rfc3339_time_keeps_its_instant(moment: datetime) -> None:
    normalised = utc_timestamp(moment.isoformat())
    assert normalised.endswith("Z")
    assert parse_utc(normalised) == moment == parse_utc(moment.isoformat())
    assert utc_timestamp(normalised) == normalised
    assert parse_utc(normalised).tzinfo is UTC


def test_documented_tts_uplink() -> None:
    uplink = tts()
    assert uplink == Uplink(
        application_id="towna-flood@ttn",
        device_id="gauge-07",
        dev_eui="70b3d57ed0061a2b",
        decoded={"temperature_1": 12.300000190734863, "analog_in_3": 2.41},
        raw=FRAME,
        observed_at="2025-03-14T06:30:01.498000Z",
        radio={
            "rssi": -97,
            "snr": 7.25,
            "gateway_id": "towna-gw-01",
            "gateway_count": 1,
            "f_cnt": 1042,
            "f_port": 2,
            "frequency": 867100000,
            "spreading_factor": 7,
            "bandwidth": 125000,
            "coding_rate": "4/5",
        },
        dedup_id="as:up:01HRZ0000000000000000000AA",
    )
    assert uplink.raw is not None
    assert cayenne_lpp.decode(uplink.raw) == {"temperature_1": 12.3, "analog_in_3": 2.41}


def test_tts_open_source_topic_has_no_tenant() -> None:
    assert ttn_v3.parse_topic("v3/towna-flood/devices/gauge-07/up") == ("towna-flood", "gauge-07")


@pytest.mark.parametrize(
    "topic",
    [
        "v3/towna-flood@ttn/devices/gauge-07/join",
        "v3/towna-flood@ttn/devices/gauge-07/down/queued",
        "v3/towna-flood@ttn/devices//up",
        "v3/@ttn/devices/gauge-07/up",
        "v3/towna-flood@/devices/gauge-07/up",
        "v3/a@b@c/devices/gauge-07/up",
        "towna-flood/devices/gauge-07/up",
        CS_TOPIC,
    ],
)
def test_tts_other_topics_are_bad_topics(topic: str) -> None:
    assert reason(lambda: ttn_v3.parse_topic(topic)) == "bad_topic"
    assert reason(lambda: ttn_v3.decode(topic, orjson.dumps(TTS_UPLINK))) == "bad_topic"


def test_tts_time_falls_back_from_gateway_to_network_server() -> None:
    def no_gateway_time(message: dict[str, Any]) -> None:
        message["uplink_message"]["rx_metadata"][0]["time"] = "garbage"

    def no_times(message: dict[str, Any]) -> None:
        no_gateway_time(message)
        del message["uplink_message"]["received_at"], message["received_at"]

    assert tts(no_gateway_time).observed_at == "2025-03-14T06:30:01.560000Z"
    assert tts(no_times).observed_at is None


def test_tts_omitted_defaults_are_not_errors() -> None:
    def minimal(message: dict[str, Any]) -> None:
        message.clear()
        message["uplink_message"] = {}

    uplink = tts(minimal)
    assert (uplink.dev_eui, uplink.decoded, uplink.raw, uplink.dedup_id) == (None,) * 4
    assert uplink.radio == {"f_cnt": 0, "f_port": 0}


def test_tts_strongest_gateway_and_coding_rate_under_settings() -> None:
    def two_gateways(message: dict[str, Any]) -> None:
        up = message["uplink_message"]
        up["rx_metadata"].insert(0, {"gateway_ids": {"gateway_id": "far"}, "rssi": -119})
        del up["settings"]["data_rate"]["lora"]["coding_rate"]
        up["settings"]["coding_rate"] = "4/6"
        message["correlation_ids"] = ["gs:uplink:X", "as:up:Y"]
        message["simulated"] = True

    uplink = tts(two_gateways)
    assert (uplink.radio["gateway_id"], uplink.radio["gateway_count"]) == ("towna-gw-01", 2)
    assert uplink.radio["coding_rate"] == "4/6"
    assert uplink.radio["simulated"] is True
    assert uplink.dedup_id == "as:up:Y"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m.pop("uplink_message"), "bad_envelope"),  # e.g. a join or downlink event
        (lambda m: m.update(uplink_message=[]), "bad_envelope"),
        (lambda m: m["uplink_message"].update(decoded_payload=[1]), "bad_envelope"),
        (lambda m: m["uplink_message"].update(frm_payload="not base64!"), "undecodable_payload"),
        (lambda m: m["uplink_message"].update(frm_payload=42), "undecodable_payload"),
    ],
)
def test_tts_broken_envelopes(change: Callable[[dict[str, Any]], object], expected: str) -> None:
    assert reason(lambda: tts(lambda m: (change(m), None)[1])) == expected


def test_tts_body_that_is_not_a_json_object() -> None:
    assert reason(lambda: ttn_v3.decode(TTS_TOPIC, b"[]")) == "bad_envelope"
    assert reason(lambda: ttn_v3.decode(TTS_TOPIC, b"\xff{")) == "malformed_json"


def test_documented_chirpstack_v4_uplink() -> None:
    assert cs() == Uplink(
        application_id=CS_APPLICATION,
        device_id="gauge-07",
        dev_eui="70b3d57ed0061a2b",
        decoded={"temperature_1": 12.3, "analog_in_3": 2.41},
        raw=FRAME,
        observed_at="2025-03-14T06:30:01.512345Z",
        radio={
            "f_cnt": 1042,
            "f_port": 2,
            "data_rate": 5,
            "gateway_count": 1,
            "rssi": -97,
            "snr": 7.25,
            "gateway_id": "a840411d2c3f4e5f",
            "frequency": 867100000,
            "spreading_factor": 7,
            "bandwidth": 125000,
            "coding_rate": "4/5",
        },
        dedup_id="0f6a7c1e-3b52-4d8b-a6a1-8c2d4e9b7f10",
    )


def test_chirpstack_v4_time_prefers_gps_gateway_then_server_then_ns_time() -> None:
    def gps_gateway(message: dict[str, Any]) -> None:
        message["rxInfo"][0]["gwTime"] = "2025-03-14T06:30:01.4981234Z"

    def no_time(message: dict[str, Any]) -> None:
        del message["time"]

    assert cs(gps_gateway).observed_at == "2025-03-14T06:30:01.498123Z"
    assert cs(no_time).observed_at == "2025-03-14T06:30:01.498000Z"


def test_chirpstack_v4_unnamed_device_custom_codec_and_omitted_defaults() -> None:
    def custom(message: dict[str, Any]) -> None:
        del message["deviceInfo"]["deviceName"], message["fCnt"], message["dr"]
        message["object"] = {"temperatureSensor": {"1": 12.3}, "battery": 3.6}

    uplink = cs(custom)
    assert uplink.device_id == uplink.dev_eui == "70b3d57ed0061a2b"
    assert uplink.decoded == {"temperatureSensor": {"1": 12.3}, "battery": 3.6}
    assert (uplink.radio["f_cnt"], uplink.radio["data_rate"]) == (0, 0)


def test_chirpstack_v3_uplink_by_shape() -> None:
    uplink = cs(v3=True)
    assert uplink == Uplink(
        application_id="12",
        device_id="ws-3",
        dev_eui="70b3d57ed0061a2b",
        decoded={"temperature_1": 12.3, "gps_5": {"latitude": 47.3769}},
        raw=base64.b64decode(CS3_FRAME_B64),
        observed_at="2025-03-14T06:30:01.498123Z",
        radio={
            "f_cnt": 7,
            "f_port": 1,
            "data_rate": 0,
            "gateway_count": 1,
            "rssi": -101,
            "snr": 3.5,
            "gateway_id": "a840411d2c3f4e5f",
            "frequency": 868100000,
            "spreading_factor": 9,
            "bandwidth": 125000,
            "coding_rate": "4/5",
        },
        dedup_id=None,
    )
    # ingest-formats.md e: the IoT Agent's mapping of this frame, checked on our side; the
    # position must come out as latitude 47.37, longitude 8.54 (GeoJSON [8.5417, 47.3769]).
    assert uplink.raw is not None
    values = cayenne_lpp.decode(uplink.raw)
    assert (values["temperature_1"], values["relative_humidity_2"]) == (12.3, 81.5)
    assert values["barometric_pressure_4"] == 1008.7
    gps = values["gps_5"]
    assert [gps["longitude"], gps["latitude"]] == [8.5417, 47.3769]


def test_chirpstack_v3_legacy_marshaler_object_and_hex_gateway() -> None:
    def legacy(message: dict[str, Any]) -> None:
        del message["objectJSON"]
        message["object"] = {"level": 2.41}
        message["rxInfo"][0]["gatewayID"] = "A840411D2C3F4E5F"

    uplink = cs(legacy, v3=True)
    assert uplink.decoded == {"level": 2.41}
    assert uplink.radio["gateway_id"] == "a840411d2c3f4e5f"


def test_chirpstack_topic() -> None:
    topic = f"application/{CS_APPLICATION}/device/70B3D57ED0061A2B/event/up"
    assert chirpstack.parse_topic(topic) == (CS_APPLICATION, "70b3d57ed0061a2b")


@pytest.mark.parametrize(
    "topic",
    [
        f"application/{CS_APPLICATION}/device/70b3d57ed0061a2b/event/join",
        f"application/{CS_APPLICATION}/device/70b3d57ed0061a2b/command/down",
        f"application/{CS_APPLICATION}/device/70b3d57ed0061a2/event/up",
        "application//device/70b3d57ed0061a2b/event/up",
        "application/12/device/70b3d57ed0061a2b/rx",
        TTS_TOPIC,
    ],
)
def test_chirpstack_other_topics_are_bad_topics(topic: str) -> None:
    assert reason(lambda: chirpstack.parse_topic(topic)) == "bad_topic"


@pytest.mark.parametrize(
    ("change", "v3", "expected"),
    [
        (lambda m: m.pop("deviceInfo"), False, "bad_envelope"),
        (lambda m: m.update(deviceInfo="gauge-07"), False, "bad_envelope"),
        (lambda m: m.update(object=[12.3]), False, "bad_envelope"),
        (lambda m: m.update(data="%%%"), False, "undecodable_payload"),
        (lambda m: m.update(objectJSON="{temperature"), True, "malformed_json"),
        (lambda m: m.update(objectJSON=7), True, "bad_envelope"),
        (lambda m: m.update(objectJSON="[1]"), True, "bad_envelope"),
    ],
)
def test_chirpstack_broken_envelopes(
    change: Callable[[dict[str, Any]], object], v3: bool, expected: str
) -> None:
    assert reason(lambda: cs(lambda m: (change(m), None)[1], v3=v3)) == expected


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(codec="utf-8"), max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3)
    ),
    max_leaves=12,
)
ints = st.integers(-(2**63), 2**63 - 1)
times = st.from_regex(
    r"\A[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,12})?"
    r"(Z|[+-][0-9]{2}:?[0-9]{2})?\Z"
)
euis = st.text("0123456789abcdefABCDEF", min_size=16, max_size=16)
base64s = st.binary(max_size=24).map(lambda b: base64.b64encode(b).decode())
lpp_objects = st.dictionaries(
    st.sampled_from(["temperatureSensor", "gpsLocation", "barometer", "custom"]),
    st.dictionaries(st.sampled_from(["1", "255", "256", "x"]), json_values, max_size=2),
    max_size=3,
)


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return json_values | strategy


def some(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={name: maybe(s) for name, s in fields.items()})


tts_messages = some(
    end_device_ids=some(dev_eui=euis),
    correlation_ids=st.lists(maybe(st.just("as:up:1"))),
    received_at=times,
    simulated=st.booleans(),
    uplink_message=some(
        f_cnt=st.integers(0, 2**32),
        f_port=st.integers(0, 255),
        frm_payload=base64s,
        decoded_payload=json_values,
        received_at=times,
        rx_metadata=st.lists(
            some(
                gateway_ids=some(gateway_id=st.text()),
                time=times,
                rssi=ints,
                snr=st.floats(),
            )
        ),
        settings=some(
            frequency=st.integers(0, 10**9).map(str),
            time=times,
            coding_rate=st.text(),
            data_rate=some(lora=some(spreading_factor=ints, coding_rate=st.text())),
        ),
    ),
)
receptions = some(
    gatewayId=euis,
    gatewayID=base64s | euis,
    gwTime=times,
    nsTime=times,
    time=times,
    rssi=ints,
    snr=st.floats(),
    loRaSNR=st.floats(),
)
chirpstack_messages = some(
    deviceInfo=some(deviceName=st.text()),
    applicationID=st.just("12"),
    deviceName=st.text(),
    deduplicationId=st.text(),
    time=times,
    fCnt=st.integers(0, 2**32),
    fPort=st.integers(0, 255),
    dr=st.integers(0, 15),
    data=base64s,
    object=lpp_objects,
    objectJSON=lpp_objects.map(lambda o: orjson.dumps(o).decode()),
    rxInfo=st.lists(receptions, max_size=3),
    txInfo=some(
        frequency=ints,
        modulation=some(lora=some(codeRate=st.sampled_from(["CR_4_5", "CR_LI_4_8", "x"]))),
        loRaModulationInfo=some(bandwidth=ints, codeRate=st.text()),
    ),
)


def _decode_or_decode_error(
    decode: Callable[[str, bytes], Uplink], topic: str, body: bytes
) -> None:
    with contextlib.suppress(DecodeError):
        uplink = decode(topic, body)
        assert uplink.observed_at is None or uplink.observed_at.endswith("Z")
        assert uplink.dev_eui is None or uplink.dev_eui == uplink.dev_eui.lower()


@settings(max_examples=300)
@given(st.binary(max_size=96))
def test_arbitrary_bytes_never_raise_anything_but_decode_error(body: bytes) -> None:
    _decode_or_decode_error(ttn_v3.decode, TTS_TOPIC, body)
    _decode_or_decode_error(chirpstack.decode, CS_TOPIC, body)


@settings(max_examples=300)
@given(json_values)
def test_arbitrary_json_never_raises_anything_but_decode_error(document: Any) -> None:
    _decode_or_decode_error(ttn_v3.decode, TTS_TOPIC, orjson.dumps(document))
    _decode_or_decode_error(chirpstack.decode, CS_TOPIC, orjson.dumps(document))


@settings(max_examples=500)
@given(tts_messages)
def test_arbitrary_tts_shaped_envelopes_never_raise_anything_but_decode_error(
    message: dict[str, Any],
) -> None:
    _decode_or_decode_error(ttn_v3.decode, TTS_TOPIC, orjson.dumps(message))


@settings(max_examples=500)
@given(chirpstack_messages)
def test_arbitrary_chirpstack_shaped_envelopes_never_raise_anything_but_decode_error(
    message: dict[str, Any],
) -> None:
    _decode_or_decode_error(chirpstack.decode, CS_TOPIC, orjson.dumps(message))
    _decode_or_decode_error(chirpstack.decode, CS3_TOPIC, orjson.dumps(message))


def _failure(parse: Callable[[str], tuple[str, str]], topic: str) -> str | None:
    try:
        parse(topic)
    except DecodeError as error:
        return error.reason
    return None


@given(st.text(st.sampled_from("/v3@devicesupapplicationevent0123456789abcdef"), max_size=60))
def test_arbitrary_topics_raise_only_bad_topic(topic: str) -> None:
    assert _failure(ttn_v3.parse_topic, topic) in (None, "bad_topic")
    assert _failure(chirpstack.parse_topic, topic) in (None, "bad_topic")
