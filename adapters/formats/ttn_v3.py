"""The Things Stack (TTN v3) MQTT integration: uplink messages on ``v3/…/devices/…/up``.

Only ``up`` carries measurements; join, downlink and location events use other topic suffixes
and are refused by ``parse_topic``. Field names and their quirks come from the TTS docs
(``integrations/other-integrations/mqtt``, ``integrations/data-formats``):

- Fields holding ``""``, ``0`` or ``false`` are omitted, so a missing ``f_cnt`` or ``f_port``
  means 0 and nothing else is ever required beyond ``uplink_message`` itself.
- ``frm_payload`` is the decrypted application payload in base64; ``decoded_payload`` exists
  only when a payload formatter is configured, and is passed through untouched (its numbers
  went through float32 when the formatter is the Cayenne one).
- ``settings.frequency`` is a 64-bit integer rendered as a JSON string; ``coding_rate`` sits
  in ``settings`` in the docs' examples and in ``data_rate.lora`` in the wild.
- The application id on the topic carries ``@tenant`` on TTN cloud and Enterprise, and is kept
  as on the wire so the ingest loop can tell tenants apart.
"""

from __future__ import annotations

from typing import Any

from adapters.formats.errors import DecodeError
from adapters.formats.uplink import (
    Uplink,
    b64decode,
    dicts,
    eui,
    first_timestamp,
    load_object,
    number,
    present,
    strongest,
)


def parse_topic(topic: str) -> tuple[str, str]:
    """``v3/{app}[@{tenant}]/devices/{device}/up`` -> ``(app[@tenant], device)``.

    Raises:
        DecodeError: ``bad_topic`` for any other topic, including other TTS event topics.
    """
    segments = topic.split("/")
    if len(segments) == 5 and segments[0] == "v3" and segments[2:5:2] == ["devices", "up"]:
        application, device = segments[1], segments[3]
        name, at, tenant = application.partition("@")
        if name and device and (not at or (tenant and "@" not in tenant)):
            return application, device
    raise DecodeError("bad_topic", f"not a TTS v3 uplink topic: {topic[:200]!r}")


def decode(topic: str, payload: bytes) -> Uplink:
    """Decode a TTS uplink message published on ``topic``.

    The topic names the application and device (the broker's ACL vouches for it); the body's
    ``end_device_ids`` only contributes the DevEUI.

    Raises:
        DecodeError: ``bad_topic``; ``malformed_json``; ``bad_envelope`` when the body is not an
            uplink or its ``decoded_payload`` is not an object; ``undecodable_payload`` when
            ``frm_payload`` is not base64.
    """
    application_id, device_id = parse_topic(topic)
    message = load_object(payload)
    uplink = message.get("uplink_message")
    if not isinstance(uplink, dict):
        raise DecodeError("bad_envelope", "TTS message without an uplink_message object")
    decoded = uplink.get("decoded_payload")
    if decoded is not None and not isinstance(decoded, dict):
        raise DecodeError("bad_envelope", "decoded_payload is not an object")
    raw = b64decode(uplink["frm_payload"], "frm_payload") if "frm_payload" in uplink else None
    device_ids = message.get("end_device_ids")
    receptions = dicts(uplink.get("rx_metadata"))
    settings = _object(uplink.get("settings"))
    return Uplink(
        application_id=application_id,
        device_id=device_id,
        dev_eui=eui(device_ids.get("dev_eui")) if isinstance(device_ids, dict) else None,
        decoded=decoded,
        raw=raw,
        observed_at=first_timestamp(
            [
                *(reception.get("time") for reception in receptions),
                settings.get("time"),
                uplink.get("received_at"),
                message.get("received_at"),
            ]
        ),
        radio=_radio(message, uplink, receptions, settings),
        dedup_id=_uplink_correlation_id(message.get("correlation_ids")),
    )


def _object(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _radio(
    message: dict[str, Any],
    uplink: dict[str, Any],
    receptions: list[dict[str, Any]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    best = strongest(receptions, "rssi")
    gateway_id = _object(best.get("gateway_ids")).get("gateway_id")
    lora = _object(_object(settings.get("data_rate")).get("lora"))
    coding_rate = lora.get("coding_rate", settings.get("coding_rate"))
    return present(
        rssi=number(best.get("rssi")),
        snr=number(best.get("snr")),
        gateway_id=gateway_id if isinstance(gateway_id, str) else None,
        gateway_count=len(receptions) or None,
        f_cnt=_count(uplink.get("f_cnt")),
        f_port=_count(uplink.get("f_port")),
        frequency=_frequency(settings.get("frequency")),
        spreading_factor=number(lora.get("spreading_factor")),
        bandwidth=number(lora.get("bandwidth")),
        coding_rate=coding_rate if isinstance(coding_rate, str) else None,
        simulated=True if message.get("simulated") is True else None,
    )


def _count(value: object) -> int | None:
    # Omitted means 0 on the wire; a value of the wrong type is reported as absent.
    if value is None:
        return 0
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _frequency(value: object) -> int | float | None:
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return number(value)


def _uplink_correlation_id(value: object) -> str | None:
    """The Application Server's ``as:up:`` id names this uplink; other ids name hops."""
    ids = [item for item in value if isinstance(item, str)] if isinstance(value, list) else []
    return next((item for item in ids if item.startswith("as:up:")), ids[0] if ids else None)
