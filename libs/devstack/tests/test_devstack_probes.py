"""postgres_answers, redis_answers and the port helpers make real connection attempts."""

from __future__ import annotations

import socket
import time

from tripline_devstack import (
    EmbeddedPostgres,
    EmbeddedRedis,
    free_port,
    port_is_free,
    postgres_answers,
    redact_url,
    redis_answers,
)


def test_postgres_answers_for_a_live_server_in_both_url_spellings(
    postgres: EmbeddedPostgres,
) -> None:
    assert postgres_answers(postgres.url())
    assert postgres_answers(postgres.url().replace("+asyncpg", ""))


def test_postgres_does_not_answer_on_a_closed_port_and_says_so_quickly(closed_port: int) -> None:
    started = time.monotonic()

    assert not postgres_answers(f"postgresql+asyncpg://postgres@127.0.0.1:{closed_port}/x")

    assert time.monotonic() - started < 2


def test_postgres_does_not_answer_for_a_missing_database(postgres: EmbeddedPostgres) -> None:
    assert not postgres_answers(postgres.url("no_such_database"))


async def test_postgres_answers_works_inside_a_running_event_loop(
    postgres: EmbeddedPostgres,
) -> None:
    assert postgres_answers(postgres.url())


def test_redis_answers_for_a_live_server_and_not_for_a_closed_port(
    redis_server: EmbeddedRedis, closed_port: int
) -> None:
    assert redis_answers(redis_server.url())
    assert not redis_answers(f"redis://127.0.0.1:{closed_port}/0", timeout=1)


def test_port_is_free_until_something_listens() -> None:
    port = free_port()
    assert port_is_free(port)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port))
        listener.listen()
        assert not port_is_free(port)


def test_redact_url_hides_only_the_password() -> None:
    assert (
        redact_url("postgresql+asyncpg://app:s3cret@db.internal:5432/app")
        == "postgresql+asyncpg://app:***@db.internal:5432/app"
    )
    assert redact_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
