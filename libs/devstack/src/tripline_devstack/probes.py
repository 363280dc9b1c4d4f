"""Answers "is it there?" for Postgres, Redis and TCP ports, with real connection attempts."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

T = TypeVar("T")


def postgres_answers(url: str, timeout: float = 2.0) -> bool:
    """True if a real connection to the database in `url` succeeds within `timeout` seconds.

    Accepts SQLAlchemy URLs (`postgresql+asyncpg://...`) as well as plain `postgresql://` ones.
    Safe to call from inside a running event loop (the attempt runs in a fresh loop of its own).
    """
    return postgres_problem(url, timeout) is None


def redis_answers(url: str, timeout: float = 2.0) -> bool:
    """True if Redis at `url` answers PING within `timeout` seconds."""
    return redis_problem(url, timeout) is None


def postgres_problem(
    url: str, timeout: float = 2.0, *, missing_database_ok: bool = False
) -> str | None:
    """Why a connection to `url` fails (a short message), or None when it succeeds.

    With `missing_database_ok`, a server that answers "database does not exist" counts as
    answering: the caller is about to create that database.
    """

    async def attempt() -> None:
        connection = await asyncpg.connect(asyncpg_dsn(url), timeout=timeout)
        await connection.close(timeout=timeout)

    try:
        run_in_fresh_loop(attempt)
    except asyncpg.InvalidCatalogNameError as error:
        return None if missing_database_ok else _describe(error)
    except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        return _describe(error)
    return None


def redis_problem(url: str, timeout: float = 2.0) -> str | None:
    """Why PING to Redis at `url` fails (a short message), or None when it answers."""
    client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        client.ping()
    except (OSError, redis.RedisError) as error:
        return _describe(error)
    finally:
        client.close()
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    """True if nothing accepts connections on 127.0.0.1:`port` and a server could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            return False
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # Servers set SO_REUSEADDR too, so a port in TIME_WAIT counts as free, as it is for them.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def asyncpg_dsn(url: str) -> str:
    """The DSN asyncpg understands for a SQLAlchemy or plain Postgres URL."""
    parts = urlsplit(url)
    if not parts.scheme.startswith(("postgresql", "postgres")):
        raise ValueError(f"not a PostgreSQL URL: {redact_url(url)}")
    return urlunsplit(parts._replace(scheme="postgresql"))


def with_database(url: str, database: str) -> str:
    """`url` pointing at another database on the same server."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def database_name(url: str) -> str | None:
    """The database (or Redis db number) named in the path of `url`, if any."""
    name = urlsplit(url).path.lstrip("/")
    return name or None


def redact_url(url: str) -> str:
    """`url` with its password replaced by `***`, safe to print."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port is not None else ""
    netloc = f"{parts.username or ''}:***@{host}{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def run_in_fresh_loop(make_coroutine: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a coroutine to completion in a new event loop, even if this thread already runs one.

    Lets synchronous helpers use asyncpg from plain scripts, pytest fixtures and async code alike.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack") as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def _describe(error: BaseException) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {message}" if message else type(error).__name__
