"""LoRaWAN provisioning documents and network-server uplinks for tests (ingest-formats.md b, c).

Each uplink gets a fresh network-server uplink id, so publishing the same reading again is not
dropped as an MQTT redelivery.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from tests.mqtt_fixtures import MqttBroker

LPP_FRAME = "AWcAewJoowMCAPEEcydnBYgHOqkBTakAn2AGAAE="
"""ingest-formats.md d: temperature_1=12.3, relative_humidity_2=81.5, gps_5=(47.3769, 8.5417)."""


def lorawan_group(
    application_id: str,
    server: MqttBroker,
    provider: str,
    *,
    username: str | None = None,
    password: str | None = None,
) -> dict[str, Any]:
    """A group that autoprovisions the application's devices as ``WeatherObserved``."""
    application_server: dict[str, Any] = {
        "host": server.host,
        "port": server.port,
        "provider": provider,
    }
    if username is not None:
        application_server |= {"username": username, "password": password}
    return {
        "apikey": "",
        "resource": f"lorawan-{application_id}",
        "entity_type": "WeatherObserved",
        "attributes": [{"object_id": "temperature_1", "name": "temperature", "type": "Number"}],
        "internal_attributes": {
            "lorawan": {
                "application_server": application_server,
                "application_id": application_id,
                "data_model": "cayennelpp",
            }
        },
    }


def ttn_uplink(application_id: str, device_id: str) -> tuple[str, bytes]:
    """The topic and body a The Things Stack v3 server publishes for one uplink."""
    body = {
        "end_device_ids": {
            "device_id": device_id,
            "application_ids": {"application_id": application_id},
        },
        "correlation_ids": [f"as:up:{uuid.uuid4().hex}"],
        "received_at": "2025-03-14T06:30:01.5Z",
        "uplink_message": {"f_port": 2, "frm_payload": LPP_FRAME},
    }
    return f"v3/{application_id}/devices/{device_id}/up", orjson.dumps(body)


def chirpstack_uplink(application_id: str, device_name: str, dev_eui: str) -> tuple[str, bytes]:
    """The topic and body a ChirpStack v4 server publishes for one uplink."""
    body = {
        "deduplicationId": str(uuid.uuid4()),
        "time": "2025-03-14T06:30:01.512Z",
        "deviceInfo": {
            "applicationId": application_id,
            "deviceName": device_name,
            "devEui": dev_eui,
        },
        "fPort": 2,
        "data": LPP_FRAME,
    }
    return f"application/{application_id}/device/{dev_eui}/event/up", orjson.dumps(body)


def weather_id(device_id: str) -> str:
    """The entity id an autoprovisioned ``WeatherObserved`` device gets."""
    return f"urn:ngsi-ld:WeatherObserved:{device_id}"
