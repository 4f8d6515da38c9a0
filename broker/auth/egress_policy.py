"""Where notifications may be sent: allow/deny rules on networks and host names (pure).

A subscription makes the broker send requests to a URL its creator chose, which is a way to
reach what only the broker can reach (server-side request forgery). Rules are of two kinds,
written as text: a network (``169.254.0.0/16``, ``fd00:ec2::254``) matched against the address
the broker connects to, and a host name (``metadata``, or ``*.takamatsu.example`` for any name
below it) matched against the URL's host.

A destination is refused by a rule set when a deny rule matches it, or when the set has an
allow-list and no allow rule matches it: deny always wins. The platform's set is checked first,
then the tenant's, and either can refuse, so a tenant's rules can only narrow the platform's.
By default link-local networks and the cloud metadata endpoints are denied; loopback and private
networks are not, since a town may run its receiver on its own LAN.

Addresses are normalised first: an IPv4-mapped IPv6 address (``::ffff:169.254.169.254``) is the
IPv4 address it maps, and an IPv6 zone (``fe80::1%eth0``) is dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final, Literal

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_DENY: Final = (
    "169.254.0.0/16",  # IPv4 link-local (RFC 3927), where most clouds answer metadata requests
    "fe80::/10",  # IPv6 link-local (RFC 4291 §2.5.6)
    "169.254.169.254",  # AWS, GCP, Azure, OpenStack instance metadata
    "fd00:ec2::254",  # AWS instance metadata over IPv6
    "100.100.100.200",  # Alibaba Cloud instance metadata
    "metadata.google.internal",
    "metadata",
)
"""What ``default_deny`` refuses."""


@dataclass(frozen=True, slots=True)
class Rule:
    """One allow or deny entry, as written (``text``) and as matched."""

    text: str
    network: IPNetwork | None = None
    host: str | None = None
    """An exact host name, or ``.suffix`` for ``*.suffix``."""

    def matches(self, ip: IPAddress | None, host: str | None) -> bool:
        """Whether the rule covers a destination address ``ip`` named ``host``."""
        if self.network is not None:
            return ip is not None and ip.version == self.network.version and ip in self.network
        if host is None or self.host is None:
            return False
        return host.endswith(self.host) if self.host.startswith(".") else host == self.host


def parse_rule(text: str) -> Rule:
    """A rule from its text: a CIDR network or address, ``name`` or ``*.suffix``.

    Raises:
        ValueError: ``text`` is neither.
    """
    entry = text.strip().lower()
    try:
        return Rule(entry, network=ipaddress.ip_network(entry, strict=False))
    except ValueError:
        pass
    name = entry[2:] if entry.startswith("*.") else entry
    labels = name.rstrip(".").split(".")
    if not name or not all(label and label.replace("-", "").isalnum() for label in labels):
        raise ValueError(f"egress rule {text!r} is neither a network nor a host name")
    suffix = "." + name.rstrip(".") if entry.startswith("*.") else name.rstrip(".")
    return Rule(entry, host=suffix)


def normal_address(ip: str | IPAddress) -> IPAddress:
    """``ip`` as an address object, IPv4-mapped IPv6 as IPv4, without an IPv6 zone."""
    address = ipaddress.ip_address(ip.split("%", 1)[0] if isinstance(ip, str) else ip)
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id is not None:
            return ipaddress.IPv6Address(str(address).split("%", 1)[0])
    return address


def normal_host(host: str | None) -> str | None:
    """A host name as rules see it: lower case, without a final dot."""
    return None if host is None else host.strip().lower().rstrip(".") or None


@dataclass(frozen=True, slots=True)
class EgressRules:
    """One rule set: ``allow`` (if not empty, only these) and ``deny`` (never these)."""

    allow: tuple[Rule, ...] = ()
    deny: tuple[Rule, ...] = ()

    @classmethod
    def parse(cls, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> EgressRules:
        """A rule set from rule texts (``ValueError`` names the first bad one)."""
        return cls(tuple(map(parse_rule, allow)), tuple(map(parse_rule, deny)))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an endpoint may not be used: the rule, and a sentence for the client."""

    rule: str
    message: str


Scope = Literal["platform", "tenant"]
_WHOSE: Final = {"platform": "the platform's", "tenant": "this tenant's"}


@dataclass(frozen=True, slots=True)
class EgressPolicy:
    """The platform's rules and each tenant's narrowing of them."""

    platform: EgressRules = field(default_factory=lambda: EgressRules.parse(deny=DEFAULT_DENY))
    tenants: Mapping[str, EgressRules] = field(default_factory=dict)

    def check_address(
        self, ip: str | IPAddress | None, host: str | None, tenant: str
    ) -> Refusal | None:
        """Whether a destination may be reached for ``tenant``: None, or why not.

        Args:
            ip: the address connected to (or about to be), None when only the name is known.
            host: the URL's host name, None when the URL gives an address.
            tenant: the tenant of the subscription.
        """
        address = None if ip is None else normal_address(ip)
        name = normal_host(host)
        shown = _destination(address, name)
        for scope, rules in self._rule_sets(tenant):
            refusal = _refusal(rules, address, name, scope, shown)
            if refusal is not None:
                return refusal
        return None

    def check_name(self, host: str, tenant: str) -> Refusal | None:
        """The deny rules on host names alone, to refuse a name before resolving it."""
        name = normal_host(host)
        for scope, rules in self._rule_sets(tenant):
            for rule in rules.deny:
                if rule.host is not None and rule.matches(None, name):
                    return _denied(rule, scope, repr(name))
        return None

    def _rule_sets(self, tenant: str) -> list[tuple[Scope, EgressRules]]:
        sets: list[tuple[Scope, EgressRules]] = [("platform", self.platform)]
        if tenant in self.tenants:
            sets.append(("tenant", self.tenants[tenant]))
        return sets


def _refusal(
    rules: EgressRules, ip: IPAddress | None, host: str | None, scope: Scope, shown: str
) -> Refusal | None:
    for rule in rules.deny:
        if rule.matches(ip, host):
            return _denied(rule, scope, shown)
    if rules.allow and not any(rule.matches(ip, host) for rule in rules.allow):
        return Refusal(
            "allow-list",
            f"notification endpoint {shown} is not in {_WHOSE[scope]} egress allow-list",
        )
    return None


def _denied(rule: Rule, scope: Scope, shown: str) -> Refusal:
    message = f"notification endpoint {shown} is refused by {_WHOSE[scope]} egress rule"
    return Refusal(f"deny {rule.text}", f"{message} 'deny {rule.text}'")


def _destination(ip: IPAddress | None, host: str | None) -> str:
    if host is None:
        return str(ip)
    return repr(host) if ip is None else f"{host!r} ({ip})"
