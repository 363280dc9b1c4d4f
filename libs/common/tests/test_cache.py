"""The shared read cache: get-or-compute with a TTL, invalidation, the write window and the
generation check that keep values computed before a write from being served after it."""

from __future__ import annotations

import socket

import pytest
from pydantic import BaseModel
from redis.asyncio import Redis

from tripline_common.data import ReadCache


class Figures(BaseModel):
    total: int


class Source:
    """The expensive computation, counting its calls."""

    def __init__(self) -> None:
        self.total = 1
        self.calls = 0

    async def compute(self) -> Figures:
        self.calls += 1
        return Figures(total=self.total)


@pytest.fixture
async def redis(redis_url):
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture
def cache() -> ReadCache[Figures]:
    return ReadCache("figures", Figures, ttl_seconds=30, write_window_seconds=5)


async def test_a_second_read_is_a_hit(cache, redis) -> None:
    source = Source()

    first, first_hit = await cache.get_or_compute(redis, "u1", source.compute)
    second, second_hit = await cache.get_or_compute(redis, "u1", source.compute)

    assert first == second == Figures(total=1)
    assert (first_hit, second_hit) == (False, True)
    assert source.calls == 1
    assert 0 < await redis.ttl("cache:figures:u1") <= 30


async def test_scopes_are_separate(cache, redis) -> None:
    source = Source()

    await cache.get_or_compute(redis, "u1", source.compute)
    _, hit = await cache.get_or_compute(redis, "u2", source.compute)

    assert hit is False and source.calls == 2


async def test_invalidation_makes_the_next_read_compute(cache, redis) -> None:
    source = Source()
    await cache.get_or_compute(redis, "u1", source.compute)

    source.total = 2
    await cache.invalidate(redis, "u1")
    value, hit = await cache.get_or_compute(redis, "u1", source.compute)

    assert value.total == 2 and hit is False


async def test_reads_inside_the_write_window_are_not_stored(cache, redis) -> None:
    source = Source()
    await cache.invalidate(redis, "u1")  # A write transaction is (or may be) in progress.

    await cache.get_or_compute(redis, "u1", source.compute)
    await cache.get_or_compute(redis, "u1", source.compute)
    await redis.delete("cache:figures:u1:writing")  # The window closes.
    await cache.get_or_compute(redis, "u1", source.compute)
    _, hit = await cache.get_or_compute(redis, "u1", source.compute)

    assert source.calls == 3 and hit is True


async def test_a_value_computed_before_a_write_is_never_served_after_it(cache, redis) -> None:
    source = Source()

    async def compute_while_a_write_commits() -> Figures:
        figures = await source.compute()  # Reads the database as it was...
        await cache.invalidate(redis, "u1")  # ...while a writer invalidates and commits,
        await redis.delete("cache:figures:u1:writing")  # and its window has passed.
        source.total = 2
        return figures

    stale, _ = await cache.get_or_compute(redis, "u1", compute_while_a_write_commits)
    fresh, hit = await cache.get_or_compute(redis, "u1", source.compute)

    assert stale.total == 1
    assert fresh.total == 2 and hit is False  # The stale value carried an old generation.


async def test_an_unreadable_entry_is_recomputed(cache, redis) -> None:
    source = Source()
    await redis.set("cache:figures:u1", b"{not json")

    value, hit = await cache.get_or_compute(redis, "u1", source.compute)

    assert value.total == 1 and hit is False


async def test_without_redis_reads_compute_and_writes_carry_on(cache) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.2)
    source = Source()
    try:
        value, hit = await cache.get_or_compute(down, "u1", source.compute)
        await cache.invalidate(down, "u1")
    finally:
        await down.aclose()

    assert value.total == 1 and hit is False
