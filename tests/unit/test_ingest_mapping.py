"""Measures → NGSI-LD: the documented river-gauge and LoRaWAN examples, every IoT Agent type,
rejections, explicitAttrs, coordinates order, radio metadata, LPP time, and fuzzing (whatever a
device sends, the fragment parses as NGSI-LD)."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import orjson
import pytest
from adapters.formats import chirpstack, iota_json, ttn_v3
from adapters.formats.errors import DecodeError
from adapters.formats.uplink import Reading, Uplink, parse_utc
from adapters.mapping import entity_fragment, radio_fragment, uplink_readings
from broker.contexts import builtin_documents
from broker.ngsild.entity import EntityDoc, parse_entity
from broker.ngsild.names import format_timestamp
from broker.ngsild.terms import build_term_table
from broker.services.provisioning.model import (
    ApplicationServer,
    AttributeMapping,
    Effective,
    Lorawan,
)
from hypothesis import given, settings
from hypothesis import strategies as st

CORE = "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context-v1.8.jsonld"
TERMS = build_term_table(None, CORE, builtin_documents())
ARRIVAL = "2025-03-14T06:31:07.250Z"
GAUGE_ID = "urn:ngsi-ld:WaterObserved:towna:gauge-07"


def effective(
    *attributes: AttributeMapping,
    statics: tuple[AttributeMapping, ...] = (),
    explicit: bool = False,
    entity_id: str = GAUGE_ID,
    entity_type: str = "WaterObserved",
) -> Effective:
    return Effective(
        tenant="towna",
        device_id="gauge-07",
        entity_id=entity_id,
        entity_type=entity_type,
        attributes=attributes,
        static_attributes=statics,
        explicit_attrs=explicit,
        timestamp=True,
    )


def parsed(fragment: dict[str, Any]) -> EntityDoc:
    """What the broker stores for ``fragment``: proof that it is valid NGSI-LD."""
    return parse_entity(fragment, TERMS)


def one(kind: str, value: Any, *, name: str = "reading") -> tuple[dict[str, Any] | None, list]:
    """The attribute a single measure of provisioned type ``kind`` becomes (None if refused)."""
    device = effective(AttributeMapping(name, kind, object_id="m"))
    fragment, rejected = entity_fragment(device, Reading({"m": value}), received_at=ARRIVAL)
    parsed(fragment)
    return fragment.get(name), rejected


# ingest-formats.md a: "Example (for tests): river gauge through IoT Agent JSON".
RIVER_GAUGE = effective(
    AttributeMapping(
        "height", "Number", "lvl", metadata={"unitCode": {"type": "Text", "value": "MTR"}}
    ),
    AttributeMapping(
        "flow", "Number", "flw", metadata={"unitCode": {"type": "Text", "value": "MQS"}}
    ),
    AttributeMapping("batteryVoltage", "Number", "bat"),
    statics=(
        AttributeMapping(
            "location",
            "geo:json",
            value={"type": "Point", "coordinates": [8.5417, 47.3769]},
        ),
        AttributeMapping("refDevice", "Relationship", value="urn:ngsi-ld:Device:towna:gauge-07"),
    ),
)
RIVER_GAUGE_ENTITY = orjson.loads(
    """{"id":"urn:ngsi-ld:WaterObserved:towna:gauge-07","type":"WaterObserved",
 "height":{"type":"Property","value":2.41,"unitCode":"MTR","observedAt":"2025-03-14T06:30:00.000Z"},
 "flow":{"type":"Property","value":37.5,"unitCode":"MQS","observedAt":"2025-03-14T06:30:00.000Z"},
 "batteryVoltage":{"type":"Property","value":3.61,"observedAt":"2025-03-14T06:30:00.000Z"},
 "refDevice":{"type":"Relationship","object":"urn:ngsi-ld:Device:towna:gauge-07",
              "observedAt":"2025-03-14T06:30:00.000Z"},
 "location":{"type":"GeoProperty","value":{"type":"Point","coordinates":[8.5417,47.3769]},
             "observedAt":"2025-03-14T06:30:00.000Z"},
 "@context":"<jsonLdContext>"}"""
)


def observed_instants(entity: dict[str, Any]) -> set[datetime]:
    return {parse_utc(attr["observedAt"]) for attr in entity.values() if isinstance(attr, dict)}


def same_instants(fragment: dict[str, Any], expected: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` with each observedAt written like ``expected``'s, once they are the same
    instant (the documented entity has Toshi's millisecond format, the device wrote seconds)."""
    aligned = orjson.loads(orjson.dumps(fragment))
    for name, attribute in aligned.items():
        if isinstance(attribute, dict) and "observedAt" in attribute:
            want = expected[name]["observedAt"]
            assert parse_utc(attribute["observedAt"]) == parse_utc(want)
            attribute["observedAt"] = want
    return aligned


def test_the_river_gauge_example_gives_the_documented_entity() -> None:
    where = iota_json.parse_topic("/json/tA9flood/gauge-07/attrs")
    payload = b'{"lvl": 2.41, "flw": 37.5, "bat": 3.61, "TimeInstant": "2025-03-14T06:30:00Z"}'
    [reading] = iota_json.decode(where, payload)
    fragment, rejected = entity_fragment(RIVER_GAUGE, reading, received_at=ARRIVAL)
    expected = {key: value for key, value in RIVER_GAUGE_ENTITY.items() if key != "@context"}
    assert rejected == []
    assert same_instants(fragment, expected) == expected
    # Toshi writes its own times the way the document does; the device's are the same instants.
    assert format_timestamp(parse_utc(reading.observed_at or "")) == "2025-03-14T06:30:00.000Z"
    doc = parsed(fragment)
    assert doc["id"] == GAUGE_ID
    height = doc["attrs"]["https://uri.etsi.org/ngsi-ld/default-context/height"][0]
    assert height["value"] == 2.41 and height["unitCode"] == "MTR"
    assert doc["attrs"]["https://uri.etsi.org/ngsi-ld/location"][0]["type"] == "GeoProperty"


def test_the_river_gauge_keeps_an_unprovisioned_measure_unless_explicit_attrs() -> None:
    reading = Reading({"lvl": 2.41, "noise": 7}, "2025-03-14T06:30:00Z")
    fragment, _ = entity_fragment(RIVER_GAUGE, reading, received_at=ARRIVAL)
    assert fragment["noise"] == {
        "type": "Property",
        "value": 7,
        "observedAt": "2025-03-14T06:30:00Z",
    }
    parsed(fragment)
    explicit = effective(*RIVER_GAUGE.attributes, explicit=True)
    fragment, rejected = entity_fragment(explicit, reading, received_at=ARRIVAL)
    assert "noise" not in fragment and rejected == []
    assert fragment["height"]["value"] == 2.41


def test_arrival_time_is_used_only_when_the_device_sent_no_time() -> None:
    untimed, _ = entity_fragment(RIVER_GAUGE, Reading({"lvl": 1}), received_at=ARRIVAL)
    assert {attr["observedAt"] for attr in untimed.values() if isinstance(attr, dict)} == {ARRIVAL}
    # A TimeInstant measure wins over arrival (and over network time), even under
    # explicitAttrs, where the IoT Agent would have filtered it out first.
    explicit = effective(*RIVER_GAUGE.attributes, explicit=True)
    measures = {"lvl": 1, "TimeInstant": "2025-03-14T07:30:00+01:00"}
    timed, rejected = entity_fragment(
        explicit, Reading(measures, "2025-03-14T06:30:05Z"), received_at=ARRIVAL
    )
    assert timed["height"]["observedAt"] == "2025-03-14T06:30:00Z"
    assert "TimeInstant" not in timed and rejected == []


def test_an_attribute_provisioned_as_time_instant_sets_observed_at() -> None:
    device = effective(
        AttributeMapping("TimeInstant", "DateTime", "ts"), AttributeMapping("level", "Number")
    )
    reading = Reading({"ts": "2025-03-14T06:29:00Z", "level": 3})
    fragment, rejected = entity_fragment(device, reading, received_at=ARRIVAL)
    assert fragment["level"]["observedAt"] == "2025-03-14T06:29:00Z"
    assert set(fragment) == {"id", "type", "level"} and rejected == []


def test_metadata_becomes_unit_code_observed_at_or_a_sub_property() -> None:
    metadata = {
        "unitCode": {"type": "Text", "value": "CEL"},
        "TimeInstant": {"type": "DateTime", "value": "2025-01-01T00:00:00Z"},
        "accuracy": {"type": "Number", "value": "0.5"},
    }
    device = effective(AttributeMapping("temperature", "Number", "t", metadata=metadata))
    fragment, _ = entity_fragment(device, Reading({"t": 12.3}), received_at=ARRIVAL)
    assert fragment["temperature"] == {
        "type": "Property",
        "value": 12.3,
        "unitCode": "CEL",
        "observedAt": "2025-01-01T00:00:00Z",
        "accuracy": {"type": "Property", "value": 0.5},
    }
    parsed(fragment)


def test_a_unit_provisioned_on_a_relationship_is_left_out() -> None:
    metadata = {"unitCode": {"type": "Text", "value": "MTR"}}
    device = effective(AttributeMapping("near", "Relationship", "n", metadata=metadata))
    fragment, rejected = entity_fragment(
        device, Reading({"n": "urn:ngsi-ld:Bridge:b1"}), received_at=ARRIVAL
    )
    assert "unitCode" not in fragment["near"] and rejected == []
    parsed(fragment)


def point(*coordinates: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": list(coordinates)}


def instant(text: str) -> dict[str, Any]:
    return {"value": {"@type": "DateTime", "@value": text}}


BRIDGE = "urn:ngsi-ld:Bridge:b1"
TYPE_CASES = [
    ("Number", 2.41, {"value": 2.41}),
    ("number", " 2.41 ", {"value": 2.41}),
    ("Integer", "-7", {"value": -7}),
    ("Float", "1e3", {"value": 1000.0}),
    ("Text", "high", {"value": "high"}),
    ("String", 7, {"value": "7"}),
    ("Text", {"a": [1, True]}, {"value": '{"a":[1,true]}'}),
    ("Boolean", True, {"value": True}),
    ("boolean", "FALSE", {"value": False}),
    ("Boolean", 1, {"value": True}),
    ("DateTime", "2025-03-14T07:30:00+01:00", instant("2025-03-14T06:30:00Z")),
    ("Date", "2025-03-14", instant("2025-03-14T00:00:00Z")),
    ("Time", "2025-03-14T06:30:00.5Z", instant("2025-03-14T06:30:00.500000Z")),
    ("Object", '{"pump": "on"}', {"value": {"pump": "on"}}),
    ("Object", {"pump": "on"}, {"value": {"pump": "on"}}),
    ("Array", "[1, 2]", {"value": [1, 2]}),
    ("Property", "as is", {"value": "as is"}),
    ("Hidden", [1, "x"], {"value": [1, "x"]}),
    ("Relationship", BRIDGE, {"type": "Relationship", "object": BRIDGE}),
    ("LanguageProperty", {"en": "high", "ja": "高い"},
     {"type": "LanguageProperty", "languageMap": {"en": "high", "ja": "高い"}}),
    ("LanguageProperty", "high", {"type": "LanguageProperty", "languageMap": {"@none": "high"}}),
    ("VocabProperty", "flooding", {"type": "VocabProperty", "vocab": "flooding"}),
    ("JsonProperty", '{"raw": [1]}', {"type": "JsonProperty", "json": {"raw": [1]}}),
    ("ListProperty", "[3, 1, 2]", {"type": "ListProperty", "valueList": [3, 1, 2]}),
    ("ListRelationship", ["urn:a:1", {"object": "urn:a:2"}],
     {"type": "ListRelationship", "objectList": [{"object": "urn:a:1"}, {"object": "urn:a:2"}]}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "expected"), TYPE_CASES)
def test_each_iot_agent_type_becomes_its_ngsi_ld_attribute(
    kind: str, value: Any, expected: dict[str, Any]
) -> None:
    attribute, rejected = one(kind, value)
    assert rejected == []
    assert attribute == {"type": "Property", **expected, "observedAt": ARRIVAL}


GEO_CASES = [
    ("geo:json", point(8.5417, 47.3769), point(8.5417, 47.3769)),
    ("geo:json", '{"type": "Point", "coordinates": [8.5417, 47.3769]}', point(8.5417, 47.3769)),
    ("geo:json", "8.5417,47.3769", point(8.5417, 47.3769)),
    ("GeoProperty", [8.5417, 47.3769, 408], point(8.5417, 47.3769, 408)),
    ("Point", " 8.5417 , 47.3769", point(8.5417, 47.3769)),
    # NGSI-v2 geo:point is "lat,lon": swapped to GeoJSON order.
    ("geo:point", "47.3769, 8.5417", point(8.5417, 47.3769)),
    ("geo:point", [47.3769, 8.5417], point(8.5417, 47.3769)),
    # An LPP position names its axes: never swapped, whatever the type.
    ("geo:point", {"latitude": 47.3769, "longitude": 8.5417, "altitude": 408.0},
     point(8.5417, 47.3769, 408.0)),
    ("geo:json", {"latitude": 47.3769, "longitude": 8.5417}, point(8.5417, 47.3769)),
    ("LineString", "8.5,47.3,8.6,47.4",
     {"type": "LineString", "coordinates": [[8.5, 47.3], [8.6, 47.4]]}),
    ("Polygon", [0, 0, 1, 0, 1, 1, 0, 0],
     {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [1, 1], [0, 0]]]}),
    ("MultiPoint", "1,2,3,4", {"type": "MultiPoint", "coordinates": [[1, 2], [3, 4]]}),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value", "geometry"), GEO_CASES)
def test_geo_types_become_geo_properties_in_lon_lat_order(
    kind: str, value: Any, geometry: dict[str, Any]
) -> None:
    attribute, rejected = one(kind, value, name="location")
    assert rejected == []
    assert attribute == {"type": "GeoProperty", "value": geometry, "observedAt": ARRIVAL}


UNFIT_CASES = [
    ("Number", "abc"), ("Number", True), ("Number", "nan"), ("Number", "1e999"),
    ("Integer", [1]), ("Number", "1_000"), ("Boolean", "yes"), ("Boolean", 2),
    ("DateTime", "soon"), ("Date", 1741933800), ("Object", "{bad json"),
    ("Relationship", "not a uri"), ("Relationship", []), ("Relationship", "urn:ngsi-ld:null"),
    ("LanguageProperty", {"not a tag!": "x"}), ("LanguageProperty", {"en": 3}),
    ("VocabProperty", "two words"), ("JsonProperty", "[1, 2]"), ("ListProperty", "x"),
    ("ListRelationship", ["nope"]), ("Property", None), ("Text", None),
    ("Property", {"deep": ["urn:ngsi-ld:null"]}),
    ("geo:json", "8.5,95"),          # latitude beyond the pole
    ("geo:point", "95,8.5"),          # the same, written lat,lon
    ("geo:json", [200, 10]),          # longitude out of range
    ("geo:point", {"latitude": 47.3, "longitude": "east"}),
    ("geo:json", {"type": "Point", "coordinates": [1]}),
    ("geo:json", "somewhere"), ("geo:json", True), ("Point", "1,2,3,4"),
    ("geo:json", {"type": [], "coordinates": [1, 2]}),  # found by the fuzz test below
]  # fmt: skip


@pytest.mark.parametrize(("kind", "value"), UNFIT_CASES)
def test_a_value_that_cannot_be_its_type_is_rejected_alone(kind: str, value: Any) -> None:
    device = effective(AttributeMapping("reading", kind, "m"), AttributeMapping("ok", "Number"))
    fragment, rejected = entity_fragment(
        device, Reading({"m": value, "ok": 1}), received_at=ARRIVAL
    )
    assert [(r.object_id, r.reason) for r in rejected] == [("m", "out_of_range")]
    assert rejected[0].detail
    assert "reading" not in fragment and fragment["ok"]["value"] == 1
    parsed(fragment)


def test_deeply_nested_values_are_rejected_before_they_reach_the_store() -> None:
    deep: Any = 1
    for _ in range(100):
        deep = [deep]
    attribute, rejected = one("Property", deep)
    assert attribute is None and [r.reason for r in rejected] == ["out_of_range"]


@pytest.mark.parametrize(
    "key", ["bad key", "1st", "value", "observedAt", "@context", "scope", "ngsi-ld:location", ""]
)
def test_an_unprovisioned_measure_with_an_unusable_name_is_rejected(key: str) -> None:
    fragment, rejected = entity_fragment(
        effective(), Reading({key: 1, "fine_name": 2}), received_at=ARRIVAL
    )
    assert [(r.object_id, r.reason) for r in rejected] == [(key, "bad_name")]
    assert fragment["fine_name"]["value"] == 2
    parsed(fragment)


def test_measures_named_id_and_type_are_renamed_and_location_is_always_geo() -> None:
    reading = Reading({"id": "dev-7", "type": "gauge", "location": "8.5417,47.3769"})
    fragment, rejected = entity_fragment(effective(), reading, received_at=ARRIVAL)
    assert fragment["id"] == GAUGE_ID and fragment["type"] == "WaterObserved"
    assert fragment["measure_id"]["value"] == "dev-7"
    assert fragment["measure_type"]["value"] == "gauge"
    assert fragment["location"]["value"] == {"type": "Point", "coordinates": [8.5417, 47.3769]}
    assert rejected == []
    parsed(fragment)


def test_a_measure_is_also_found_by_its_attribute_name_and_beats_a_static_value() -> None:
    device = effective(
        AttributeMapping("height", "Number", "lvl"),
        statics=(AttributeMapping("height", "Number", value=0),),
    )
    fragment, _ = entity_fragment(device, Reading({"height": "2.5"}), received_at=ARRIVAL)
    assert fragment["height"]["value"] == 2.5


def test_a_static_attribute_that_cannot_be_its_type_is_reported() -> None:
    device = effective(statics=(AttributeMapping("refDevice", "Relationship", value="gauge 7"),))
    fragment, rejected = entity_fragment(device, Reading({"level": 1}), received_at=ARRIVAL)
    assert [(r.object_id, r.reason) for r in rejected] == [("refDevice", "out_of_range")]
    assert "refDevice" not in fragment


# ingest-formats.md e: "Example (for tests): LoRaWAN agent style mapping" (ChirpStack v3).
WEATHER = effective(
    AttributeMapping("temperature", "Number", "temperature_1"),
    AttributeMapping("relativeHumidity", "Number", "relative_humidity_2"),
    AttributeMapping("atmosphericPressure", "Number", "barometric_pressure_4"),
    AttributeMapping("location", "geo:point", "gps_5"),
    explicit=True,  # the IoT Agent for LoRaWAN drops unmatched keys
    entity_id="urn:ngsi-ld:WeatherObserved:ws-01",
    entity_type="WeatherObserved",
)
CHIRPSTACK_SERVER = ApplicationServer("mqtt.towna.local", "chirpstack")


def chirpstack_v3_uplink(data: bytes) -> Uplink:
    message = {
        "applicationID": "12",
        "deviceName": "ws-01",
        "devEUI": base64.b64encode(bytes.fromhex("70b3d57ed0061a2b")).decode(),
        "fCnt": 7,
        "fPort": 2,
        "data": base64.b64encode(data).decode(),
        "rxInfo": [{"time": "2025-03-14T06:30:01.498Z", "rssi": -101, "loRaSNR": 5.5}],
    }
    topic = "application/12/device/70b3d57ed0061a2b/event/up"
    return chirpstack.decode(topic, orjson.dumps(message))


def test_the_lorawan_example_maps_with_the_position_in_lon_lat_order() -> None:
    frame = base64.b64decode("AWcAewJoowMCAPEEcydnBYgHOqkBTakAn2AGAAE=")
    uplink = chirpstack_v3_uplink(frame)
    [reading] = uplink_readings(uplink, Lorawan(CHIRPSTACK_SERVER, "12", "cayennelpp"))
    fragment, rejected = entity_fragment(WEATHER, reading, received_at=ARRIVAL)
    assert rejected == []  # analog_in_3 and digital_in_6 are not provisioned: dropped
    values = {
        name: attr.get("value") for name, attr in fragment.items() if name not in ("id", "type")
    }
    assert values == {
        "temperature": 12.3,
        "relativeHumidity": 81.5,
        "atmosphericPressure": 1008.7,
        # Not the IoT Agent's [47.3769, 8.5417] (its lat,lon string copied into GeoJSON).
        "location": {"type": "Point", "coordinates": [8.5417, 47.3769, 408.0]},
    }
    # Gateway time: the frame has no clock of its own.
    assert observed_instants(fragment) == {parse_utc("2025-03-14T06:30:01.498Z")}
    parsed(fragment)


def lpp_uplink(raw: bytes | None, decoded: dict[str, Any] | None = None) -> Uplink:
    return Uplink(
        application_id="towna-flood",
        device_id="gauge-07",
        dev_eui="70b3d57ed0061a2b",
        decoded=decoded,
        raw=raw,
        observed_at="2025-03-14T06:30:01.498Z",
        radio={},
        dedup_id=None,
    )


def test_an_lpp_unix_time_channel_is_the_observation_time_unless_it_is_unset() -> None:
    seconds = int(parse_utc("2025-03-14T06:00:00Z").timestamp())
    frame = bytes.fromhex("0167007B") + bytes([7, 0x85]) + seconds.to_bytes(4, "big")
    lpp = Lorawan(CHIRPSTACK_SERVER, "12", "cayennelpp")
    [reading] = uplink_readings(lpp_uplink(frame), lpp)
    assert reading.observed_at == "2025-03-14T06:00:00Z"
    assert reading.measures["temperature_1"] == 12.3
    unset = bytes.fromhex("0167007B") + bytes([7, 0x85, 0, 0, 0, 42])
    [reading] = uplink_readings(lpp_uplink(unset), lpp)
    assert reading.observed_at == "2025-03-14T06:30:01.498Z"


def test_uplink_readings_follow_the_data_model() -> None:
    frame = bytes.fromhex("0167007B")
    decoded = {"level": 2.41}
    server = Lorawan(CHIRPSTACK_SERVER, "12", "application_server")
    lpp = Lorawan(CHIRPSTACK_SERVER, "12", "cayennelpp")
    assert uplink_readings(lpp_uplink(frame, decoded), server)[0].measures == decoded
    assert uplink_readings(lpp_uplink(frame, decoded), lpp)[0].measures == {"temperature_1": 12.3}
    # No payload formatter on the network server: the frame is read as LPP.
    assert uplink_readings(lpp_uplink(frame), server)[0].measures == {"temperature_1": 12.3}
    assert uplink_readings(lpp_uplink(None, decoded), lpp)[0].measures == decoded
    with pytest.raises(DecodeError) as caught:
        uplink_readings(lpp_uplink(None), server)
    assert caught.value.reason == "undecodable_payload"
    with pytest.raises(DecodeError) as caught:
        uplink_readings(lpp_uplink(bytes.fromhex("0167")), lpp)
    assert caught.value.reason == "truncated_payload"


TTS_UPLINK = {
    "end_device_ids": {
        "device_id": "gauge-07",
        "application_ids": {"application_id": "towna-flood"},
        "dev_eui": "70B3D57ED0061A2B",
    },
    "received_at": "2025-03-14T06:30:01.612345678Z",
    "uplink_message": {
        "f_port": 2,
        "f_cnt": 1042,
        "frm_payload": "AWcAewMCAPE=",
        "rx_metadata": [
            {
                "gateway_ids": {"gateway_id": "towna-gw-01", "eui": "A840411D2C3F4E5F"},
                "time": "2025-03-14T06:30:01.498Z",
                "rssi": -97,
                "snr": 7.25,
            }
        ],
        "settings": {
            "data_rate": {"lora": {"bandwidth": 125000, "spreading_factor": 7}},
            "frequency": "867100000",
        },
    },
}


def test_radio_metadata_goes_to_a_device_entity_pointing_at_the_observed_one() -> None:
    uplink = ttn_v3.decode("v3/towna-flood@ttn/devices/gauge-07/up", orjson.dumps(TTS_UPLINK))
    device = radio_fragment(RIVER_GAUGE, uplink, received_at=ARRIVAL)
    assert device is not None
    assert device["id"] == "urn:ngsi-ld:Device:gauge-07" and device["type"] == "Device"
    values = {
        name: attr.get("value") for name, attr in device.items() if name not in ("id", "type")
    }
    assert values == {
        "rssi": -97,
        "snr": 7.25,
        "gatewayId": "towna-gw-01",
        "gatewayCount": 1,
        "fCnt": 1042,
        "fPort": 2,
        "frequency": 867100000,
        "spreadingFactor": 7,
        "bandwidth": 125000,
        "controlledAsset": None,
    }
    assert device["controlledAsset"]["object"] == GAUGE_ID
    assert observed_instants(device) == {parse_utc("2025-03-14T06:30:01.498Z")}
    parsed(device)


def test_no_radio_metadata_means_no_device_entity() -> None:
    assert radio_fragment(RIVER_GAUGE, lpp_uplink(b""), received_at=ARRIVAL) is None


# Keys and values a device might send: real object_ids, reserved words, odd names, and every
# JSON value, with strings that look like numbers, positions, times and the NGSI-LD Null.
TYPES = [case[0] for case in TYPE_CASES + GEO_CASES] + ["ListRelationship", "geo:point"]
FUZZ_DEVICE = effective(
    *(AttributeMapping(f"a{index}", kind, f"m{index}") for index, kind in enumerate(TYPES)),
    statics=(AttributeMapping("refDevice", "Relationship", value="urn:ngsi-ld:Device:g7"),),
)
SPECIAL_KEYS = ["id", "type", "location", "TimeInstant", "value", "@context", "scope", "a:b"]
SPECIAL_TEXT = ["urn:ngsi-ld:null", "47.3,8.5", "2025-03-14", "1e5", "true", "[1,2]", "{}"]
keys = st.sampled_from([f"m{i}" for i in range(len(TYPES))] + SPECIAL_KEYS) | st.text(max_size=8)
texts = st.sampled_from(SPECIAL_TEXT) | st.text(max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | texts
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts | keys, inner, max_size=4),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(measures=st.dictionaries(keys, json_values, max_size=8), explicit=st.booleans())
def test_whatever_a_device_sends_the_fragment_is_valid_ngsi_ld(
    measures: dict[str, Any], explicit: bool
) -> None:
    device = effective(
        *FUZZ_DEVICE.attributes, statics=FUZZ_DEVICE.static_attributes, explicit=explicit
    )
    fragment, rejected = entity_fragment(device, Reading(measures), received_at=ARRIVAL)
    doc = parsed(fragment)
    orjson.dumps(fragment)  # and the stores can encode it
    assert doc["id"] == GAUGE_ID
    assert {r.object_id for r in rejected} <= set(measures)
    assert {r.reason for r in rejected} <= {"out_of_range", "bad_name"}
    assert len(doc["attrs"]) + len(rejected) <= len(measures) + 1  # + the static refDevice


@settings(max_examples=300, deadline=None)
@given(
    lat=st.floats(min_value=-200, max_value=200),
    lon=st.floats(min_value=-400, max_value=400),
    written=st.sampled_from(["text", "array"]),
)
def test_geo_point_is_read_as_lat_lon_and_checked_for_range(
    lat: float, lon: float, written: str
) -> None:
    value = f"{lat!r},{lon!r}" if written == "text" else [lat, lon]
    attribute, rejected = one("geo:point", value, name="location")
    if abs(lat) <= 90 and abs(lon) <= 180:
        assert attribute is not None and attribute["value"] == point(lon, lat)
    else:
        assert attribute is None and [r.reason for r in rejected] == ["out_of_range"]
