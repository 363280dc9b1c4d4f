"""EmbeddedPostgres: a real server on TCP; starts fast, keeps its data, leaves nothing behind."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
from devstack_helpers import run_leaving_nothing_behind

from tripline_devstack import EmbeddedPostgres, EmbeddedServerError, port_is_free, postgres_answers


def plain_url(server: EmbeddedPostgres, database: str = "postgres") -> str:
    return server.url(database).replace("+asyncpg", "")


async def test_serves_sql_over_tcp_and_stop_leaves_no_process_and_a_closed_port(
    data_dir: Path,
) -> None:
    server = EmbeddedPostgres(data_dir / "pg")
    with run_leaving_nothing_behind(server, postgres_answers):
        assert server.url().startswith(f"postgresql+asyncpg://postgres@127.0.0.1:{server.port}/")
        connection = await asyncpg.connect(plain_url(server))
        try:
            assert await connection.fetchval("SELECT 40 + 2") == 42
            assert await connection.fetchval("SHOW listen_addresses") == "127.0.0.1"
        finally:
            await connection.close()


async def test_restart_on_the_same_data_dir_keeps_data_without_a_new_initdb(
    data_dir: Path,
) -> None:
    with EmbeddedPostgres(data_dir) as first:
        connection = await asyncpg.connect(plain_url(first))
        await connection.execute("CREATE TABLE kept (note text); INSERT INTO kept VALUES ('hi')")
        await connection.close()
    cluster_id = (data_dir / "pgdata" / "PG_VERSION").stat().st_ino

    started = time.monotonic()
    with EmbeddedPostgres(data_dir) as second:
        restart_seconds = time.monotonic() - started
        connection = await asyncpg.connect(plain_url(second))
        assert await connection.fetchval("SELECT note FROM kept") == "hi"
        await connection.close()

    assert (data_dir / "pgdata" / "PG_VERSION").stat().st_ino == cluster_id
    assert restart_seconds < 5


def test_start_removes_a_stale_postmaster_pid_naming_a_live_unrelated_process(
    data_dir: Path,
) -> None:
    with EmbeddedPostgres(data_dir):
        pass
    # After a reboot or in a new container, the pid in a stale postmaster.pid often belongs to
    # some other live process; PostgreSQL alone would refuse to start ("lock file exists").
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file = data_dir / "pgdata" / "postmaster.pid"
        pid_file.write_text(f"{bystander.pid}\n{data_dir / 'pgdata'}\n0\n5432\n\n\n")

        with EmbeddedPostgres(data_dir) as server:
            assert postgres_answers(server.url())

        assert bystander.poll() is None, "an unrelated process must never be touched"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_server_that_cannot_start_raises_with_its_log_and_leaves_nothing_running(
    data_dir: Path,
) -> None:
    with EmbeddedPostgres(data_dir):
        pass
    with (data_dir / "pgdata" / "postgresql.conf").open("a") as config:
        config.write("\nthis line is not valid configuration\n")
    server = EmbeddedPostgres(data_dir)

    with pytest.raises(EmbeddedServerError, match="syntax error") as failure:
        server.start()

    assert "exited with code" in str(failure.value)
    assert not server.running
    assert port_is_free(server.port)


def test_a_second_owner_of_a_running_data_dir_is_refused(postgres: EmbeddedPostgres) -> None:
    intruder = EmbeddedPostgres(postgres.data_dir)

    with pytest.raises(EmbeddedServerError, match="in use by another process"):
        intruder.start()

    assert postgres_answers(postgres.url()), "the running server must be left alone"


def test_port_already_in_use_is_reported_before_anything_starts(
    data_dir: Path, postgres: EmbeddedPostgres
) -> None:
    server = EmbeddedPostgres(data_dir, port=postgres.port)

    with pytest.raises(EmbeddedServerError, match=f"port {postgres.port} is already in use"):
        server.start()

    assert server.pid is None
    assert postgres_answers(postgres.url()), "the server holding the port is left alone"


def test_without_a_data_dir_it_works_in_a_throwaway_directory_deleted_on_stop() -> None:
    with EmbeddedPostgres() as server:
        assert (server.data_dir / "pgdata" / "PG_VERSION").exists()
        assert postgres_answers(server.url())

    assert not server.data_dir.exists()
