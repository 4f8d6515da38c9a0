"""The federation of one broker: its registrations, its sources' client, its name in ``Via``.

``Federation.request_scope`` decides, once per request, whether a request is distributed at
all: not with ``local=true``, not when the tenant has no registration (then nothing changes
for it, and it costs one dictionary lookup), and never round a loop — a request that already
passed through this broker is refused with 508 (§6.3.18).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from broker.ngsild.errors import LoopDetected
from broker.ngsild.registrations.distribution import (
    Forward,
    local_only,
    looped,
    outgoing_headers,
    via_value,
    wire_format,
)
from broker.ngsild.registrations.registration import Registration
from broker.ngsild.terms import TermTable, body_context, context_link_header
from broker.services.federation.client import Reply, SourceClient
from broker.services.registrations import RegistrationService
from broker.settings import FederationSettings

T = TypeVar("T")
JSON_LD = "application/ld+json"
WARNINGS = "ngsild_warnings"
"""Where in the request's state the warnings of its distributed parts are collected."""
TIMED_OUT, INVALID, ERROR = "199", "111", "299"
"""§6.3.17 Table 6.3.17-1 warning codes: no answer in time (miscellaneous), an answer that
could not be used (revalidation failed), an error response (miscellaneous persistent)."""


@dataclass(frozen=True, slots=True)
class Scope:
    """A request that is distributed: its tenant, headers and @context."""

    tenant: str
    headers: dict[str, str]
    """The incoming request's headers, lower-case names."""
    terms: TermTable
    registrations: list[Registration]
    params: dict[str, str]
    """The incoming request's query parameters."""
    warnings: list[str] = field(default_factory=list)
    """``NGSILD-Warning`` values of parts that failed (§6.3.17)."""

    def warn(self, code: str, reg: Registration, text: str) -> None:
        """Record that the part of ``reg`` failed."""
        self.warnings.append(f'{code} {reg.id} "{text}"')


class Federation:
    """Distributed operations of this broker."""

    def __init__(
        self,
        settings: FederationSettings,
        registrations: RegistrationService,
        pseudonym: str,
    ) -> None:
        self.registrations = registrations
        self.pseudonym = pseudonym
        self._tenantless_to_request = settings.tenantless == "request"
        self.client = SourceClient(settings, registrations)

    async def close(self) -> None:
        await self.client.close()

    def alias(self, tenant: str) -> str:
        """This broker's name for ``tenant`` in ``Via`` and ``/info/sourceIdentity``: one per
        tenant (v1.9.1 Table 5.2.40-1), so that one tenant registering another of the same
        broker is not mistaken for a loop."""
        return self.pseudonym if not tenant else f"{self.pseudonym}.{tenant}"

    def distributes(self, tenant: str) -> bool:
        """Whether requests of ``tenant`` may be distributed (it has registrations)."""
        return bool(self.registrations.list(tenant))

    def scope(
        self,
        tenant: str,
        headers: dict[str, str],
        terms: TermTable,
        params: dict[str, str],
        *,
        local: bool,
    ) -> Scope | None:
        """The distribution scope of a request, or ``None`` when it stays local.

        Raises:
            LoopDetected: the request has been through this broker already.
        """
        if local:
            return None
        regs = self.registrations.list(tenant)
        if not regs:
            return None
        alias = self.alias(tenant)
        if looped(headers.get("via"), alias):
            raise LoopDetected(f"the request has already been through {alias} (Via)")
        return Scope(tenant, headers, terms, regs, params)

    async def send(
        self,
        scope: Scope,
        forward: Forward,
        method: str,
        path: str,
        *,
        params: list[tuple[str, str]] | None = None,
        body: Any = None,
        terms: TermTable | None = None,
    ) -> Reply | None:
        """One forwarded request, with the source's headers, ``Link`` and ``Via``.

        ``terms``: the @context the names in ``path`` and ``body`` are in, when not the
        request's own (the source's ``jsonldContext``).
        """
        reg = forward.registration
        terms = scope.terms if terms is None else terms
        headers = outgoing_headers(
            reg,
            scope.headers,
            via=via_value(scope.headers.get("via"), self.alias(scope.tenant)),
            tenant=scope.tenant if self._tenantless_to_request else "",
        )
        content_type, accept = wire_format(reg)
        headers["Accept"] = accept
        if content_type == JSON_LD and isinstance(body, dict | list):
            # §4.3.6.6: JSON-LD with the @context inline instead of a Link header.
            context = body_context(terms)
            body = (
                [{**item, "@context": context} for item in body]
                if isinstance(body, list)
                else {**body, "@context": context}
            )
            headers["Content-Type"] = JSON_LD
        else:
            headers["Link"] = context_link_header(terms.link_url)
        if local_only(reg) and method == "GET":
            params = [*(params or []), ("local", "true")]
        return await self.client.send(
            scope.tenant, reg, method, path, headers=headers, params=params, body=body
        )


async def gather(jobs: Iterable[Awaitable[T]]) -> list[T]:
    """Run ``jobs`` concurrently (each bounded by its own deadline) and keep their order."""
    return list(await asyncio.gather(*jobs))
