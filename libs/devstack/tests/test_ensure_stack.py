"""ensure_stack: configured servers when they answer, embedded ones otherwise, and says which."""

from __future__ import annotations

from pathlib import Path

from tripline_devstack import (
    EmbeddedPostgres,
    EmbeddedRedis,
    ensure_database,
    ensure_stack,
    postgres_answers,
    redis_answers,
)


def test_uses_the_configured_servers_when_they_answer(
    postgres: EmbeddedPostgres, redis_server: EmbeddedRedis, data_dir: Path
) -> None:
    # The database need not exist yet: the caller creates it once it has a server.
    database_url = postgres.url("not_created_yet")
    log: list[str] = []

    stack = ensure_stack(database_url, redis_server.url(2), data_dir, log=log.append)

    assert (stack.postgres_url, stack.redis_url) == (database_url, redis_server.url(2))
    assert stack.postgres is None
    assert stack.redis is None
    assert any("using" in line and "it answers" in line for line in log)
    assert list(data_dir.iterdir()) == [], "nothing embedded was started"
    stack.stop()
    assert postgres_answers(postgres.url()), "stopping the stack leaves configured servers alone"


def test_starts_embedded_servers_when_the_configured_ones_do_not_answer(
    data_dir: Path, closed_port: int
) -> None:
    log: list[str] = []

    with ensure_stack(
        f"postgresql+asyncpg://app:secret@127.0.0.1:{closed_port}/app",
        f"redis://127.0.0.1:{closed_port}/3",
        data_dir,
        log=log.append,
    ) as stack:
        assert stack.postgres is not None
        assert stack.redis is not None
        assert stack.postgres.data_dir == data_dir / "postgres"
        assert stack.redis.data_dir == data_dir / "redis"
        assert stack.postgres_url == stack.postgres.url("app"), "same database name, new server"
        assert stack.redis_url == stack.redis.url(3), "same db number, new server"
        ensure_database(stack.postgres_url, "app")
        assert postgres_answers(stack.postgres_url)
        assert redis_answers(stack.redis_url)

    assert not postgres_answers(stack.postgres_url, timeout=1)
    assert not redis_answers(stack.redis_url, timeout=1)
    assert any("does not answer" in line and "ConnectionRefused" in line for line in log)
    assert not any("secret" in line for line in log), "passwords never reach the log"


def test_starts_embedded_servers_when_nothing_is_configured(data_dir: Path) -> None:
    log: list[str] = []

    with ensure_stack(None, None, data_dir, log=log.append) as stack:
        assert stack.postgres is not None
        assert stack.redis is not None
        assert stack.postgres_url == stack.postgres.url("postgres")
        assert postgres_answers(stack.postgres_url)
        assert redis_answers(stack.redis_url)

    assert any("no DATABASE_URL configured" in line for line in log)
    assert any("no REDIS_URL configured" in line for line in log)
