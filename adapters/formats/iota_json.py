"""FIWARE IoT Agent JSON over MQTT: topics and payloads as the IoT Agent reads them.

Devices built for the IoT Agent publish on ``/json/<apikey>/<device_id>/attrs`` (or one of its
legacy spellings) and we accept them unchanged. Topic rule (iotagent-json
``lib/commonBindings.js``): add a leading ``/`` if missing, split on ``/``, drop a first
segment ``json`` (any case); then come apikey, device id and the kind of message.

Payload rules (iotagent-json ``docs/usermanual.md``, node-lib ``doc/api.md``):

- ``attrs``: an object of measures, or an array of such objects (one ``Reading`` each, sorted
  by ``TimeInstant``).
- ``attrs/<object_id>``: the body is one value: parsed JSON if it parses, else the hex string of
  the bytes (``abc`` -> ``"616263"``). An array of ``{"timestamp", "value"}`` objects gives one
  timestamped ``Reading`` per element.
- ``cmdexe``: ``{"<command>": result}`` becomes ``<command>_info`` and ``<command>_status: "OK"``.
- ``configuration/commands``: recognised but not supported.

``TimeInstant`` is a time, never a measure: when it is a valid ISO 8601 date-time it becomes
``observed_at``; otherwise it is dropped and ``observed_at`` stays ``None`` so the caller uses
the arrival time, as the IoT Agent does. In NGSI-LD the agent sends no ``TimeInstant``
attribute either, only ``observedAt``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from adapters.formats.errors import DecodeError
from adapters.formats.uplink import Reading, first_timestamp, load_json, parse_utc

TopicKind = Literal["attrs", "attr", "cmdexe", "config"]
TIME_INSTANT: Final = "TimeInstant"
_UNTIMED: Final = datetime.max.replace(tzinfo=UTC)


@dataclass(frozen=True)
class IotaTopic:
    """Where an IoT Agent JSON message came from and what it carries."""

    apikey: str
    device_id: str
    kind: TopicKind
    object_id: str | None
    """The attribute of a single-attribute message (``kind == "attr"``), else ``None``."""


def parse_topic(topic: str) -> IotaTopic:
    """Read an IoT Agent JSON device-to-agent topic.

    Raises:
        DecodeError: ``bad_topic`` for anything that is not a measure, single-attribute,
            command-result or configuration topic with a non-empty apikey and device id.
    """
    segments = ("/" + topic.removeprefix("/")).split("/")
    if len(segments) > 1 and segments[1].lower() == "json":
        del segments[1]
    parsed = _classify(segments[1:])
    if parsed is None:
        raise DecodeError("bad_topic", f"not an IoT Agent JSON topic: {topic[:200]!r}")
    return parsed


def _classify(segments: list[str]) -> IotaTopic | None:
    if len(segments) < 3 or not segments[0] or not segments[1]:
        return None
    apikey, device_id, *rest = segments
    if rest == ["attrs"]:
        return IotaTopic(apikey, device_id, "attrs", None)
    if len(rest) == 2 and rest[0] == "attrs" and rest[1]:
        return IotaTopic(apikey, device_id, "attr", rest[1])
    if rest == ["cmdexe"]:
        return IotaTopic(apikey, device_id, "cmdexe", None)
    if rest == ["configuration", "commands"]:
        return IotaTopic(apikey, device_id, "config", None)
    return None


def decode(topic: IotaTopic, payload: bytes) -> list[Reading]:
    """The readings in one message, oldest first where the message says when.

    Raises:
        DecodeError: ``malformed_json`` when an ``attrs`` or ``cmdexe`` body is not JSON (or
            not UTF-8); ``bad_envelope`` when it is JSON of the wrong shape, and for
            configuration requests.
    """
    if topic.kind == "attrs":
        return _multi_measure(load_json(payload))
    if topic.kind == "attr":
        assert topic.object_id is not None  # parse_topic sets it for every "attr" topic
        return _single_attribute(topic.object_id, payload)
    if topic.kind == "cmdexe":
        return [_command_result(load_json(payload))]
    raise DecodeError("bad_envelope", "configuration requests are not supported")


def _multi_measure(document: Any) -> list[Reading]:
    if isinstance(document, dict):
        return [_reading(document)]
    if isinstance(document, list) and all(isinstance(group, dict) for group in document):
        return _by_time([_reading(group) for group in document])
    raise DecodeError("bad_envelope", "attrs payload must be an object or an array of objects")


def _reading(group: dict[str, Any]) -> Reading:
    measures = dict(group)
    stamp = measures.pop(TIME_INSTANT, None)
    return Reading(measures, _valid_time(stamp))


def _valid_time(stamp: object) -> str | None:
    return first_timestamp([stamp])


def _by_time(readings: list[Reading]) -> list[Reading]:
    # Stable: untimed readings keep their order and go last, since they are stamped on arrival.
    return sorted(readings, key=lambda r: parse_utc(r.observed_at) if r.observed_at else _UNTIMED)


def _single_attribute(object_id: str, payload: bytes) -> list[Reading]:
    try:
        value = load_json(payload)
    except DecodeError:
        return [Reading({object_id: payload.hex()})]
    if _is_time_series(value):
        return _by_time(
            [Reading({object_id: item["value"]}, _valid_time(item["timestamp"])) for item in value]
        )
    return [Reading({object_id: value})]


def _is_time_series(value: Any) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(item, dict) and {"timestamp", "value"} <= item.keys() for item in value)
    )


def _command_result(document: Any) -> Reading:
    if not isinstance(document, dict) or not document:
        raise DecodeError("bad_envelope", "cmdexe payload must be {<command>: <result>}")
    measures: dict[str, Any] = {}
    for command, result in document.items():
        measures[f"{command}_info"] = result
        measures[f"{command}_status"] = "OK"
    return Reading(measures)
