"""An issuer's signing keys: fetched from its JWKS (found by OIDC discovery) or read from a file.

Theory of operation. ``RemoteKeys`` fetches the JWK Set (RFC 7517 §5) at first use and keeps it.
A token whose ``kid`` is not in it makes it fetch again, since issuers rotate keys by publishing
the new one first (OIDC Core §10.1.1), but at most once per ``refetch_interval``: a flood of
tokens with made-up key ids costs the issuer one request per interval, not one per token. Keys
older than ``max_age`` are fetched again at next use; when a fetch fails the keys it had stay in
use (and the failure is logged), and a source that never got keys raises ``KeysUnavailable`` at
once until the interval has passed, so requests fail fast instead of each waiting for a dead
issuer. Fetches are bounded in time (``timeout``) and size (``max_bytes``), and concurrent
requests share one fetch.

Only public keys for signatures are kept: ``use`` other than ``sig`` and symmetric (``oct``) keys
are dropped, private members are discarded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Final, Protocol

import httpx
import orjson
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

_log = logging.getLogger(__name__)
_KEY_TYPES: Final = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}
_MAX_KEYS: Final = 100
DISCOVERY_PATH: Final = "/.well-known/openid-configuration"
"""OpenID Connect Discovery 1.0 §4: where an issuer describes itself."""


class KeysUnavailable(Exception):
    """The issuer's keys could not be had; the message says why (for the log)."""


class KeySource(Protocol):
    """Where the keys of one issuer come from."""

    async def key(self, kid: str | None, alg: str) -> Key | None:
        """The public key with id ``kid`` usable with ``alg``; without a ``kid``, the only such
        key (OIDC Core §10.1: several keys require a ``kid``). None if there is none.

        Raises:
            KeysUnavailable: the issuer's keys cannot be had at all.
        """
        ...


def parse_jwks(data: bytes) -> list[Key]:
    """The usable public signature keys of a JWK Set document.

    Raises:
        KeysUnavailable: the document is not a JWK Set.
    """
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise KeysUnavailable(f"the JWK Set is not JSON: {exc}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysUnavailable("the JWK Set has no 'keys' array")
    keys: list[Key] = []
    for entry in entries[:_MAX_KEYS]:
        key = _public_signing_key(entry)
        if key is not None:
            keys.append(key)
    return keys


def _public_signing_key(entry: Any) -> Key | None:
    if not isinstance(entry, dict) or entry.get("kty") not in ("RSA", "EC", "OKP"):
        return None
    if entry.get("use", "sig") != "sig":
        return None
    try:
        key = JWKRegistry.import_key(entry)
        return JWKRegistry.import_key(key.as_dict(private=False)) if key.is_private else key
    except (JoseError, ValueError, TypeError) as exc:
        _log.warning("JWK %r skipped: %s", entry.get("kid"), exc)
        return None


def select_key(keys: Sequence[Key], kid: str | None, alg: str) -> Key | None:
    """The key of ``keys`` a token with ``kid`` and ``alg`` is to be verified with."""
    kty = _KEY_TYPES.get(alg[:2])
    fitting = [
        key
        for key in keys
        if key.key_type == kty and key.alg in (None, alg) and (kid is None or key.kid == kid)
    ]
    return fitting[0] if len(fitting) == 1 else None


class StaticKeys:
    """Keys given once, e.g. read from a JWKS file for an issuer that cannot be reached."""

    def __init__(self, keys: Sequence[Key]) -> None:
        self._keys = list(keys)

    @classmethod
    def from_file(cls, path: str) -> StaticKeys:
        """The keys of the JWK Set in file ``path`` (read now, at startup)."""
        with open(path, "rb") as file:
            return cls(parse_jwks(file.read()))

    async def key(self, kid: str | None, alg: str) -> Key | None:
        return select_key(self._keys, kid, alg)


class RemoteKeys:
    """The keys an issuer publishes, fetched with httpx and kept (see the module docstring)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        issuer: str,
        jwks_url: str | None = None,
        *,
        refetch_interval: float = 30.0,
        max_age: float = 3600.0,
        timeout: float = 3.0,
        max_bytes: int = 262_144,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._issuer = issuer
        self._jwks_url = jwks_url
        self._interval = refetch_interval
        self._max_age = max_age
        self._timeout = timeout
        self._max_bytes = max_bytes
        self._clock = clock
        self._keys: list[Key] | None = None
        self._fetched_at = 0.0
        self._attempted_at: float | None = None
        self._failure = "not fetched yet"
        self._lock = asyncio.Lock()
        self.fetches = 0
        """How many times the JWKS was fetched (successfully or not)."""

    async def key(self, kid: str | None, alg: str) -> Key | None:
        if self._keys is None or self._clock() - self._fetched_at >= self._max_age:
            await self._refresh()
        found = None if self._keys is None else select_key(self._keys, kid, alg)
        if found is None and kid is not None and self._keys is not None:
            await self._refresh()  # perhaps a new key: issuers publish it before using it
            found = select_key(self._keys, kid, alg)
        if self._keys is None:
            raise KeysUnavailable(self._failure)
        return found

    async def _refresh(self) -> None:
        seen = self._attempted_at
        async with self._lock:
            now = self._clock()
            if self._attempted_at != seen:
                return  # another request fetched while this one waited
            if self._attempted_at is not None and now - self._attempted_at < self._interval:
                return
            self._attempted_at = now
            self.fetches += 1
            try:
                async with asyncio.timeout(self._timeout):
                    keys = parse_jwks(await self._get(await self._jwks_location()))
            except (KeysUnavailable, httpx.HTTPError, httpx.InvalidURL, TimeoutError) as exc:
                self._failure = f"keys of {self._issuer} not fetched: {exc!r}"
                _log.warning("%s", self._failure)
                return
            self._keys, self._fetched_at = keys, now

    async def _jwks_location(self) -> str:
        if self._jwks_url is not None:
            return self._jwks_url
        url = self._issuer.rstrip("/") + DISCOVERY_PATH
        try:
            document = orjson.loads(await self._get(url))
        except orjson.JSONDecodeError:
            raise KeysUnavailable(f"{url} is not JSON") from None
        # Discovery §4.3: the document must name exactly the issuer it was fetched for.
        if not isinstance(document, dict) or document.get("issuer") != self._issuer:
            raise KeysUnavailable(f"{url} describes another issuer")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise KeysUnavailable(f"{url} has no jwks_uri")
        return jwks_uri

    async def _get(self, url: str) -> bytes:
        async with self._http.stream("GET", url, headers={"Accept": "application/json"}) as reply:
            if reply.status_code != 200:
                raise KeysUnavailable(f"{url} answered {reply.status_code}")
            body = bytearray()
            async for chunk in reply.aiter_bytes():
                body += chunk
                if len(body) > self._max_bytes:
                    raise KeysUnavailable(f"{url} sent more than {self._max_bytes} bytes")
            return bytes(body)
