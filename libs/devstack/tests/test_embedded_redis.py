"""EmbeddedRedis: a real redis-server on TCP, empty at each start unless asked to persist."""

from __future__ import annotations

from pathlib import Path

import redis
from devstack_helpers import run_leaving_nothing_behind

from tripline_devstack import EmbeddedRedis, redis_answers


def test_serves_commands_over_tcp_and_stop_leaves_no_process_and_a_closed_port(
    data_dir: Path,
) -> None:
    server = EmbeddedRedis(data_dir / "redis")
    with run_leaving_nothing_behind(server, redis_answers):
        assert server.url(3) == f"redis://127.0.0.1:{server.port}/3"
        with redis.Redis.from_url(server.url(3)) as client:
            client.set("greeting", "hello")
            assert client.get("greeting") == b"hello"


def test_persistent_server_keeps_data_across_a_restart(data_dir: Path) -> None:
    with (
        EmbeddedRedis(data_dir, persistent=True) as first,
        redis.Redis.from_url(first.url()) as client,
    ):
        client.set("kept", "yes")

    with (
        EmbeddedRedis(data_dir, persistent=True) as second,
        redis.Redis.from_url(second.url()) as client,
    ):
        assert client.get("kept") == b"yes"


def test_default_server_starts_empty_every_time(data_dir: Path) -> None:
    with EmbeddedRedis(data_dir) as first, redis.Redis.from_url(first.url()) as client:
        client.set("forgotten", "yes")

    with EmbeddedRedis(data_dir) as second, redis.Redis.from_url(second.url()) as client:
        assert client.get("forgotten") is None
    assert not list((data_dir / "data").glob("*.rdb")), "no snapshot is written either"


def test_without_a_data_dir_it_works_in_a_throwaway_directory_deleted_on_stop() -> None:
    with EmbeddedRedis() as server:
        assert (server.data_dir / "data").is_dir()
        assert redis_answers(server.url())

    assert not server.data_dir.exists()
