"""Password hashing with Argon2 (pwdlib), off the event loop: hashing is deliberately slow."""

from __future__ import annotations

import asyncio
import weakref
from enum import StrEnum
from functools import lru_cache

from pwdlib import PasswordHash

# Each Argon2 computation holds 64 MiB; unbounded, a burst of logins on a many-core node would
# need gigabytes (the thread pool is sized from the CPU count). Two at a time per process keeps
# memory predictable for the pod's limit; others wait their turn.
MAX_CONCURRENT_HASHES = 2
# Of those slots, account work that anyone can start without a password (sign-up, password
# reset and change) may hold at most this many: a burst of sign-ups leaves a slot to logins.
ACCOUNT_HASH_SLOTS = 1


class HashLane(StrEnum):
    """Who is hashing: a login (all slots) or account work (at most `ACCOUNT_HASH_SLOTS`)."""

    LOGIN = "login"
    ACCOUNT = "account"


class _Slots:
    """The process's hash slots, and the account lane's share of them (one set per event loop:
    an asyncio semaphore belongs to the loop that first waited on it)."""

    def __init__(self) -> None:
        self.all = asyncio.Semaphore(MAX_CONCURRENT_HASHES)
        self.account = asyncio.Semaphore(ACCOUNT_HASH_SLOTS)
        self.account_holding = 0  # Account hashes holding a slot now (read by tests, metrics).


_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Slots] = weakref.WeakKeyDictionary()


@lru_cache
def _hasher() -> PasswordHash:
    return PasswordHash.recommended()


def _slots() -> _Slots:
    loop = asyncio.get_running_loop()
    slots = _SLOTS.get(loop)
    if slots is None:
        slots = _SLOTS[loop] = _Slots()
    return slots


def account_hashes_in_progress() -> int:
    """How many account-lane hashes hold a slot right now (never above `ACCOUNT_HASH_SLOTS`)."""
    return _slots().account_holding


async def hash_password(password: str, *, lane: HashLane = HashLane.LOGIN) -> str:
    """Argon2id hash of `password` (computed in a worker thread, two at a time; the account
    lane waits for its own share first, so it never holds more than `ACCOUNT_HASH_SLOTS`)."""
    slots = _slots()
    if lane is HashLane.LOGIN:
        async with slots.all:
            return await asyncio.to_thread(_hasher().hash, password)
    async with slots.account, slots.all:
        slots.account_holding += 1
        try:
            return await asyncio.to_thread(_hasher().hash, password)
        finally:
            slots.account_holding -= 1


async def verify_password(password: str, password_hash: str) -> bool:
    """True when `password` matches `password_hash` (worker thread, two at a time)."""
    async with _slots().all:
        return await asyncio.to_thread(_hasher().verify, password, password_hash)


_DUMMY_HASH: str | None = None


async def verify_dummy_password(password: str) -> None:
    """Spend the time of a real verification, so an unknown email cannot be told apart from a
    wrong password by how long the answer takes."""
    global _DUMMY_HASH
    if _DUMMY_HASH is None:
        _DUMMY_HASH = await hash_password("tripline-dummy-password")
    await verify_password(password, _DUMMY_HASH)
