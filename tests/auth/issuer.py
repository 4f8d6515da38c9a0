"""A real token issuer for tests: keys made here, discovery and JWKS served over real HTTP."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import ECKey, Key, RSAKey

AUDIENCE = "https://toshi.test/ngsi-ld"


def rsa_key(kid: str) -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig"})


def ec_key(kid: str) -> ECKey:
    return ECKey.generate_key("P-256", parameters={"kid": kid, "use": "sig"})


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass
class Issuer:
    """An OpenID issuer at ``url`` publishing the public half of ``keys``."""

    url: str
    keys: list[Key]
    hits: Counter[str] = field(default_factory=Counter)
    stalled: bool = False

    def publish(self, *keys: Key) -> None:
        self.keys = list(keys)

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.as_dict(private=False) for key in self.keys]}

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims = {"iss": self.url, "sub": "alice", "aud": AUDIENCE, "iat": now, "exp": now + 300}
        claims.update(overrides)
        return {name: value for name, value in claims.items() if value is not None}

    def token(
        self, key: Key | None = None, alg: str = "RS256", header: dict | None = None, **claims: Any
    ) -> str:
        key = key or self.keys[0]
        head = {"alg": alg, "kid": key.kid, **(header or {})}
        return jwt.encode(head, self.claims(**claims), key, algorithms=[alg])

    def unsigned(self, **claims: Any) -> str:
        """``alg: none`` (RFC 7519 §6): header and claims, an empty signature."""
        head = b64(json.dumps({"alg": "none", "typ": "JWT"}).encode())
        return f"{head}.{b64(json.dumps(self.claims(**claims)).encode())}."

    def hmac_with_public_key(self, key: RSAKey, **claims: Any) -> str:
        """HS256 "signed" with the bytes of the RSA public key (the algorithm confusion)."""
        head = b64(json.dumps({"alg": "HS256", "kid": key.kid, "typ": "JWT"}).encode())
        body = b64(json.dumps(self.claims(**claims)).encode())
        secret = key.as_pem(private=False)
        signature = hmac.new(secret, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{b64(signature)}"


@contextmanager
def serve_issuer(*keys: Key) -> Iterator[Issuer]:
    """Serve ``/.well-known/openid-configuration`` and ``/jwks`` on a free loopback port."""
    holder: list[Issuer] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            issuer = holder[0]
            issuer.hits[self.path] += 1
            if issuer.stalled:
                time.sleep(3)
            documents = {
                "/.well-known/openid-configuration": {
                    "issuer": issuer.url,
                    "jwks_uri": f"{issuer.url}/jwks",
                },
                "/jwks": issuer.jwks(),
            }
            if self.path not in documents:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(documents[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):  # the client gave up (the stalled issuer)
                self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    holder.append(Issuer(f"http://127.0.0.1:{server.server_port}", list(keys)))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield holder[0]
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    """A loopback URL nothing listens on (connections are refused at once)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
