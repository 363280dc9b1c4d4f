"""Device API keys: random, shown once, stored as a SHA-256 hash with a short display prefix."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

KEY_PREFIX = "tl_"
PREFIX_LENGTH = 8


@dataclass(frozen=True)
class IssuedKey:
    """A new key: give `key` to the device once; store only `prefix` and `key_hash`."""

    key: str
    prefix: str
    key_hash: str


def hash_api_key(key: str) -> str:
    """SHA-256 hex of a key. A fast hash is right here: keys are 256-bit random, not passwords."""
    return hashlib.sha256(key.encode()).hexdigest()


def issue_api_key() -> IssuedKey:
    """Make a new random key (`tl_` + 43 URL-safe characters)."""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return IssuedKey(
        key=key, prefix=key[: len(KEY_PREFIX) + PREFIX_LENGTH], key_hash=hash_api_key(key)
    )
