"""Finds the Postgres and Redis for a dev session or a test run; starts embedded ones if needed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tripline_devstack.embedded_postgres import EmbeddedPostgres
from tripline_devstack.embedded_redis import EmbeddedRedis
from tripline_devstack.probes import (
    database_name,
    free_port,
    port_is_free,
    postgres_problem,
    redact_url,
    redis_problem,
)
from tripline_devstack.stoppable import Stoppable

DEFAULT_POSTGRES_PORT = 5432
DEFAULT_REDIS_PORT = 6379
PROBE_TIMEOUT = 2.0


@dataclass
class Stack(Stoppable):
    """The Postgres and Redis in use, and the embedded servers started for them (None if not)."""

    postgres_url: str
    redis_url: str
    postgres: EmbeddedPostgres | None = None
    redis: EmbeddedRedis | None = None

    def stop(self) -> None:
        """Stop the embedded servers this stack started; configured ones are left alone."""
        try:
            if self.redis is not None:
                self.redis.stop()
        finally:
            if self.postgres is not None:
                self.postgres.stop()


def ensure_stack(
    database_url: str | None,
    redis_url: str | None,
    data_dir: Path,
    log: Callable[[str], None] = print,
) -> Stack:
    """Use the configured Postgres and Redis if they answer; otherwise start embedded ones.

    Embedded servers keep their data under `data_dir/postgres` and `data_dir/redis` and listen
    on the default port (5432 / 6379) when it is free, else on a free port. The returned
    `postgres_url` names the same database as `database_url` (`postgres` if unset); that
    database may not exist yet (see `ensure_database`). Each choice, and why, goes to `log`.
    Call `Stack.stop()` (or use the stack as a context manager) to stop what was started.
    """
    postgres_url, postgres = _find_or_start_postgres(database_url, data_dir / "postgres", log)
    try:
        found_redis_url, redis = _find_or_start_redis(redis_url, data_dir / "redis", log)
    except BaseException:
        if postgres is not None:
            postgres.stop()
        raise
    return Stack(postgres_url, found_redis_url, postgres, redis)


def _find_or_start_postgres(
    url: str | None, data_dir: Path, log: Callable[[str], None]
) -> tuple[str, EmbeddedPostgres | None]:
    if url:
        # A server that answers "database does not exist" is a server we can use: the caller
        # creates its database next.
        problem = postgres_problem(url, PROBE_TIMEOUT, missing_database_ok=True)
        if problem is None:
            log(f"postgres: using {redact_url(url)} (it answers)")
            return url, None
        log(f"postgres: {redact_url(url)} does not answer ({problem}); starting an embedded one")
    else:
        log("postgres: no DATABASE_URL configured; starting an embedded one")
    server = EmbeddedPostgres(data_dir, port=_port_for(DEFAULT_POSTGRES_PORT, "postgres", log))
    server.start()
    database = (database_name(url) if url else None) or "postgres"
    log(f"postgres: embedded server at {server.url(database)} (data in {data_dir})")
    return server.url(database), server


def _find_or_start_redis(
    url: str | None, data_dir: Path, log: Callable[[str], None]
) -> tuple[str, EmbeddedRedis | None]:
    if url:
        problem = redis_problem(url, PROBE_TIMEOUT)
        if problem is None:
            log(f"redis: using {redact_url(url)} (it answers)")
            return url, None
        log(f"redis: {redact_url(url)} does not answer ({problem}); starting an embedded one")
    else:
        log("redis: no REDIS_URL configured; starting an embedded one")
    server = EmbeddedRedis(data_dir, port=_port_for(DEFAULT_REDIS_PORT, "redis", log))
    server.start()
    db = database_name(url) if url else None
    embedded_url = server.url(int(db) if db and db.isdigit() else 0)
    log(f"redis: embedded server at {embedded_url} (nothing kept across restarts)")
    return embedded_url, server


def _port_for(default: int, name: str, log: Callable[[str], None]) -> int:
    if port_is_free(default):
        return default
    port = free_port()
    log(f"{name}: port {default} is taken by something else; the embedded server uses {port}")
    return port
