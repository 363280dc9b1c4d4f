"""Password hashing with Argon2 (pwdlib), off the event loop: hashing is deliberately slow."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


async def hash_password(password: str) -> str:
    """Argon2id hash of `password` (computed in a worker thread)."""
    return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches `password_hash` (computed in a worker thread)."""
    return await asyncio.to_thread(_hasher().verify, password, password_hash)


_DUMMY_HASH: str | None = None


async def verify_dummy_password(password: str) -> None:
    """Spend the time of a real verification, so an unknown email cannot be told apart from a
    wrong password by how long the answer takes."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = await hash_password("tripline-dummy-password")
    await verify_password(password, _DUMMY_HASH)
