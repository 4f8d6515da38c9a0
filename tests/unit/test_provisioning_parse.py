"""Provisioning documents (FIWARE IoT Agent shapes) → groups, devices and inherited settings."""

from __future__ import annotations

from typing import Any

import pytest
from broker.ngsild.errors import BadRequestData
from broker.services.provisioning.model import AttributeMapping, Device, Group
from broker.services.provisioning.parse import (
    autoprovisioned_doc,
    effective,
    parse_device_update,
    parse_devices,
    parse_group_update,
    parse_groups,
    with_dev_eui,
)

# The examples of /work/shared/ingest-formats.md, sections a and e, as a client sends them.
RIVER_GROUP: dict[str, Any] = {
    "groups": [
        {
            "apikey": "tA9flood",
            "resource": "/iot/json",
            "entity_type": "WaterObserved",
            "timestamp": True,
            "attributes": [
                {
                    "object_id": "lvl",
                    "name": "height",
                    "type": "Number",
                    "metadata": {"unitCode": {"type": "Text", "value": "MTR"}},
                },
                {
                    "object_id": "flw",
                    "name": "flow",
                    "type": "Number",
                    "metadata": {"unitCode": {"type": "Text", "value": "MQS"}},
                },
                {"object_id": "bat", "name": "batteryVoltage", "type": "Number"},
            ],
            "static_attributes": [
                {
                    "name": "refDevice",
                    "type": "Relationship",
                    "value": "urn:ngsi-ld:Device:towna:gauge-07",
                }
            ],
        }
    ]
}
RIVER_DEVICE: dict[str, Any] = {
    "devices": [
        {
            "device_id": "gauge-07",
            "apikey": "tA9flood",
            "transport": "MQTT",
            "entity_name": "urn:ngsi-ld:WaterObserved:towna:gauge-07",
            "entity_type": "WaterObserved",
            "static_attributes": [
                {
                    "name": "location",
                    "type": "geo:json",
                    "value": {"type": "Point", "coordinates": [8.5417, 47.3769]},
                }
            ],
        }
    ]
}
LORAWAN_GROUP: dict[str, Any] = {
    "services": [
        {
            "entity_type": "WeatherObserved",
            "apikey": "",
            "resource": "70B3D57ED0001234",
            "attributes": [
                {"object_id": "temperature_1", "name": "temperature", "type": "Number"},
                {"object_id": "relative_humidity_2", "name": "relativeHumidity", "type": "Number"},
                {
                    "object_id": "barometric_pressure_4",
                    "name": "atmosphericPressure",
                    "type": "Number",
                },
                {"object_id": "gps_5", "name": "location", "type": "geo:point"},
            ],
            "internal_attributes": {
                "lorawan": {
                    "application_server": {"host": "mqtt.towna.local", "provider": "chirpstack"},
                    "app_eui": "70B3D57ED0001234",
                    "application_id": "12",
                    "application_key": "00000000000000000000000000000000",
                    "data_model": "cayennelpp",
                }
            },
        }
    ]
}


def lorawan_device(**lorawan: Any) -> dict[str, Any]:
    settings = {
        "application_server": {"host": "eu1.cloud.thethings.network", "provider": "TTN"},
        "application_id": "towna-flood@ttn",
        "dev_eui": "70B3D57ED0061A2B",
        **lorawan,
    }
    return {"devices": [{"device_id": "gauge-07", "internal_attributes": {"lorawan": settings}}]}


def test_the_iot_agent_json_group_example_parses() -> None:
    (group,) = parse_groups(RIVER_GROUP)
    assert (group.apikey, group.resource, group.entity_type) == (
        "tA9flood",
        "/iot/json",
        "WaterObserved",
    )
    assert group.timestamp is True and group.autoprovision is True and not group.explicit_attrs
    assert [(a.key, a.name, a.type) for a in group.attributes] == [
        ("lvl", "height", "Number"),
        ("flw", "flow", "Number"),
        ("bat", "batteryVoltage", "Number"),
    ]
    assert group.attributes[0].metadata == {"unitCode": {"type": "Text", "value": "MTR"}}
    assert group.static_attributes == (
        AttributeMapping("refDevice", "Relationship", value="urn:ngsi-ld:Device:towna:gauge-07"),
    )
    assert group.raw == RIVER_GROUP["groups"][0]
    assert group.lorawan is None


def test_the_device_example_parses_and_keeps_what_was_sent() -> None:
    (device,) = parse_devices(RIVER_DEVICE)
    assert device.device_id == "gauge-07" and device.apikey == "tA9flood"
    assert device.entity_name == "urn:ngsi-ld:WaterObserved:towna:gauge-07"
    assert device.static_attributes[0].value == {"type": "Point", "coordinates": [8.5417, 47.3769]}
    assert device.explicit_attrs is None and device.timestamp is None
    assert device.raw["transport"] == "MQTT"  # not acted on, but shown back


def test_the_lorawan_services_example_parses() -> None:
    (group,) = parse_groups(LORAWAN_GROUP)
    assert group.apikey == "" and group.resource == "70B3D57ED0001234"
    assert group.lorawan is not None
    assert group.lorawan.application_id == "12" and group.lorawan.data_model == "cayennelpp"
    server = group.lorawan.application_server
    assert (server.host, server.provider, server.url) == (
        "mqtt.towna.local",
        "chirpstack",
        "mqtt://mqtt.towna.local:1883",
    )
    assert group.raw["internal_attributes"]["lorawan"]["app_eui"] == "70B3D57ED0001234"


def test_lorawan_device_dev_eui_is_lower_cased_and_settings_normalised() -> None:
    body = lorawan_device(
        application_server={
            "host": "eu1.cloud.thethings.network",
            "port": "8883",
            "protocol": "MQTTS",
            "provider": "ttn",
            "username": "towna-flood@ttn",
            "password": "NNSXS.secret",
        },
        application_id=7,
    )
    (device,) = parse_devices(body)
    assert device.lorawan is not None
    assert device.lorawan.dev_eui == "70b3d57ed0061a2b"
    assert device.lorawan.application_id == "7"
    assert device.lorawan.data_model == "application_server"
    server = device.lorawan.application_server
    assert server.provider == "TTN" and server.url == "mqtts://eu1.cloud.thethings.network:8883"
    assert server.username == "towna-flood@ttn"
    assert device.raw["internal_attributes"]["lorawan"]["dev_eui"] == "70B3D57ED0061A2B"


def test_a_device_inherits_what_it_does_not_set_from_its_group() -> None:
    (group,) = parse_groups(RIVER_GROUP)
    (device,) = parse_devices(
        {
            "devices": [
                {
                    "device_id": "gauge-08",
                    "apikey": "tA9flood",
                    "explicitAttrs": True,
                    "attributes": [{"object_id": "lvl", "name": "level", "type": "Number"}],
                }
            ]
        }
    )
    found = effective("towna", device, group, "gauge-08")
    assert found.tenant == "towna" and not found.autoprovisioned
    assert found.entity_type == "WaterObserved"
    assert found.entity_id == "urn:ngsi-ld:WaterObserved:gauge-08"
    # The device's own mapping of "lvl" wins; the group's other mappings follow.
    assert [(a.key, a.name) for a in found.attributes] == [
        ("lvl", "level"),
        ("flw", "flow"),
        ("bat", "batteryVoltage"),
    ]
    assert [a.name for a in found.static_attributes] == ["refDevice"]
    assert found.explicit_attrs is True and found.timestamp is True
    assert found.apikey == "tA9flood"


def test_device_settings_override_the_group() -> None:
    (group,) = parse_groups(RIVER_GROUP)
    (device,) = parse_devices(RIVER_DEVICE)
    device = parse_device_update(device, {"timestamp": False, "entity_type": "Gauge"})
    found = effective("towna", device, group, "gauge-07")
    assert found.entity_id == "urn:ngsi-ld:WaterObserved:towna:gauge-07"
    assert found.entity_type == "Gauge" and found.timestamp is False
    assert [a.name for a in found.static_attributes] == ["location", "refDevice"]


def test_autoprovisioned_ids_name_the_type_once_and_defaults_apply() -> None:
    (group,) = parse_groups({"groups": [{"apikey": "k1", "entity_type": "WaterObserved"}]})
    found = effective("", None, group, "g7")
    assert found.autoprovisioned
    assert found.entity_id == "urn:ngsi-ld:WaterObserved:g7"
    assert found.timestamp is True and found.explicit_attrs is False
    bare = effective("", Device("d1"), None, "d1")
    assert (bare.entity_type, bare.entity_id) == ("Thing", "urn:ngsi-ld:Thing:d1")


def test_an_autoprovisioned_lorawan_device_is_filed_with_its_dev_eui() -> None:
    (group,) = parse_groups(LORAWAN_GROUP)
    found = with_dev_eui(effective("towna", None, group, "gauge-07"), "70B3D57ED0061A2B")
    assert found.apikey is None
    (filed,) = parse_devices({"devices": [autoprovisioned_doc(found)]})
    assert filed.entity_name == "urn:ngsi-ld:WeatherObserved:gauge-07"
    assert filed.lorawan == found.lorawan
    assert filed.lorawan is not None and filed.lorawan.dev_eui == "70b3d57ed0061a2b"


def test_group_update_replaces_members_and_null_removes_them() -> None:
    (group,) = parse_groups(RIVER_GROUP)
    changed = parse_group_update(group, {"entity_type": "Gauge", "static_attributes": None})
    assert changed.entity_type == "Gauge" and changed.static_attributes == ()
    assert changed.attributes == group.attributes
    assert "static_attributes" not in changed.raw
    assert parse_group_update(group, {"apikey": "tA9flood"}).apikey == "tA9flood"


@pytest.mark.parametrize(
    ("fragment", "field"),
    [({"apikey": "other"}, "apikey"), ({"resource": "/iot/d"}, "resource")],
)
def test_group_identity_cannot_change(fragment: dict[str, Any], field: str) -> None:
    (group,) = parse_groups(RIVER_GROUP)
    with pytest.raises(BadRequestData, match=f"group.{field}"):
        parse_group_update(group, fragment)


def test_device_id_cannot_change() -> None:
    (device,) = parse_devices(RIVER_DEVICE)
    with pytest.raises(BadRequestData, match="device_id cannot be changed"):
        parse_device_update(device, {"device_id": "gauge-99"})


def group_with(**members: Any) -> dict[str, Any]:
    return {"groups": [{"apikey": "k1", **members}]}


def device_with(**members: Any) -> dict[str, Any]:
    return {"devices": [{"device_id": "d1", **members}]}


SERVER = {"host": "mqtt.towna.local", "provider": "chirpstack"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], r"like \{\"groups\""),
        ({"groups": []}, "non-empty array"),
        ({"groups": [{}]}, r"groups\[0\]\.apikey is required"),
        ({"groups": [{"apikey": 42}]}, r"groups\[0\]\.apikey must be a string"),
        ({"services": [{"apikey": "a/b"}]}, r"services\[0\]\.apikey must be"),
        (group_with(attributes=[{"type": "Number"}]), r"attributes\[0\]\.name is required"),
        (group_with(attributes=[{"name": "lvl"}]), r"attributes\[0\]\.type is required"),
        (group_with(attributes=[{"name": "2x", "type": "Number"}]), "not a valid NGSI-LD name"),
        (
            group_with(attributes=[{"name": "a", "type": "Number", "expression": "a*2"}]),
            "expression: JEXL expressions are not supported",
        ),
        (
            group_with(attributes=[{"name": "a", "type": "N"}, {"name": "a", "type": "N"}]),
            "mapped twice",
        ),
        (group_with(static_attributes=[{"name": "a", "type": "Text"}]), r"\.value is required"),
        (group_with(explicitAttrs="['a']"), "explicitAttrs expressions are not supported"),
        (group_with(explicitAttrs=1), "explicitAttrs must be true or false"),
        (group_with(autoprovision="yes"), "autoprovision must be true or false"),
        (group_with(entityNameExp="id"), "entityNameExp"),
        (
            group_with(internal_attributes={"lorawan": {"application_id": "1"}}),
            r"lorawan\.application_server is required",
        ),
        (
            group_with(
                internal_attributes={
                    "lorawan": {
                        "application_server": {"host": "h", "provider": "loriot"},
                        "application_id": "1",
                    }
                }
            ),
            "provider must be 'TTN' or 'chirpstack'",
        ),
        (
            group_with(
                internal_attributes={
                    "lorawan": {
                        "application_server": SERVER,
                        "application_id": "1",
                        "data_model": "cbor",
                    }
                }
            ),
            "data_model must be 'cayennelpp' or 'application_server'",
        ),
        (
            group_with(
                internal_attributes={
                    "lorawan": {"application_server": SERVER, "application_id": "#"}
                }
            ),
            r"lorawan\.application_id is required",
        ),
        (
            group_with(
                internal_attributes={
                    "lorawan": {
                        "application_server": {**SERVER, "port": 70000},
                        "application_id": "1",
                    }
                }
            ),
            r"application_server\.port must be",
        ),
        (
            group_with(
                internal_attributes={
                    "lorawan": {
                        "application_server": SERVER,
                        "application_id": "1",
                        "dev_eui": "70b3d57ed0061a2b",
                    }
                }
            ),
            "dev_eui belongs to a device",
        ),
        ({"devices": [{"apikey": "k1"}]}, r"devices\[0\]\.device_id is required"),
        (device_with(device_id="a b"), r"device_id must be"),
        (device_with(entity_name="not a uri"), r"entity_name must be a URI"),
        (device_with(apikey=["k1"]), r"apikey must be a string"),
        (
            device_with(
                internal_attributes={
                    "lorawan": {
                        "application_server": SERVER,
                        "application_id": "1",
                        "dev_eui": "70b3d57ed0061a2",
                    }
                }
            ),
            "dev_eui must be 16 hex digits",
        ),
    ],
)
def test_invalid_documents_are_bad_request_data_naming_the_field(body: Any, message: str) -> None:
    parse = parse_devices if isinstance(body, dict) and "devices" in body else parse_groups
    with pytest.raises(BadRequestData, match=message):
        parse(body)


def test_devices_and_groups_unparsed_members_default_sensibly() -> None:
    (group,) = parse_groups({"groups": [{"apikey": "k1"}]})
    assert group == Group("k1", raw={"apikey": "k1", "resource": "/iot/json"})
    (device,) = parse_devices({"devices": [{"device_id": "d1", "apikey": ""}]})
    assert device.apikey is None  # "" means "no apikey" on a device
