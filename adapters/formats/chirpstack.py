"""ChirpStack MQTT integration uplinks: v4, and v3 recognised by the shape of the JSON.

Both versions publish uplinks on ``application/{application_id}/device/{dev_eui}/event/up``
(v4: the application id is a UUID; v3: a small integer). The body is the protobuf JSON
mapping, so default values (0, false, "") are omitted and never mean an error. What differs:

- v4 (``deviceInfo`` present): hex ``devEui``, ``object`` as a JSON object, one
  ``deduplicationId`` and ``time`` per uplink, ``rxInfo[].gwTime`` (only from GPS-synchronised
  gateways) and ``nsTime``, bandwidth in Hz, ``codeRate`` as ``CR_4_5``.
- v3 (``applicationID`` at the top level): EUIs and gateway ids are base64 bytes fields,
  the codec output is ``objectJSON``, a *string* of JSON (the legacy marshaler sent a real
  ``object`` with hex EUIs: both are accepted), ``loRaSNR``, bandwidth in kHz, and there is no
  deduplication id.

The DevEUI is taken from the topic, which the broker's ACL vouches for. The output uses the
same radio names as ``ttn_v3`` (bandwidth in Hz, coding rate as ``4/5``), and ChirpStack's
nested Cayenne codec object is flattened to the TTS names (see ``cayenne_lpp``).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from adapters.formats import cayenne_lpp
from adapters.formats.errors import DecodeError
from adapters.formats.uplink import (
    Uplink,
    b64decode,
    dicts,
    eui,
    first_timestamp,
    load_json,
    load_object,
    number,
    present,
    strongest,
)


def parse_topic(topic: str) -> tuple[str, str]:
    """``application/{app}/device/{dev_eui}/event/up`` -> ``(app, dev_eui in lower case)``.

    Raises:
        DecodeError: ``bad_topic`` for any other topic, including other ChirpStack events.
    """
    segments = topic.split("/")
    if (
        len(segments) == 6
        and segments[0::2] == ["application", "device", "event"]
        and segments[5] == "up"
        and segments[1]
    ):
        dev_eui = eui(segments[3])
        if dev_eui is not None:
            return segments[1], dev_eui
    raise DecodeError("bad_topic", f"not a ChirpStack uplink topic: {topic[:200]!r}")


def decode(topic: str, payload: bytes) -> Uplink:
    """Decode a ChirpStack v4 or v3 uplink event published on ``topic``.

    Raises:
        DecodeError: ``bad_topic``; ``malformed_json`` (also for a v3 ``objectJSON`` that is
            not JSON); ``bad_envelope`` when the body is neither version's uplink or its
            decoded object is not an object; ``undecodable_payload`` when ``data`` is not
            base64.
    """
    application_id, dev_eui = parse_topic(topic)
    message = load_object(payload)
    if "deviceInfo" in message:
        return _v4(application_id, dev_eui, message)
    if "applicationID" in message:
        return _v3(application_id, dev_eui, message)
    raise DecodeError("bad_envelope", "neither a ChirpStack v4 nor a v3 uplink event")


def _v4(application_id: str, dev_eui: str, message: dict[str, Any]) -> Uplink:
    device_info = message["deviceInfo"]
    if not isinstance(device_info, dict):
        raise DecodeError("bad_envelope", "deviceInfo is not an object")
    receptions = dicts(message.get("rxInfo"))
    best = strongest(receptions, "rssi")
    lora = _object(_object(_object(message.get("txInfo")).get("modulation")).get("lora"))
    code_rate = lora.get("codeRate")
    deduplication_id = message.get("deduplicationId")
    return Uplink(
        application_id=application_id,
        device_id=_name(device_info.get("deviceName"), dev_eui),
        dev_eui=dev_eui,
        decoded=_decoded(message.get("object")),
        raw=_data(message),
        observed_at=first_timestamp(
            [
                *(reception.get("gwTime") for reception in receptions),
                message.get("time"),
                *(reception.get("nsTime") for reception in receptions),
            ]
        ),
        radio=present(
            **_counters(message, receptions),
            rssi=number(best.get("rssi")),
            snr=number(best.get("snr")),
            gateway_id=eui(best.get("gatewayId")),
            frequency=number(_object(message.get("txInfo")).get("frequency")),
            spreading_factor=number(lora.get("spreadingFactor")),
            bandwidth=number(lora.get("bandwidth")),
            coding_rate=_coding_rate(code_rate),
        ),
        dedup_id=deduplication_id if isinstance(deduplication_id, str) else None,
    )


def _v3(application_id: str, dev_eui: str, message: dict[str, Any]) -> Uplink:
    receptions = dicts(message.get("rxInfo"))
    best = strongest(receptions, "rssi")
    tx_info = _object(message.get("txInfo"))
    lora = _object(tx_info.get("loRaModulationInfo"))
    bandwidth_khz = number(lora.get("bandwidth"))
    code_rate = lora.get("codeRate")
    return Uplink(
        application_id=application_id,
        device_id=_name(message.get("deviceName"), dev_eui),
        dev_eui=dev_eui,
        decoded=_decoded(_v3_object(message)),
        raw=_data(message),
        observed_at=first_timestamp(reception.get("time") for reception in receptions),
        radio=present(
            **_counters(message, receptions),
            rssi=number(best.get("rssi")),
            snr=number(best.get("loRaSNR")),
            gateway_id=_v3_gateway_id(best.get("gatewayID")),
            frequency=number(tx_info.get("frequency")),
            spreading_factor=number(lora.get("spreadingFactor")),
            bandwidth=bandwidth_khz * 1000 if bandwidth_khz is not None else None,
            coding_rate=code_rate if isinstance(code_rate, str) else None,
        ),
        dedup_id=None,
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _name(device_name: object, dev_eui: str) -> str:
    return device_name if isinstance(device_name, str) and device_name else dev_eui


def _data(message: dict[str, Any]) -> bytes | None:
    return b64decode(message["data"], "data") if "data" in message else None


def _decoded(obj: object) -> dict[str, Any] | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise DecodeError("bad_envelope", "the decoded object is not a JSON object")
    return cayenne_lpp.from_chirpstack_object(obj) if cayenne_lpp.is_chirpstack_object(obj) else obj


def _v3_object(message: dict[str, Any]) -> object:
    object_json = message.get("objectJSON")
    if isinstance(object_json, str) and object_json:
        # surrogatepass: a lone surrogate must reach the JSON parser and fail there as malformed.
        return load_json(object_json.encode("utf-8", "surrogatepass"))
    if object_json not in (None, ""):
        raise DecodeError("bad_envelope", "objectJSON is not a string")
    return message.get("object")


def _counters(message: dict[str, Any], receptions: list[dict[str, Any]]) -> dict[str, Any]:
    # Omitted counters are 0 (protobuf JSON); a value of the wrong type is reported as absent.
    def count(name: str) -> int | None:
        value = message.get(name, 0)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    return {
        "f_cnt": count("fCnt"),
        "f_port": count("fPort"),
        "data_rate": count("dr"),
        "gateway_count": len(receptions) or None,
    }


def _coding_rate(code_rate: object) -> str | None:
    """v4's enum name ``CR_4_5`` as TTS and v3 write it, ``4/5``."""
    if isinstance(code_rate, str) and code_rate.startswith("CR_") and code_rate.count("_") == 2:
        return code_rate[3:].replace("_", "/")
    return None


def _v3_gateway_id(value: object) -> str | None:
    """v3 ``gatewayID`` is base64 bytes; the legacy marshaler wrote hex. Hex out in both cases."""
    if not isinstance(value, str):
        return None
    as_hex = eui(value)
    if as_hex is not None:
        return as_hex
    try:
        gateway_id = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    return gateway_id.hex() if len(gateway_id) == 8 else None
