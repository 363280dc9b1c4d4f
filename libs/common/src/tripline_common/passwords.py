"""Password hashing with Argon2 (pwdlib), off the event loop: hashing is deliberately slow."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from pwdlib import PasswordHash

# Each Argon2 computation holds 64 MiB; unbounded, a burst of logins on a many-core node would
# need gigabytes (the thread pool is sized from the CPU count). Two at a time per process keeps
# memory predictable for the pod's limit; others wait their turn.
MAX_CONCURRENT_HASHES = 2


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


@lru_cache
def _hash_slots() -> asyncio.Semaphore:
    return asyncio.Semaphore(MAX_CONCURRENT_HASHES)


async def hash_password(password: str) -> str:
    """Argon2id hash of `password` (computed in a worker thread, two at a time)."""
    async with _hash_slots():
        return await asyncio.to_thread(_hasher().hash, password)


async def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches `password_hash` (worker thread, two at a time)."""
    async with _hash_slots():
        return await asyncio.to_thread(_hasher().verify, password, password_hash)


_DUMMY_HASH: str | None = None


async def verify_dummy_password(password: str) -> None:
    """Spend the time of a real verification, so an unknown email cannot be told apart from a
    wrong password by how long the answer takes."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = await hash_password("tripline-dummy-password")
    await verify_password(password, _DUMMY_HASH)
