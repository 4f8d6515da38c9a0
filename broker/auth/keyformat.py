"""The shape of Toshi API keys: ``toshi_<key id>_<secret>``, and what is kept of them.

The key id (16 hex digits) is not secret: it names the record, so a key is found with one
dictionary lookup whatever the number of keys. The secret is 256 random bits (``secrets``,
64 hex digits). The prefix lets people and secret scanners recognise a leaked key.

Only a SHA-256 digest of the whole key is stored. Slow password hashes (bcrypt, argon2) exist
to make guessing low-entropy passwords expensive; a 256-bit random secret cannot be guessed, and
a preimage of SHA-256 cannot be found, so the digest is as safe to store, and checking it costs
microseconds per request instead of a deliberate tenth of a second. The presented key's digest is
compared with ``hmac.compare_digest``, so the time taken says nothing about how much matched.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from typing import Final

PREFIX: Final = "toshi_"
_SHAPE: Final = re.compile(r"toshi_([0-9a-f]{16})_([0-9a-f]{64})\Z")


def new_key() -> tuple[str, str]:
    """A fresh ``(key id, whole key)``."""
    key_id = secrets.token_hex(8)
    return key_id, f"{PREFIX}{key_id}_{secrets.token_hex(32)}"


def key_id_of(key: str) -> str | None:
    """The key id of a well-formed API key, or None if ``key`` is not shaped like one."""
    found = _SHAPE.match(key)
    return None if found is None else found.group(1)


def digest(key: str) -> str:
    """What is stored of ``key``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def matches(key: str, stored: str) -> bool:
    """Whether ``key`` is the key whose digest is ``stored`` (in constant time)."""
    return hmac.compare_digest(digest(key).encode(), stored.encode())
