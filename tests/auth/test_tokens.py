"""Bearer JWTs: real keys, a real issuer over HTTP, every way a token can be wrong."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from broker.auth.claims import RoleRule
from broker.auth.jwks import RemoteKeys, StaticKeys
from broker.auth.principal import AuthMethod
from broker.auth.roles import Role
from broker.auth.tokens import TokenVerifier, TrustedIssuer
from broker.ngsild.errors import AuthFailure, Unauthorized
from joserfc.jwk import ECKey, RSAKey

from tests.auth.issuer import AUDIENCE, Issuer, closed_port_url, ec_key, rsa_key, serve_issuer


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def keys() -> dict[str, RSAKey | ECKey]:
    return {
        "first": rsa_key("first"),
        "second": rsa_key("second"),
        "impostor": rsa_key("first"),  # another key under the same kid
        "ec": ec_key("ec"),
    }


@pytest.fixture
def issuer(keys: dict[str, RSAKey | ECKey]) -> Iterator[Issuer]:
    with serve_issuer(keys["first"], keys["ec"]) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def trusted(url: str, **changes: object) -> TrustedIssuer:
    options: dict = {
        "audiences": frozenset({AUDIENCE}),
        "algorithms": ("RS256", "ES256"),
        "roles": RoleRule(default_tenant="takamatsu"),
    }
    options.update(changes)
    return TrustedIssuer(url, **options)


def verifier(
    issuer: Issuer, http: httpx.AsyncClient, clock: Clock | None = None, **changes: object
) -> tuple[TokenVerifier, RemoteKeys]:
    keys = RemoteKeys(http, issuer.url, clock=clock or time.monotonic, timeout=2.0)
    return TokenVerifier([(trusted(issuer.url, **changes), keys)]), keys


async def reason(verify: TokenVerifier, token: str) -> AuthFailure:
    with pytest.raises(Unauthorized) as caught:
        await verify.verify(token)
    assert caught.value.status == 401
    return caught.value.reason


async def test_a_valid_token_found_by_discovery_gives_its_principal(issuer, http) -> None:
    verify, _ = verifier(issuer, http)
    token = issuer.token(toshi_roles=["editor", "kagawa:reader", "offline_access"])

    principal = await verify.verify(token)

    assert (principal.subject, principal.issuer) == ("alice", issuer.url)
    assert principal.roles == {"takamatsu": Role.EDITOR, "kagawa": Role.READER}
    assert principal.method is AuthMethod.JWT and principal.expires_at is not None
    assert issuer.hits["/.well-known/openid-configuration"] == 1 and issuer.hits["/jwks"] == 1


async def test_an_ec_key_and_a_configured_jwks_url_work_too(issuer, keys, http) -> None:
    remote = RemoteKeys(http, issuer.url, f"{issuer.url}/jwks")
    verify = TokenVerifier([(trusted(issuer.url), remote)])

    assert (await verify.verify(issuer.token(keys["ec"], alg="ES256"))).subject == "alice"
    assert issuer.hits["/.well-known/openid-configuration"] == 0


async def test_the_second_verification_of_a_token_checks_no_signature(issuer, http) -> None:
    verify, _ = verifier(issuer, http)
    token = issuer.token()

    first = await verify.verify(token)
    second = await verify.verify(token)

    assert second is first
    assert verify.signature_checks == 1
    await verify.verify(issuer.token(sub="bob"))
    assert verify.signature_checks == 2


async def test_a_cached_token_fails_once_it_has_expired(issuer, http) -> None:
    now = time.time()
    clock = Clock(now)
    verify = TokenVerifier([(trusted(issuer.url), RemoteKeys(http, issuer.url))], clock=clock)
    token = issuer.token(iat=int(now), exp=int(now) + 60)
    await verify.verify(token)

    clock.now = now + 60 + 31  # past exp and the 30 s leeway

    assert await reason(verify, token) is AuthFailure.EXPIRED


async def test_a_token_signed_by_another_key_is_forged(issuer, keys, http) -> None:
    verify, _ = verifier(issuer, http)

    assert await reason(verify, issuer.token(keys["impostor"])) is AuthFailure.BAD_SIGNATURE


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"exp": int(time.time()) - 120}, AuthFailure.EXPIRED),
        ({"nbf": int(time.time()) + 600}, AuthFailure.NOT_YET_VALID),
        ({"iat": int(time.time()) + 600}, AuthFailure.NOT_YET_VALID),
        ({"aud": "https://another.service"}, AuthFailure.WRONG_AUDIENCE),
        ({"aud": None}, AuthFailure.WRONG_AUDIENCE),
        ({"iss": "https://id.elsewhere.example"}, AuthFailure.WRONG_ISSUER),
        ({"exp": None}, AuthFailure.MALFORMED),
        ({"exp": "tomorrow"}, AuthFailure.MALFORMED),
        ({"sub": None}, AuthFailure.MALFORMED),
    ],
)
async def test_claims_are_checked(issuer, http, claims, expected) -> None:
    verify, _ = verifier(issuer, http)

    assert await reason(verify, issuer.token(**claims)) is expected


async def test_clock_skew_within_the_leeway_is_allowed(issuer, http) -> None:
    verify, _ = verifier(issuer, http)
    now = int(time.time())

    await verify.verify(issuer.token(exp=now - 10, nbf=now + 10))
    await verify.verify(issuer.token(aud=["https://another.service", AUDIENCE]))


async def test_alg_none_is_refused_before_any_key_is_fetched(issuer, http) -> None:
    verify, _ = verifier(issuer, http)

    assert await reason(verify, issuer.unsigned()) is AuthFailure.BAD_SIGNATURE
    assert issuer.hits["/jwks"] == 0


async def test_hs256_signed_with_the_public_key_never_verifies(issuer, keys, http) -> None:
    forged = issuer.hmac_with_public_key(keys["first"])
    strict, _ = verifier(issuer, http)
    # Even an issuer wrongly allowed HS256 has no symmetric key: the public key is no secret.
    careless, _ = verifier(issuer, http, algorithms=("RS256", "HS256"))

    assert await reason(strict, forged) is AuthFailure.BAD_SIGNATURE
    assert await reason(careless, forged) in {AuthFailure.UNKNOWN_KEY, AuthFailure.BAD_SIGNATURE}


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b.c", "eyJhbGciOiJSUzI1NiJ9.e30.x.y.z", "é.é.é"],
)
async def test_malformed_tokens(issuer, http, token) -> None:
    verify, _ = verifier(issuer, http)

    expected = AuthFailure.MISSING if token == "" else AuthFailure.MALFORMED
    assert await reason(verify, token) is expected


async def test_claims_that_are_not_an_object_are_malformed(issuer, keys, http) -> None:
    from joserfc import jws

    verify, _ = verifier(issuer, http)
    token = jws.serialize_compact({"alg": "RS256", "kid": "first"}, b"[1, 2]", keys["first"])

    assert await reason(verify, token) is AuthFailure.MALFORMED


async def test_a_rotated_key_is_found_by_refetching_and_refetches_are_bounded(
    issuer, keys, http
) -> None:
    clock = Clock(1000.0)
    verify, remote = verifier(issuer, http, clock)
    await verify.verify(issuer.token())
    clock.now += 600
    issuer.publish(keys["first"], keys["second"])  # the issuer rotates: a new kid appears

    await verify.verify(issuer.token(keys["second"]))
    assert remote.fetches == 2

    ghost = issuer.token(rsa_key("ghost"))
    assert await reason(verify, ghost) is AuthFailure.UNKNOWN_KEY
    assert await reason(verify, ghost) is AuthFailure.UNKNOWN_KEY
    assert remote.fetches == 2  # within the refetch interval: no request to the issuer

    clock.now += 30
    assert await reason(verify, ghost) is AuthFailure.UNKNOWN_KEY
    assert remote.fetches == 3


async def test_an_unreachable_issuer_fails_fast_with_a_clear_reason(http, caplog) -> None:
    url = closed_port_url()
    remote = RemoteKeys(http, url, timeout=2.0)
    verify = TokenVerifier([(trusted(url), remote)])
    token = Issuer(url, [rsa_key("k")]).token()

    with caplog.at_level(logging.WARNING, logger="broker.auth.jwks"):
        assert await reason(verify, token) is AuthFailure.ISSUER_UNAVAILABLE
    assert await reason(verify, token) is AuthFailure.ISSUER_UNAVAILABLE
    assert remote.fetches == 1
    assert any(url in record.getMessage() for record in caplog.records)


async def test_a_stalled_issuer_does_not_hold_the_request_for_long(issuer, http) -> None:
    issuer.stalled = True
    remote = RemoteKeys(http, issuer.url, timeout=0.3)
    verify = TokenVerifier([(trusted(issuer.url), remote)])

    started = time.monotonic()
    assert await reason(verify, issuer.token()) is AuthFailure.ISSUER_UNAVAILABLE
    assert time.monotonic() - started < 1.5


async def test_oversized_or_foreign_documents_are_refused(issuer, http) -> None:
    small = RemoteKeys(http, issuer.url, max_bytes=64)
    assert await reason(TokenVerifier([(trusted(issuer.url), small)]), issuer.token()) is (
        AuthFailure.ISSUER_UNAVAILABLE
    )
    # Discovery §4.3: the document must describe the issuer it was fetched for.
    other = RemoteKeys(http, issuer.url + "/")
    verify = TokenVerifier([(trusted(issuer.url + "/"), other)])
    token = issuer.token(iss=issuer.url + "/")
    assert await reason(verify, token) is AuthFailure.ISSUER_UNAVAILABLE


async def test_keys_from_a_file_need_no_issuer_at_all(tmp_path: Path, keys) -> None:
    url = closed_port_url()
    offline = Issuer(url, [keys["first"]])
    path = tmp_path / "jwks.json"
    path.write_text(json.dumps(offline.jwks()))
    verify = TokenVerifier([(trusted(url), StaticKeys.from_file(str(path)))])

    assert (await verify.verify(offline.token())).issuer == url
    assert await reason(verify, offline.token(keys["second"])) is AuthFailure.UNKNOWN_KEY


async def test_several_issuers_are_trusted_at_once(keys, http) -> None:
    with serve_issuer(keys["first"]) as takamatsu, serve_issuer(keys["second"]) as kagawa:
        verify = TokenVerifier(
            [
                (trusted(takamatsu.url), RemoteKeys(http, takamatsu.url)),
                (trusted(kagawa.url), RemoteKeys(http, kagawa.url)),
            ]
        )
        assert (await verify.verify(takamatsu.token())).issuer == takamatsu.url
        assert (await verify.verify(kagawa.token())).issuer == kagawa.url
        # One issuer's key does not vouch for the other's tokens.
        stolen = takamatsu.token(keys["second"])
        assert await reason(verify, stolen) is AuthFailure.UNKNOWN_KEY


def test_the_401_carries_an_rfc_6750_challenge() -> None:
    missing = Unauthorized(AuthFailure.MISSING, "no bearer token was given")
    expired = Unauthorized(AuthFailure.EXPIRED, 'the token has "expired"')

    assert missing.headers() == {"WWW-Authenticate": 'Bearer realm="toshi"'}
    assert expired.headers()["WWW-Authenticate"] == (
        'Bearer realm="toshi", error="invalid_token", error_description="the token has ?expired?"'
    )
    assert expired.problem()["reason"] == "expired"
