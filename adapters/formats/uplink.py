"""What the decoders produce, and the small parsing steps the formats share.

``Reading`` is one group of measures from one device (the IoT Agent JSON side); ``Uplink`` is a
LoRaWAN uplink with the network server's vocabulary removed, so that the ingest loop treats The
Things Stack and ChirpStack alike. Times are always rendered as UTC with a ``Z``: NGSI-LD
``observedAt`` is a UTC DateTime (GS CIM 009 §4.8), and network servers send anything from
milliseconds with ``Z`` to nanoseconds with ``+00:00``.

The helpers below (JSON, base64, numbers) exist so that every library failure is turned into a
``DecodeError`` in one place; see ``errors``.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from adapters.formats.errors import DecodeError


@dataclass(frozen=True, slots=True)
class Reading:
    """One group of measures from one device, as decoded (names are the device's object_ids)."""

    measures: dict[str, Any]
    """object_id -> value: numbers, strings, or dicts such as ``{"latitude", "longitude", …}``."""
    observed_at: str | None = None
    """ISO 8601 UTC with ``Z`` when the message carried a time; ``None`` means arrival time."""


@dataclass(frozen=True, slots=True)
class Uplink:
    """A LoRaWAN uplink, network-server agnostic."""

    application_id: str
    device_id: str
    """TTS ``device_id`` / ChirpStack ``deviceName`` when present, else ``dev_eui``."""
    dev_eui: str | None
    """Lower-case hex."""
    decoded: dict[str, Any] | None
    """The network server's decoded object; ChirpStack Cayenne objects use the flat LPP names."""
    raw: bytes | None
    """``frm_payload`` / ``data``, base64-decoded."""
    observed_at: str | None
    """Gateway time if present, else network-server time; UTC ``Z``, at most microseconds."""
    radio: dict[str, Any]
    """rssi, snr, gateway_id, f_cnt, f_port, frequency, spreading_factor, … as far as present."""
    dedup_id: str | None
    """TTS uplink correlation id / ChirpStack ``deduplicationId``: one value per uplink."""


# RFC 3339 profile of ISO 8601 (date, 'T', time, optional fraction and offset). ASCII digits
# only: int() would happily read other Unicode digits that \d matches.
_DATETIME = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[Tt ]([0-9]{2}):([0-9]{2}):([0-9]{2})"
    r"(?:[.,]([0-9]+))?(?:[Zz]|([+-])([0-9]{2})(?::?([0-9]{2}))?)?"
)
_EUI = re.compile(r"[0-9A-Fa-f]{16}")


def parse_utc(text: str) -> datetime:
    """Parse an ISO 8601 date-time into an aware UTC datetime.

    Fractions beyond microseconds are truncated (ChirpStack and TTS send nanoseconds). A time
    without offset is taken as UTC, which is what both network servers and the IoT Agents mean.

    Raises:
        DecodeError: ``bad_envelope`` when ``text`` is no such date-time.
    """
    match = _DATETIME.fullmatch(text)
    if match is None:
        raise DecodeError("bad_envelope", f"not an ISO 8601 date-time: {text[:64]!r}")
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = match.groups()
    try:
        offset = timedelta(hours=int(off_h or 0), minutes=int(off_m or 0))
        if offset >= timedelta(hours=24) or int(off_m or 0) >= 60:
            raise ValueError("offset out of range")
        moment = datetime(
            int(year),
            int(month),
            int(day),
            int(hour),
            int(minute),
            int(second),
            int((fraction or "0")[:6].ljust(6, "0")),
            tzinfo=timezone(-offset if sign == "-" else offset),
        )
        return moment.astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise DecodeError("bad_envelope", f"impossible date-time: {text[:64]!r}") from exc


def utc_timestamp(text: str) -> str:
    """``text`` as ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` (see ``parse_utc`` for what is accepted)."""
    moment = parse_utc(text).replace(tzinfo=None)
    return moment.isoformat(timespec="microseconds" if moment.microsecond else "seconds") + "Z"


def first_timestamp(candidates: Iterable[object]) -> str | None:
    """The first candidate that is a valid date-time, normalised; ``None`` if there is none.

    Network-server times are metadata: a bad one is passed over, never a reason to drop data.
    """
    for candidate in candidates:
        if isinstance(candidate, str):
            try:
                return utc_timestamp(candidate)
            except DecodeError:
                continue
    return None


def load_json(payload: bytes) -> Any:
    """Parse a JSON document; invalid UTF-8, NaN and over-deep nesting are malformed too."""
    try:
        return orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise DecodeError("malformed_json", f"payload is not JSON: {exc}") from exc


def load_object(payload: bytes) -> dict[str, Any]:
    """Parse a JSON document that must be an object (every network-server envelope is one)."""
    document = load_json(payload)
    if not isinstance(document, dict):
        raise DecodeError("bad_envelope", f"expected a JSON object, got {type(document).__name__}")
    return document


def b64decode(text: object, field: str) -> bytes:
    """Decode a standard-alphabet base64 field (protobuf JSON and TTS both use it)."""
    if not isinstance(text, str):
        raise DecodeError("undecodable_payload", f"{field} is not a base64 string")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DecodeError("undecodable_payload", f"{field} is not valid base64") from exc


def number(value: object) -> int | float | None:
    """``value`` if it is a JSON number (booleans are not), else ``None``."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    return None


def eui(value: object) -> str | None:
    """An EUI-64 written as 16 hex digits, lower-cased; ``None`` for anything else."""
    if isinstance(value, str) and _EUI.fullmatch(value):
        return value.lower()
    return None


def dicts(value: object) -> list[dict[str, Any]]:
    """The objects in a JSON array (``rx_metadata``, ``rxInfo``); anything else gives none."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]


def strongest(receptions: list[dict[str, Any]], rssi_key: str) -> dict[str, Any]:
    """The reception with the highest RSSI (the first one when none has an RSSI), or ``{}``.

    Radio fields are reported for one gateway; the strongest is the one a site survey asks for.
    """
    best: dict[str, Any] = receptions[0] if receptions else {}
    best_rssi: float | None = None
    for reception in receptions:
        rssi = number(reception.get(rssi_key))
        if rssi is not None and (best_rssi is None or rssi > best_rssi):
            best, best_rssi = reception, rssi
    return best


def present(**fields: Any) -> dict[str, Any]:
    """``fields`` without the ones that are ``None`` (absent on the wire)."""
    return {name: value for name, value in fields.items() if value is not None}
