"""`/readyz` follows real outages: a dependency stops, freezes or was never there, then returns.

Each test runs its own real Postgres or Redis (tripline_devstack), stops it under a running app
and starts it again on the same port; nothing is mocked. The other dependency stays the normal
test one, so each 503 must name exactly the dependency that went away.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager, suppress
from pathlib import Path
from typing import Any

import httpx
import pytest

from tripline_devstack import EmbeddedPostgres, EmbeddedRedis, ensure_database, free_port

READINESS_TIMEOUT = 0.5
# A failing probe must answer within this, whatever the dependency does (timeout plus slack).
PROBE_BOUND = 3.0
# What readiness_timeout promises: each check gives up after it (plus scheduling slack).
STRICT_BOUND = READINESS_TIMEOUT + 0.5
RECOVERY_BOUND = 10.0


async def timed_get(client: httpx.AsyncClient, path: str) -> tuple[httpx.Response, float]:
    start = time.monotonic()
    response = await client.get(path)
    return response, time.monotonic() - start


async def wait_until_ready(client: httpx.AsyncClient, timeout: float = RECOVERY_BOUND) -> None:
    """Poll `/readyz` until it answers 200, for at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get("/readyz")
        if response.status_code == 200:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"/readyz still {response.status_code} after {timeout}s: {response.json()}"
            )
        await asyncio.sleep(0.05)


def assert_not_ready(response: httpx.Response, elapsed: float, down: str, up: str) -> str:
    """The shared error shape, naming `down` as failed and `up` as fine; returns down's check."""
    assert response.status_code == 503, response.text
    assert elapsed < PROBE_BOUND, f"/readyz took {elapsed:.2f}s to fail"
    body = response.json()
    assert set(body) == {"code", "message", "details", "request_id"}
    assert body["code"] == "not_ready"
    assert body["request_id"] == response.headers["x-request-id"]
    checks = body["details"]["checks"]
    assert set(checks) == {"postgres", "redis"}
    assert checks[up] == "ok"
    assert checks[down].startswith("error"), checks
    return str(checks[down])


def assert_ready(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready", "checks": {"postgres": "ok", "redis": "ok"}}


def server_processes(pid: int) -> list[int]:
    """`pid` and all its descendants (PostgreSQL backends each lead a process group of their
    own, so signalling the postmaster's group would miss them)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


@contextmanager
def frozen(server: EmbeddedPostgres | EmbeddedRedis) -> Iterator[None]:
    """SIGSTOP the server and its children: they keep their sockets open but never answer."""
    if not Path("/proc/self/stat").exists():
        pytest.skip("freezing a server's processes needs /proc")
    assert server.pid is not None
    pids = server_processes(server.pid)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        for pid in pids:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis(tmp_path / "redis", port=free_port()) as server:
        yield server


@pytest.fixture
def postgres_server(tmp_path: Path) -> Iterator[EmbeddedPostgres]:
    with EmbeddedPostgres(tmp_path / "postgres", port=free_port()) as server:
        ensure_database(server.url(), "readiness")
        yield server


@pytest.fixture
def ready_client(
    build_app: Callable[..., Any], app_client: Callable[..., Any]
) -> Callable[..., AbstractAsyncContextManager[httpx.AsyncClient]]:
    """`async with ready_client(redis_url=...) as client:` a client of an app on the given
    dependency URLs with the short readiness timeout, checked ready before the test goes on."""

    @asynccontextmanager
    async def open_client(**urls: str) -> AsyncIterator[httpx.AsyncClient]:
        app = build_app(readiness_timeout=READINESS_TIMEOUT, **urls)
        async with app_client(app) as client:
            assert_ready(await client.get("/readyz"))
            yield client

    return open_client


@pytest.mark.slow
async def test_readyz_follows_redis_going_away_and_coming_back(
    ready_client: Callable[..., Any], redis_server: EmbeddedRedis
) -> None:
    async with ready_client(redis_url=redis_server.url()) as client:
        redis_server.stop()
        for _ in range(2):  # the broken pooled connection, then a refused reconnect
            response, elapsed = await timed_get(client, "/readyz")
            assert_not_ready(response, elapsed, down="redis", up="postgres")
            assert (await client.get("/livez")).status_code == 200

        redis_server.start()  # same port
        await wait_until_ready(client)
        assert_ready(await client.get("/readyz"))
        assert (await client.get("/livez")).status_code == 200


@pytest.mark.slow
async def test_readyz_is_bounded_when_redis_hangs(
    ready_client: Callable[..., Any], redis_server: EmbeddedRedis
) -> None:
    async with ready_client(redis_url=redis_server.url()) as client:
        with frozen(redis_server):
            for _ in range(2):  # the pooled connection hangs, then so does a new one
                response, elapsed = await timed_get(client, "/readyz")
                check = assert_not_ready(response, elapsed, down="redis", up="postgres")
                assert check == f"error: no answer within {READINESS_TIMEOUT:g}s"
                assert READINESS_TIMEOUT * 0.9 <= elapsed < STRICT_BOUND
            assert (await client.get("/livez")).status_code == 200
        await wait_until_ready(client)


@pytest.mark.slow
async def test_readyz_follows_postgres_going_away_and_coming_back(
    ready_client: Callable[..., Any], postgres_server: EmbeddedPostgres
) -> None:
    async with ready_client(database_url=postgres_server.url("readiness")) as client:
        postgres_server.stop()
        for _ in range(2):  # the pooled connection is dead, then reconnecting is refused
            response, elapsed = await timed_get(client, "/readyz")
            assert_not_ready(response, elapsed, down="postgres", up="redis")
            assert (await client.get("/livez")).status_code == 200

        postgres_server.start()  # same port, same cluster
        await wait_until_ready(client)
        assert_ready(await client.get("/readyz"))
        assert (await client.get("/livez")).status_code == 200


@pytest.mark.slow
async def test_readyz_is_bounded_when_postgres_hangs(
    ready_client: Callable[..., Any], postgres_server: EmbeddedPostgres
) -> None:
    async with ready_client(database_url=postgres_server.url("readiness")) as client:
        with frozen(postgres_server):
            # The pooled connection hangs mid-query.
            response, first_elapsed = await timed_get(client, "/readyz")
            check = assert_not_ready(response, first_elapsed, down="postgres", up="redis")
            assert check == f"error: no answer within {READINESS_TIMEOUT:g}s"
            # A new connection hangs in its start-up handshake.
            response, elapsed = await timed_get(client, "/readyz")
            check = assert_not_ready(response, elapsed, down="postgres", up="redis")
            assert check == f"error: no answer within {READINESS_TIMEOUT:g}s"
            assert elapsed < STRICT_BOUND
            assert (await client.get("/livez")).status_code == 200
        await wait_until_ready(client)
    # Bounded even though the cancelled check's cleanup (closing the hung connection) is slow.
    assert first_elapsed < STRICT_BOUND


async def test_readyz_fails_fast_when_the_database_port_is_closed(
    build_app: Callable[..., Any], app_client: Callable[..., Any]
) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/nothing"
    app = build_app(database_url=url, readiness_timeout=READINESS_TIMEOUT)
    async with app_client(app) as client:  # a failed start-up check is not fatal
        assert (await client.get("/startupz")).status_code == 200
        response, elapsed = await timed_get(client, "/readyz")
        check = assert_not_ready(response, elapsed, down="postgres", up="redis")
        # Refused at once: not the timeout, and well inside it.
        assert "no answer" not in check
        assert elapsed < READINESS_TIMEOUT
        assert (await client.get("/livez")).status_code == 200


async def test_readyz_fails_fast_when_the_redis_port_is_closed(
    build_app: Callable[..., Any], app_client: Callable[..., Any]
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    app = build_app(redis_url=url, readiness_timeout=READINESS_TIMEOUT)
    async with app_client(app) as client:
        response, elapsed = await timed_get(client, "/readyz")
        assert_not_ready(response, elapsed, down="redis", up="postgres")
        assert (await client.get("/livez")).status_code == 200
