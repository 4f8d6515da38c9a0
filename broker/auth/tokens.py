"""Bearer JWTs from trusted OpenID Connect issuers → ``Principal`` (RFC 7519, RFC 9068, RFC 8725).

Theory of operation. ``verify`` reads the token's header and claims without trusting them, only
to find which configured issuer (``iss``) and which of its keys (``kid``) it claims; a token
naming an untrusted issuer or an algorithm outside that issuer's allow-list is refused before any
key is touched. The allow-list holds public-key algorithms only, and joserfc's keys are typed, so
neither ``alg: none`` nor an HMAC "keyed" with a public key can pass (RFC 8725 §2.1, §3.1).
Only after the signature is verified are the claims believed: ``exp`` is required (RFC 9068
§2.2), ``nbf`` and ``iat`` must not be in the future, ``aud`` must name one of the issuer's
audiences; all time checks allow ``leeway`` seconds of clock skew.

A verified token is kept in a ``TokenCache`` until its ``exp`` (plus leeway), so a client sending
the same token on every request pays for one signature check. A cached token is not re-checked
against key revocation: access tokens are short-lived, and ``TokenCache.clear`` exists for the
day an issuer's key leaks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from joserfc import jws
from joserfc.errors import JoseError
from joserfc.jws import JWSRegistry

from broker.auth.cache import TokenCache
from broker.auth.claims import RoleRule, roles_from_claims
from broker.auth.jwks import KeySource, KeysUnavailable
from broker.auth.principal import AuthMethod, Principal
from broker.ngsild.errors import AuthFailure, Unauthorized
from broker.settings import AuthSettings

_YEAR_10000 = 253_402_300_800

_DEFAULTS = AuthSettings()
"""Where the defaults of these knobs live (``TOSHI_AUTH__*``)."""


@dataclass(frozen=True, slots=True)
class TrustedIssuer:
    """What Toshi accepts from one issuer.

    Attributes:
        issuer: the exact ``iss`` value.
        audiences: accepted ``aud`` values; a token must name at least one.
        algorithms: accepted JWS ``alg`` values (public-key algorithms only).
        roles: where its tokens carry roles.
    """

    issuer: str
    audiences: frozenset[str]
    algorithms: tuple[str, ...] = ("RS256", "PS256", "ES256")
    roles: RoleRule = field(default_factory=RoleRule)


@dataclass(slots=True)
class _Trusted:
    config: TrustedIssuer
    keys: KeySource
    registry: JWSRegistry


class TokenVerifier:
    """Verifies bearer JWTs of several issuers at once (typically one per town).

    Args:
        issuers: each trusted issuer with the source of its keys.
        leeway: seconds of clock skew allowed in ``exp``, ``nbf`` and ``iat``.
        cache_size: verified tokens remembered (0 disables the cache).
        clock: the wall clock, in seconds since the epoch (tests move it).
    """

    def __init__(
        self,
        issuers: Sequence[tuple[TrustedIssuer, KeySource]],
        *,
        leeway: int = _DEFAULTS.leeway,
        cache_size: int = _DEFAULTS.token_cache_size,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._issuers = {
            config.issuer: _Trusted(config, keys, JWSRegistry(algorithms=config.algorithms))
            for config, keys in issuers
        }
        self._leeway = leeway
        self._cache: TokenCache[Principal] = TokenCache(cache_size)
        self._clock = clock
        self.signature_checks = 0
        """How many signatures were verified (cache hits verify none)."""

    @property
    def cache(self) -> TokenCache[Principal]:
        """The verified tokens kept (``clear()`` it to verify every token again)."""
        return self._cache

    async def verify(self, token: str) -> Principal:
        """The principal ``token`` authenticates.

        Raises:
            Unauthorized: with the reason the token is not accepted.
        """
        now = self._clock()
        cached = self._cache.get(token, now)
        if cached is not None:
            return cached
        signed, header, claims = _parse(token)
        issuer = claims.get("iss")
        trusted = self._issuers.get(issuer) if isinstance(issuer, str) else None
        if trusted is None:
            raise Unauthorized(AuthFailure.WRONG_ISSUER, "the token's issuer is not trusted here")
        alg = header.get("alg")
        if alg not in trusted.config.algorithms:
            raise Unauthorized(
                AuthFailure.BAD_SIGNATURE,
                f"tokens of this issuer must be signed with one of "
                f"{', '.join(trusted.config.algorithms)}",
            )
        await self._check_signature(trusted, signed, header.get("kid"), alg)
        expires = self._check_claims(trusted.config, claims, now)
        principal = _principal(trusted.config, claims, expires)
        self._cache.put(token, principal, expires + self._leeway)
        return principal

    async def _check_signature(
        self, trusted: _Trusted, signed: jws.CompactSignature, kid: Any, alg: str
    ) -> None:
        if kid is not None and not isinstance(kid, str):
            raise Unauthorized(AuthFailure.MALFORMED, "the token's 'kid' is not a string")
        try:
            key = await trusted.keys.key(kid, alg)
        except KeysUnavailable:
            raise Unauthorized(
                AuthFailure.ISSUER_UNAVAILABLE,
                "the issuer's signing keys cannot be fetched right now; try again later",
            ) from None
        if key is None:
            raise Unauthorized(AuthFailure.UNKNOWN_KEY, "the token's signing key is unknown")
        self.signature_checks += 1
        try:
            valid = jws.validate_compact(signed, key, registry=trusted.registry)
        except JoseError:
            valid = False
        if not valid:
            raise Unauthorized(AuthFailure.BAD_SIGNATURE, "the token's signature is not valid")

    def _check_claims(self, config: TrustedIssuer, claims: Mapping[str, Any], now: float) -> float:
        expires = _number(claims, "exp")
        if expires is None:
            raise Unauthorized(AuthFailure.MALFORMED, "the token has no valid 'exp'")
        if now >= expires + self._leeway:
            raise Unauthorized(AuthFailure.EXPIRED, "the token has expired")
        for name in ("nbf", "iat"):
            if name in claims and _number(claims, name) is None:
                raise Unauthorized(AuthFailure.MALFORMED, f"the token's '{name}' is not a time")
            moment = _number(claims, name)
            if moment is not None and moment > now + self._leeway:
                raise Unauthorized(AuthFailure.NOT_YET_VALID, "the token is not valid yet")
        audience = claims.get("aud")
        named = [audience] if isinstance(audience, str) else audience
        if not isinstance(named, list) or not config.audiences.intersection(
            item for item in named if isinstance(item, str)
        ):
            raise Unauthorized(AuthFailure.WRONG_AUDIENCE, "the token is not meant for Toshi")
        if not isinstance(claims.get("sub"), str) or not claims["sub"]:
            raise Unauthorized(AuthFailure.MALFORMED, "the token has no 'sub'")
        return expires


def _parse(token: str) -> tuple[jws.CompactSignature, dict[str, Any], dict[str, Any]]:
    if not token:
        raise Unauthorized(AuthFailure.MISSING, "no bearer token was given")
    try:
        signed = jws.extract_compact(token.encode("ascii"))
        header = signed.headers()
        claims = orjson.loads(signed.payload)
    except (JoseError, ValueError, TypeError, UnicodeError):
        raise Unauthorized(AuthFailure.MALFORMED, "the token is not a signed JWT") from None
    if not isinstance(claims, dict):
        raise Unauthorized(AuthFailure.MALFORMED, "the token's claims are not a JSON object")
    return signed, dict(header), claims


def _number(claims: Mapping[str, Any], name: str) -> float | None:
    """A NumericDate claim (RFC 7519 §2), or None if it is absent or not one."""
    value = claims.get(name)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    # NaN never compares, infinity never expires, and past year 9999 datetime overflows.
    return float(value) if 0 <= value < _YEAR_10000 else None


def _principal(config: TrustedIssuer, claims: Mapping[str, Any], expires: float) -> Principal:
    found = roles_from_claims(claims, config.roles)
    return Principal(
        subject=claims["sub"],
        issuer=config.issuer,
        roles=found.roles,
        operator=found.operator,
        expires_at=datetime.fromtimestamp(expires, UTC),
        method=AuthMethod.JWT,
    )
