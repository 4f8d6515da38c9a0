"""Who is asking, and what they may see: authentication, roles, sharing grants, egress rules.

Theory of operation. A request's ``Authorization: Bearer …`` header is turned into a
``Principal`` once, by the ``Authenticator``: a JWT from a trusted OpenID Connect issuer
(``tokens``, keys from ``jwks``) or a Toshi API key (``apikeys``), plus the roles that tenant
admins bound to that principal (``bindings``). Routes then only ask the principal pure questions
(``Principal.may(tenant, Role.EDITOR)``). A principal without a role in the tenant it asks for may
still read what that tenant shared with it (``grants``, ``narrowing``, kept by
``grant_service``). Notification endpoints are checked against the egress policy (``egress``,
rules in ``egress_policy``) when a subscription is made and again when a sender connects.

Pure modules (no I/O, no asyncio): ``roles``, ``principal``, ``claims``, ``cache``,
``keyformat``, ``grants``, ``narrowing``, ``grant_docs``, ``egress_policy``. The others fetch
keys (httpx), keep records (the store port) or resolve names (asyncio).
"""
