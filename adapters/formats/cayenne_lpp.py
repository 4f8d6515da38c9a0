"""Cayenne Low Power Payload (LPP): the binary frame, and ChirpStack's rendering of it.

Theory of operation: a frame is records ``[channel:1][type:1][data:N]`` back to back, with no
length, count or checksum (myDevicesIoT/CayenneLPP README). ``N`` is known only from the type,
so an unknown type or a short record leaves the rest of the frame meaningless: the decoder
refuses the whole frame rather than guess, as ChirpStack's own codec does. Values are
big-endian, two's complement where signed, divided by the type's resolution and then rounded
to that resolution, so ``0x007B / 10`` is ``12.3`` and not ``12.299999``.

Names follow The Things Stack and the IoT Agent for LoRaWAN: ``{type}_{channel}``, e.g.
``temperature_1``; ``gps_5`` is ``{"latitude", "longitude", "altitude"}``. ChirpStack's codec
nests the same data by camelCase type and channel string instead; ``from_chirpstack_object``
flattens it so provisioning can use one set of object_ids whatever the network server.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from adapters.formats.errors import DecodeError
from adapters.formats.uplink import number


@dataclass(frozen=True, slots=True)
class _Kind:
    """How one LPP type is laid out: total data size, signedness, one divisor per component."""

    name: str
    size: int
    signed: bool
    divisors: tuple[int, ...] = (1,)
    components: tuple[str, ...] = ()

    def read(self, data: bytes) -> Any:
        width = self.size // len(self.divisors)
        values = [
            _scale(int.from_bytes(data[i * width : (i + 1) * width], "big", signed=self.signed), d)
            for i, d in enumerate(self.divisors)
        ]
        return dict(zip(self.components, values, strict=True)) if self.components else values[0]


_XYZ: Final = ("x", "y", "z")
_DECIMALS: Final = {1: 0, 2: 1, 10: 1, 100: 2, 1000: 3, 10000: 4}

# LPP type = IPSO object id - 3200. The first twelve are the myDevices spec; the rest are the
# ElectronicCats/RAK extension (which ChirpStack's codec does not accept).
_KINDS: Final[dict[int, _Kind]] = {
    0x00: _Kind("digital_in", 1, signed=False),
    0x01: _Kind("digital_out", 1, signed=False),
    0x02: _Kind("analog_in", 2, signed=True, divisors=(100,)),
    0x03: _Kind("analog_out", 2, signed=True, divisors=(100,)),
    0x65: _Kind("luminosity", 2, signed=False),
    0x66: _Kind("presence", 1, signed=False),
    0x67: _Kind("temperature", 2, signed=True, divisors=(10,)),
    0x68: _Kind("relative_humidity", 1, signed=False, divisors=(2,)),
    0x71: _Kind("accelerometer", 6, signed=True, divisors=(1000,) * 3, components=_XYZ),
    0x73: _Kind("barometric_pressure", 2, signed=False, divisors=(10,)),
    0x86: _Kind("gyrometer", 6, signed=True, divisors=(100,) * 3, components=_XYZ),
    0x88: _Kind(
        "gps",
        9,
        signed=True,
        divisors=(10000, 10000, 100),
        components=("latitude", "longitude", "altitude"),
    ),
    0x64: _Kind("generic_sensor", 4, signed=False),
    0x74: _Kind("voltage", 2, signed=False, divisors=(100,)),
    0x75: _Kind("current", 2, signed=False, divisors=(1000,)),
    0x76: _Kind("frequency", 4, signed=False),
    0x78: _Kind("percentage", 1, signed=False),
    0x79: _Kind("altitude", 2, signed=True),
    0x80: _Kind("power", 2, signed=False),
    0x82: _Kind("distance", 4, signed=False, divisors=(1000,)),
    0x83: _Kind("energy", 4, signed=False, divisors=(1000,)),
    0x84: _Kind("direction", 2, signed=False),
    0x85: _Kind("unix_time", 4, signed=False),
    0x8E: _Kind("switch", 1, signed=False),
}

# ChirpStack v3/v4 codec key -> TTS name (chirpstack/src/codec/cayenne_lpp.rs).
_CHIRPSTACK_NAMES: Final = {
    "digitalInput": "digital_in",
    "digitalOutput": "digital_out",
    "analogInput": "analog_in",
    "analogOutput": "analog_out",
    "illuminanceSensor": "luminosity",
    "presenceSensor": "presence",
    "temperatureSensor": "temperature",
    "humiditySensor": "relative_humidity",
    "accelerometer": "accelerometer",
    "barometer": "barometric_pressure",
    "gyrometer": "gyrometer",
    "gpsLocation": "gps",
}


def _scale(raw: int, divisor: int) -> int | float:
    return raw if divisor == 1 else round(raw / divisor, _DECIMALS[divisor])


def decode(frame: bytes) -> dict[str, Any]:
    """Decode an LPP frame into ``{"temperature_1": 12.3, "gps_5": {...}, ...}``.

    An empty frame (a device that had nothing to report) gives ``{}``. When a channel and type
    repeat within a frame, the later record wins, as in the TTS formatter.

    Raises:
        DecodeError: ``unknown_lpp_type``, ``truncated_payload``, or ``out_of_range`` for a GPS
            position outside WGS84 latitude/longitude bounds.
    """
    values: dict[str, Any] = {}
    at = 0
    while at < len(frame):
        if at + 2 > len(frame):
            raise DecodeError("truncated_payload", f"LPP record at byte {at} has no type")
        channel, type_id = frame[at], frame[at + 1]
        kind = _KINDS.get(type_id)
        if kind is None:
            raise DecodeError("unknown_lpp_type", f"LPP type {type_id:#04x} at byte {at + 1}")
        data = frame[at + 2 : at + 2 + kind.size]
        if len(data) < kind.size:
            raise DecodeError(
                "truncated_payload",
                f"LPP {kind.name} on channel {channel} needs {kind.size} bytes, has {len(data)}",
            )
        value = kind.read(data)
        if kind.name == "gps":
            _check_position(value, channel)
        values[f"{kind.name}_{channel}"] = value
        at += 2 + kind.size
    return values


def _check_position(position: dict[str, Any], channel: int) -> None:
    # int24 / 10000 reaches ±838.8°: such a frame is corrupt, and NGSI-LD would refuse the point.
    if abs(position["latitude"]) > 90 or abs(position["longitude"]) > 180:
        raise DecodeError("out_of_range", f"LPP gps_{channel} is not on Earth: {position}")


def observed_at(values: dict[str, Any]) -> str | None:
    """The reading time carried by an LPP ``unix_time`` channel (the first one), if any."""
    for name, value in values.items():
        seconds = number(value)
        if name.startswith("unix_time_") and seconds is not None:
            try:
                moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=seconds)
            except (OverflowError, ValueError):
                return None
            moment = moment.replace(tzinfo=None)
            spec = "microseconds" if moment.microsecond else "seconds"
            return moment.isoformat(timespec=spec) + "Z"
    return None


def _channel(key: object) -> int | None:
    if isinstance(key, str) and key.isascii() and key.isdigit() and int(key) <= 255:
        return int(key)
    return None


def is_chirpstack_object(obj: object) -> bool:
    """Whether ``obj`` has the shape of ChirpStack's built-in Cayenne codec output.

    Every key must be one of its type names and map channel numbers to values; a custom codec's
    object that happens to share a key is not converted.
    """
    return (
        isinstance(obj, dict)
        and bool(obj)
        and all(
            name in _CHIRPSTACK_NAMES
            and isinstance(channels, dict)
            and all(_channel(key) is not None for key in channels)
            for name, channels in obj.items()
        )
    )


def from_chirpstack_object(obj: dict[str, Any]) -> dict[str, Any]:
    """``{"temperatureSensor": {"1": 12.3}}`` -> ``{"temperature_1": 12.3}``; values unchanged.

    Raises:
        DecodeError: ``bad_envelope`` when ``obj`` is not shaped like that codec's output.
    """
    if not is_chirpstack_object(obj):
        raise DecodeError("bad_envelope", "object is not ChirpStack Cayenne LPP codec output")
    return {
        f"{_CHIRPSTACK_NAMES[name]}_{_channel(key)}": value
        for name, channels in obj.items()
        for key, value in channels.items()
    }
