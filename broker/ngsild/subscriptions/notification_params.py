"""The ``notification`` member of a Subscription: NotificationParams and Endpoint (GS CIM 009
v1.8.1 §5.2.14, §5.2.15) — what to send, in which format, and where.

Split from ``subscription`` so each module reads in one sitting; the constants that name
defaults live here because the notification parser records them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, TypeVar
from urllib.parse import urlsplit

from broker.ngsild.errors import BadRequestData
from broker.ngsild.names import check_name, is_uri
from broker.ngsild.query.params import attribute_names
from broker.ngsild.render import SHOWN_MEMBERS
from broker.ngsild.terms import TermTable

FORMATS: Final = ("normalized", "concise", "keyValues", "simplified")
"""``simplified`` is the v1.8 synonym of ``keyValues``."""
ACCEPTS: Final = ("application/json", "application/ld+json", "application/geo+json")
SCHEMES: Final = frozenset({"http", "https", "mqtt", "mqtts"})
JOINS: Final = ("flat", "inline", "@none")
FORMAT: Final = "notification.format"
ACCEPT: Final = "notification.endpoint.accept"
SYS_ATTRS: Final = "notification.sysAttrs"
SHOW_CHANGES: Final = "notification.showChanges"
NOTIFICATION_DEFAULTS: Final = frozenset({FORMAT, ACCEPT, SYS_ATTRS, SHOW_CHANGES})

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where and how notifications are delivered (§5.2.15).

    Attributes:
        uri: an absolute http, https, mqtt or mqtts URI.
        accept: the media type of notification bodies.
        receiver_info: (key, value) pairs sent to the receiver (HTTP headers, MQTT user props).
        notifier_info: (key, value) pairs that configure the notifier (e.g. MQTT QoS).
    """

    uri: str
    accept: str = "application/json"
    receiver_info: tuple[tuple[str, str], ...] | None = None
    notifier_info: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True, slots=True)
class Notification:
    """What a notification contains (§5.2.14), names expanded.

    Attributes:
        endpoint: the delivery endpoint.
        attributes: attribute IRIs to include (``None``: all).
        format: ``normalized``, ``concise``, ``keyValues`` or ``simplified`` as given.
        sys_attrs: whether system members (createdAt, modifiedAt) are included.
        show_changes: whether previous values are included (not with keyValues).
        pick: entity members (``id``, ``type``, ``scope``) and attribute IRIs to keep.
        omit: entity members and attribute IRIs to leave out.
        join: ``flat``, ``inline`` or ``@none`` for linked entities.
        join_level: how many relationship hops ``join`` follows.
    """

    endpoint: Endpoint
    attributes: tuple[str, ...] | None = None
    format: str = "normalized"
    sys_attrs: bool = False
    show_changes: bool = False
    pick: tuple[str, ...] | None = None
    omit: tuple[str, ...] | None = None
    join: str | None = None
    join_level: int | None = None

    @property
    def simplified(self) -> bool:
        """Whether entities are sent as keyValues."""
        return self.format in ("keyValues", "simplified")


def parse_notification(value: Any, terms: TermTable) -> Notification:
    """Validate a ``notification`` member (§5.2.14) and expand its names.

    Raises:
        BadRequestData: a member breaks a rule of §5.2.14 or §5.2.15.
    """
    if not isinstance(value, dict):
        raise BadRequestData("'notification' must be a JSON object")
    if value.get("endpoint") is None:
        raise BadRequestData("'notification' needs an 'endpoint'")
    format_ = value.get("format", "normalized")
    if format_ not in FORMATS:
        raise BadRequestData(f"notification.format must be one of {', '.join(FORMATS)}")
    notification = Notification(
        endpoint=_endpoint(value["endpoint"]),
        attributes=_optional(value, "attributes", lambda v: _attributes(v, terms)),
        format=format_,
        sys_attrs=_flag(value, "sysAttrs"),
        show_changes=_flag(value, "showChanges"),
        pick=_optional(value, "pick", lambda v: _members(v, "pick", terms)),
        omit=_optional(value, "omit", lambda v: _members(v, "omit", terms)),
        join=_optional(value, "join", _join),
        join_level=_optional(value, "joinLevel", _join_level),
    )
    _check_notification(notification)
    return notification


def _check_notification(notification: Notification) -> None:
    if notification.show_changes and notification.simplified:
        raise BadRequestData("notification.showChanges cannot be used with keyValues")
    projected = notification.pick is not None or notification.omit is not None
    if projected and notification.attributes is not None:
        raise BadRequestData("notification.attributes cannot be combined with pick or omit")
    both = set(notification.pick or ()) & set(notification.omit or ())
    if both:
        raise BadRequestData(f"notification.pick and omit both name {', '.join(sorted(both))}")


def _endpoint(value: Any) -> Endpoint:
    if not isinstance(value, dict):
        raise BadRequestData("notification.endpoint must be a JSON object")
    accept = value.get("accept", "application/json")
    if accept not in ACCEPTS:
        raise BadRequestData(f"notification.endpoint.accept must be one of {', '.join(ACCEPTS)}")
    return Endpoint(
        uri=check_scheme(value.get("uri")),
        accept=accept,
        receiver_info=_optional(value, "receiverInfo", lambda v: _pairs(v, "receiverInfo")),
        notifier_info=_optional(value, "notifierInfo", lambda v: _pairs(v, "notifierInfo")),
    )


def _optional(obj: dict[str, Any], member: str, parse: Callable[[Any], _T]) -> _T | None:
    value = obj.get(member)
    return None if value is None else parse(value)


def _flag(obj: dict[str, Any], member: str) -> bool:
    value = obj.get(member, False)
    if not isinstance(value, bool):
        raise BadRequestData(f"notification.{member} must be true or false, got {value!r}")
    return value


def _attributes(value: Any, terms: TermTable) -> tuple[str, ...]:
    return attribute_names(strings(value, "notification.attributes"), terms)


def _members(value: Any, member: str, terms: TermTable) -> tuple[str, ...]:
    return tuple(
        check_member_name(name, terms) for name in strings(value, f"notification.{member}")
    )


def _join(value: Any) -> str:
    if value not in JOINS:
        raise BadRequestData(f"notification.join must be one of {', '.join(JOINS)}")
    return str(value)


def _join_level(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise BadRequestData(f"notification.joinLevel must be a positive integer, got {value!r}")
    return value


def _pairs(value: Any, member: str) -> tuple[tuple[str, str], ...]:
    # §5.2.22 KeyValuePair: both members are mandatory strings.
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"notification.endpoint.{member} must be a non-empty array")
    pairs = []
    for item in value:
        if not isinstance(item, dict) or set(item) != {"key", "value"}:
            raise BadRequestData(f"each {member} entry must have exactly 'key' and 'value'")
        key, text = item["key"], item["value"]
        if not isinstance(key, str) or not key or not isinstance(text, str):
            raise BadRequestData(f"{member} keys and values must be strings")
        pairs.append((key, text))
    return tuple(pairs)


def notification_defaulted(value: Any) -> frozenset[str]:
    endpoint = value.get("endpoint", {})
    given = {f"notification.{name}" for name in value} | {
        f"notification.endpoint.{name}" for name in endpoint
    }
    return NOTIFICATION_DEFAULTS - given


def strings(value: Any, member: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise BadRequestData(f"'{member}' must be a non-empty array of strings")
    if not all(isinstance(item, str) for item in value):
        raise BadRequestData(f"'{member}' must contain strings only")
    return value


def check_scheme(uri: Any) -> str:
    """``uri`` if it is an absolute http(s) or mqtt(s) URI with a host, else BadRequestData."""
    if not is_uri(uri):
        raise BadRequestData(f"notification.endpoint.uri must be an absolute URI, got {uri!r}")
    parts = urlsplit(uri)
    if parts.scheme.lower() not in SCHEMES or not parts.netloc:
        raise BadRequestData(
            "notification.endpoint.uri must use http, https, mqtt or mqtts and name a host, "
            f"got {uri!r}"
        )
    return str(uri)


def check_member_name(name: Any, terms: TermTable) -> str:
    """A pick/omit entry: an entity member kept as is, or an attribute name expanded."""
    check_name(name, "pick/omit member")
    return str(name) if name in SHOWN_MEMBERS else terms.expand(name)
