"""The front door: an ``Authorization`` header → the ``Principal`` a request acts as.

Both kinds of credentials travel as bearer tokens (RFC 6750 §2.1), so clients need one way to
send them: ``Authorization: Bearer toshi_…`` is an API key, any other bearer token a JWT. Roles
bound through the admin API are added last, on every request, so binding or unbinding takes
effect at once even for tokens already in the verifier's cache.
"""

from __future__ import annotations

from broker.auth.apikeys import ApiKeyService
from broker.auth.bindings import RoleBindings
from broker.auth.keyformat import PREFIX
from broker.auth.principal import Principal
from broker.auth.tokens import TokenVerifier
from broker.ngsild.errors import AuthFailure, Unauthorized


class Authenticator:
    """Authenticates requests with JWTs, API keys, or both.

    Args:
        tokens: verifies JWTs; None when no issuer is trusted.
        api_keys: verifies API keys; None when they are switched off.
        bindings: roles bound by tenant admins, added to every principal.
    """

    def __init__(
        self,
        tokens: TokenVerifier | None,
        api_keys: ApiKeyService | None = None,
        bindings: RoleBindings | None = None,
    ) -> None:
        self._tokens = tokens
        self._api_keys = api_keys
        self._bindings = bindings

    async def authenticate(self, authorization: str | None) -> Principal:
        """The principal of a request with this ``Authorization`` header value (None: absent).

        Raises:
            Unauthorized: no credentials, or credentials that are not accepted.
        """
        token = bearer_token(authorization)
        if token.startswith(PREFIX):
            if self._api_keys is None:
                raise Unauthorized(AuthFailure.UNKNOWN_KEY, "API keys are not accepted here")
            principal = self._api_keys.verify(token)
        elif self._tokens is None:
            raise Unauthorized(AuthFailure.WRONG_ISSUER, "no token issuer is trusted here")
        else:
            principal = await self._tokens.verify(token)
        return principal if self._bindings is None else self._bindings.apply(principal)


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header value.

    Raises:
        Unauthorized: ``MISSING`` without a header, ``MALFORMED`` for another scheme.
    """
    if authorization is None or not authorization.strip():
        raise Unauthorized(AuthFailure.MISSING, "this request needs an Authorization header")
    scheme, _, token = authorization.strip().partition(" ")
    # RFC 9110 §11.1: the scheme name is case-insensitive.
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized(
            AuthFailure.MALFORMED, "credentials must be sent as 'Authorization: Bearer <token>'"
        )
    return token.strip()
