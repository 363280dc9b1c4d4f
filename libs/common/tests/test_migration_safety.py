"""Migrations that cannot stall live traffic: each revision's SQL linted by squawk, every run under
lock and statement timeouts (a held lock makes it fail cleanly, at the previous revision), and
indexes built concurrently on asyncpg with nothing invalid left behind."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import pytest
from alembic import op
from alembic.operations import Operations
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import Connection

from tripline_common.data import asyncpg_dsn
from tripline_common.migrations import runner
from tripline_common.migrations.safety import (
    LOCK_TIMEOUT,
    STATEMENT_TIMEOUT,
    create_index_concurrently,
    session_timeouts_sql,
    set_timeouts,
)

ROOT = Path(__file__).resolve().parents[3]
SQUAWK = Path(sys.executable).with_name("squawk")
REVISIONS = runner.revisions()


def squawk(sql: str, tmp_path: Path, name: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / f"{name}.sql"
    path.write_text(sql)
    return subprocess.run(
        [str(SQUAWK), "--config", str(ROOT / ".squawk.toml"), "--reporter", "gcc", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def exceptions_of(revision: str) -> dict[str, str]:
    script = runner._script_directory().get_revision(revision)
    assert script is not None
    return dict(getattr(script.module, "squawk_exceptions", {}))


def with_exceptions(sql: str, exceptions: dict[str, str]) -> str:
    ignores = "".join(f"-- squawk-ignore-file {rule}\n" for rule in exceptions)
    return ignores + sql


@pytest.mark.parametrize("revision", REVISIONS)
def test_each_revision_passes_squawk_with_its_own_exceptions_only(
    revision: str, tmp_path: Path
) -> None:
    sql = with_exceptions(runner.revision_sql(revision), exceptions_of(revision))
    result = squawk(sql, tmp_path, revision)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(
    "revision", [revision for revision in REVISIONS if exceptions_of(revision)]
)
def test_every_squawk_exception_says_why_and_is_needed(revision: str, tmp_path: Path) -> None:
    exceptions = exceptions_of(revision)
    for rule, reason in exceptions.items():
        assert len(reason.split()) >= 5, f"{revision}: say why {rule} is excepted"
        others = {other: why for other, why in exceptions.items() if other != rule}
        result = squawk(with_exceptions(runner.revision_sql(revision), others), tmp_path, rule)
        assert f"warning: {rule} " in result.stdout, f"{rule} is not needed"


def test_the_linter_refuses_what_it_is_there_to_refuse(tmp_path: Path) -> None:
    unsafe = "BEGIN;\nALTER TABLE alerts ADD COLUMN x TEXT NOT NULL;\nCOMMIT;\n"
    result = squawk(unsafe, tmp_path, "unsafe")
    assert result.returncode != 0
    assert "require-lock-timeout" in result.stdout
    assert "adding-required-field" in result.stdout


@pytest.mark.parametrize("revision", REVISIONS)
def test_every_revision_runs_under_the_runner_timeouts(revision: str) -> None:
    first_statements = runner.revision_sql(revision).split(";")[:2]
    assert [statement.strip() for statement in first_statements] == [
        f"SET lock_timeout = '{LOCK_TIMEOUT}'",
        f"SET statement_timeout = '{STATEMENT_TIMEOUT}'",
    ]


# --------------------------------------------------------------- a real lock held by live traffic


async def connect(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(asyncpg_dsn(url))


@pytest.fixture
def scratch_url(scratch_database: Callable[[], str]) -> str:
    return runner.database_url(scratch_database())


async def test_a_migration_blocked_by_a_held_lock_fails_the_hook_clearly_at_the_previous_revision(
    scratch_url: str,
) -> None:
    head = REVISIONS[-1]
    target = runner.required_revision()  # What `--expand` runs up to.
    previous = REVISIONS[REVISIONS.index(target) - 1]
    await asyncio.to_thread(runner.upgrade, scratch_url, previous)
    writer = await connect(scratch_url)
    try:
        # A long write transaction holds ROW EXCLUSIVE on every table (what an INSERT or an
        # UPDATE takes): the expand revisions' ALTER TABLE or CREATE TRIGGER needs a lock that
        # conflicts with it and must give up, not queue every query behind it.
        transaction = writer.transaction()
        await transaction.start()
        tables = ("alerts", "trips", "users", "devices", "jobs", "telemetry_batches")
        for table in (*tables, "telemetry_events"):
            await writer.execute(f"LOCK TABLE {table} IN ROW EXCLUSIVE MODE")
        # The hook Job's command, as a real process: it fails, clearly, in one line.
        hook = await asyncio.to_thread(
            subprocess.run,
            [str(Path(sys.executable).with_name("tripline-migrate")), "upgrade", "--expand"],
            env={**os.environ, "DATABASE_URL": scratch_url, "ENVIRONMENT": "test"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        await transaction.rollback()
    finally:
        await writer.close()
    assert hook.returncode == 1
    [message] = [line for line in hook.stderr.splitlines() if "error" in line]
    assert message.startswith("tripline-migrate: error:") and "lock timeout" in message
    assert await asyncio.to_thread(runner.current_revision, scratch_url) == previous
    await asyncio.to_thread(runner.upgrade, scratch_url, head)  # The retry, once the lock is gone.
    assert await asyncio.to_thread(runner.current_revision, scratch_url) == head


# --------------------------------------------------------------- concurrent index builds


@pytest.fixture
async def table(scratch_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(scratch_url)
    await connection.execute(
        "CREATE TABLE readings (id BIGINT PRIMARY KEY, sensor INT NOT NULL, value INT NOT NULL)"
    )
    await connection.execute(
        "INSERT INTO readings SELECT i, i % 10, i % 3 FROM generate_series(1, 2000) AS i"
    )
    yield connection
    await connection.close()


def run_op(url: str, fn: Callable[[], None]) -> None:
    """Run `fn` as a revision would (`op` bound to a migration context), on asyncpg."""

    def migrate(connection: Connection) -> None:
        context = MigrationContext.configure(connection)
        with Operations.context(context):
            fn()

    async def go() -> None:
        engine = runner.create_migration_engine(url)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(migrate)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(go())


async def indexes(connection: asyncpg.Connection) -> dict[str, bool]:
    rows = await connection.fetch(
        "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_class t ON t.oid = i.indrelid WHERE t.relname = 'readings'"
        " AND c.relname <> 'readings_pkey'"
    )
    return {row["relname"]: row["indisvalid"] for row in rows}


async def test_an_index_is_built_concurrently_on_asyncpg_while_the_table_takes_writes(
    scratch_url: str, table: asyncpg.Connection
) -> None:
    await asyncio.to_thread(
        run_op,
        scratch_url,
        lambda: create_index_concurrently("ix_readings_sensor", "readings", ["sensor"]),
    )
    assert await indexes(table) == {"ix_readings_sensor": True}
    await table.execute("INSERT INTO readings VALUES (5000, 1, 1)")  # No lock left behind.


async def test_a_failed_concurrent_build_leaves_no_invalid_index(
    scratch_url: str, table: asyncpg.Connection
) -> None:
    def unique_on_duplicates() -> None:
        create_index_concurrently("uq_readings_value", "readings", ["value"], unique=True)

    with pytest.raises(Exception, match="could not create unique index"):
        await asyncio.to_thread(run_op, scratch_url, unique_on_duplicates)
    assert await indexes(table) == {}


async def test_a_rerun_repairs_the_invalid_index_a_dead_build_left(
    scratch_url: str, table: asyncpg.Connection
) -> None:
    # What a build killed half-way leaves: PostgreSQL's INVALID index of that name.
    with contextlib.suppress(asyncpg.UniqueViolationError):
        await table.execute(
            "CREATE UNIQUE INDEX CONCURRENTLY ix_readings_value ON readings (value)"
        )
    assert await indexes(table) == {"ix_readings_value": False}
    await asyncio.to_thread(
        run_op,
        scratch_url,
        lambda: create_index_concurrently("ix_readings_value", "readings", ["value"]),
    )
    assert await indexes(table) == {"ix_readings_value": True}


# --------------------------------------------------------------- a revision's own timeouts


def test_set_timeouts_overrides_the_runners_timeouts_for_the_revisions_transaction_only(
    scratch_url: str,
) -> None:
    seen: dict[str, object] = {}

    def revision() -> None:
        connection = op.get_bind()
        connection.exec_driver_sql("BEGIN")
        set_timeouts(lock="1s", statement="0")
        seen["inside"] = connection.exec_driver_sql("SHOW statement_timeout").scalar_one()
        seen["lock"] = connection.exec_driver_sql("SHOW lock_timeout").scalar_one()
        connection.exec_driver_sql("COMMIT")
        seen["after"] = connection.exec_driver_sql(
            "SELECT current_setting('statement_timeout')::interval"
            f" = '{STATEMENT_TIMEOUT}'::interval"
        ).scalar_one()

    def with_runner_timeouts() -> None:
        for statement in session_timeouts_sql():
            op.get_bind().exec_driver_sql(statement)
        revision()

    run_op(scratch_url, with_runner_timeouts)

    assert (seen["inside"], seen["lock"]) == ("0", "1s")
    assert seen["after"] is True  # Back to the runner's once the transaction ended.
