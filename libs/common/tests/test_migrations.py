"""Migrations: the schema they build, the `tripline-migrate` CLI, and the constraints they enforce.

Every test gets its own scratch database on the test server, created and dropped around it.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import make_url
from sqlalchemy.engine import URL

from tripline_common.data.models import metadata
from tripline_common.migrations import runner

# --------------------------------------------------------------------------- helpers & fixtures


async def _connect(url: URL | str, database: str | None = None) -> asyncpg.Connection:
    parsed = make_url(url)
    return await asyncpg.connect(
        host=parsed.host or "127.0.0.1",
        port=parsed.port or 5432,
        user=parsed.username,
        password=parsed.password,
        database=database or parsed.database,
    )


@pytest.fixture
async def scratch_db_url(pg_server_url: str) -> AsyncIterator[str]:
    """URL of a new, empty database, dropped (even if still in use) after the test."""
    server = make_url(pg_server_url)
    name = f"tripline_test_{uuid.uuid4().hex[:12]}"
    admin = await _connect(server, database="postgres")
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield server.set(database=name).render_as_string(hide_password=False)
    admin = await _connect(server, database="postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
async def migrated_db_url(scratch_db_url: str) -> str:
    """A scratch database upgraded to head (the way async code should call the runner)."""
    await asyncio.to_thread(runner.upgrade, scratch_db_url)
    return scratch_db_url


@pytest.fixture
async def db(migrated_db_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A raw connection to the migrated database: constraints are judged by Postgres alone."""
    connection = await _connect(migrated_db_url)
    yield connection
    await connection.close()


async def _tables(url: str) -> set[str]:
    connection = await _connect(url)
    try:
        rows = await connection.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    finally:
        await connection.close()
    # The partitions of a partitioned table are the worker's, not the models' (runner.is_partition).
    return {row["tablename"] for row in rows if not runner.is_partition(row["tablename"])}


async def _constraint_and_index_names(url: str) -> set[str]:
    connection = await _connect(url)
    try:
        rows = await connection.fetch(
            """
            SELECT c.conname AS name, c.conrelid::regclass::text AS table_name
            FROM pg_constraint c
            JOIN pg_namespace n ON n.oid = c.connamespace
            WHERE n.nspname = 'public' AND c.conrelid <> 'public.alembic_version'::regclass
            UNION
            SELECT indexname, tablename FROM pg_indexes
            WHERE schemaname = 'public' AND tablename <> 'alembic_version'
            """
        )
    finally:
        await connection.close()
    return {row["name"] for row in rows if not runner.is_partition(row["table_name"])}


def _model_constraint_and_index_names() -> set[str]:
    names: set[str] = set()
    for table in metadata.tables.values():
        names.update(str(constraint.name) for constraint in table.constraints)
        names.update(str(index.name) for index in table.indexes)
    return names


async def _run_cli(*args: str, database_url: str, cwd: Path) -> tuple[int, str, str]:
    """Run `tripline-migrate` as a real process with DATABASE_URL set; (status, stdout, stderr)."""
    script = Path(sys.executable).with_name("tripline-migrate")
    command = (
        [str(script)]
        if script.exists()
        else [sys.executable, "-m", "tripline_common.migrations.cli"]
    )
    env = {**os.environ, "DATABASE_URL": database_url, "ENVIRONMENT": "test"}
    process = await asyncio.create_subprocess_exec(
        *command,
        *args,
        env=env,
        cwd=cwd,  # no stray .env file is read
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, stdout.decode(), stderr.decode()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --------------------------------------------------------------------------- schema


async def test_upgrade_creates_every_table_with_conventionally_named_constraints(
    scratch_db_url: str,
) -> None:
    assert runner.current_revision(scratch_db_url) is None

    # Called straight from a running event loop: the runner moves Alembic to a helper thread.
    runner.upgrade(scratch_db_url)

    assert runner.current_revision(scratch_db_url) == runner.head_revision()
    assert await _tables(scratch_db_url) == set(metadata.tables) | {"alembic_version"}
    names = await _constraint_and_index_names(scratch_db_url)
    # Alembic's `check` does not compare CHECK constraints; comparing names covers them too.
    declared = {name for name in names if not runner.is_optional_index(name)}
    assert declared == _model_constraint_and_index_names()
    assert {
        "pk_users",
        "uq_users_email_lower",
        "fk_auth_sessions_user_id_users",
        "uq_devices_api_key_hash",
        "ck_trips_status",
        "fk_trips_device_id_devices",
        "uq_trips_one_active_per_device",
        "uq_waypoints_trip_id_seq",
        "uq_telemetry_batches_device_id_client_batch_id",
        "ix_telemetry_batches_status_received_at",
        "ix_telemetry_events_device_id_recorded_at",
        "uq_alerts_dedupe_key",
        "ck_jobs_progress_range",
        "uq_webhook_deliveries_endpoint_id_alert_id",
    } <= names
    assert all(name.startswith(("pk_", "fk_", "uq_", "ck_", "ix_")) for name in names)


async def test_models_match_the_migrations(migrated_db_url: str) -> None:
    await asyncio.to_thread(runner.check, migrated_db_url)  # raises AutogenerateDiffsDetected


async def test_downgrade_to_base_leaves_no_table(migrated_db_url: str) -> None:
    await asyncio.to_thread(runner.downgrade, migrated_db_url, "base")

    assert await _tables(migrated_db_url) <= {"alembic_version"}
    assert runner.current_revision(migrated_db_url) is None


async def test_upgrade_after_downgrade_rebuilds_the_schema(migrated_db_url: str) -> None:
    await asyncio.to_thread(runner.downgrade, migrated_db_url, "base")
    await asyncio.to_thread(runner.upgrade, migrated_db_url)

    assert runner.current_revision(migrated_db_url) == runner.head_revision()
    assert await _tables(migrated_db_url) == set(metadata.tables) | {"alembic_version"}


def test_new_revision_ids_are_numbered_slugs_that_fit_alembic_version() -> None:
    existing = ["0001_core_tables", "0007_add_trip_tags", "legacy"]

    assert runner.next_revision_id("Add device firmware", existing) == "0008_add_device_firmware"
    long_id = runner.next_revision_id("a very long message " * 5, existing)
    assert long_id.startswith("0008_")
    assert len(long_id) <= runner.MAX_REVISION_ID_LENGTH


# --------------------------------------------------------------------------- CLI


@pytest.mark.slow
async def test_cli_upgrade_then_current_prints_the_head(
    scratch_db_url: str, tmp_path: Path
) -> None:
    status, _, stderr = await _run_cli("upgrade", database_url=scratch_db_url, cwd=tmp_path)
    assert status == 0, stderr

    status, stdout, stderr = await _run_cli("current", database_url=scratch_db_url, cwd=tmp_path)
    assert status == 0, stderr
    assert stdout.strip() == f"{runner.head_revision()} (head)"


@pytest.mark.slow
async def test_cli_explains_an_unreachable_database_in_one_line(tmp_path: Path) -> None:
    url = f"postgresql+asyncpg://postgres@127.0.0.1:{_closed_port()}/tripline"

    status, _, stderr = await _run_cli("upgrade", database_url=url, cwd=tmp_path)

    assert status != 0
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tripline-migrate")]
    assert len(lines) == 1
    assert "cannot connect to the database" in lines[0]
    assert str(make_url(url).port) in lines[0]


@pytest.mark.slow
async def test_cli_wait_returns_at_once_when_the_database_is_at_head(
    migrated_db_url: str, tmp_path: Path
) -> None:
    status, stdout, stderr = await _run_cli(
        "wait", "--timeout", "10", database_url=migrated_db_url, cwd=tmp_path
    )

    assert status == 0, stderr
    assert runner.head_revision() in stdout


@pytest.mark.slow
async def test_cli_wait_times_out_on_an_unmigrated_database(
    scratch_db_url: str, tmp_path: Path
) -> None:
    status, _, stderr = await _run_cli(
        "wait", "--timeout", "1", "--interval", "0.2", database_url=scratch_db_url, cwd=tmp_path
    )

    assert status != 0
    assert "timed out" in stderr
    assert "Traceback" not in stderr


# --------------------------------------------------------------------------- constraints


async def _user(db: asyncpg.Connection, email: str | None = None) -> uuid.UUID:
    email = email or f"{uuid.uuid4().hex[:8]}@example.com"
    user_id: uuid.UUID = await db.fetchval(
        "INSERT INTO users (email, password_hash, display_name) VALUES ($1, 'x', 'Test') "
        "RETURNING id",
        email,
    )
    return user_id


async def _device(db: asyncpg.Connection, owner_id: uuid.UUID) -> uuid.UUID:
    device_id: uuid.UUID = await db.fetchval(
        "INSERT INTO devices (owner_id, name, api_key_prefix, api_key_hash) "
        "VALUES ($1, 'car', 'tl_abc', $2) RETURNING id",
        owner_id,
        uuid.uuid4().hex * 2,
    )
    return device_id


async def _trip(
    db: asyncpg.Connection, owner_id: uuid.UUID, device_id: uuid.UUID, status: str
) -> uuid.UUID:
    trip_id: uuid.UUID = await db.fetchval(
        """
        INSERT INTO trips (owner_id, device_id, name, status, origin_lat, origin_lon,
                           destination_lat, destination_lon, planned_start, planned_arrival)
        VALUES ($1, $2, 'to work', $3, 48.85, 2.35, 48.86, 2.29, now(), now() + interval '1 hour')
        RETURNING id
        """,
        owner_id,
        device_id,
        status,
    )
    return trip_id


async def test_a_retried_batch_with_the_same_client_batch_id_is_rejected(
    db: asyncpg.Connection,
) -> None:
    device_id = await _device(db, await _user(db))
    insert = "INSERT INTO telemetry_batches (device_id, client_batch_id) VALUES ($1, $2)"
    await db.execute(insert, device_id, "upload-1")
    await db.execute(insert, device_id, None)
    await db.execute(insert, device_id, None)  # batches without a client id never collide

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await db.execute(insert, device_id, "upload-1")

    assert caught.value.constraint_name == "uq_telemetry_batches_device_id_client_batch_id"


async def test_a_device_cannot_have_two_active_trips(db: asyncpg.Connection) -> None:
    owner_id = await _user(db)
    device_id = await _device(db, owner_id)
    await _trip(db, owner_id, device_id, "active")
    await _trip(db, owner_id, device_id, "planned")
    await _trip(db, owner_id, device_id, "completed")

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await _trip(db, owner_id, device_id, "active")

    assert caught.value.constraint_name == "uq_trips_one_active_per_device"


async def test_an_unknown_status_fails_the_check_constraint(db: asyncpg.Connection) -> None:
    owner_id = await _user(db)
    trip_id = await _trip(db, owner_id, await _device(db, owner_id), "planned")

    with pytest.raises(asyncpg.CheckViolationError) as caught:
        await db.execute("UPDATE trips SET status = 'paused' WHERE id = $1", trip_id)

    assert caught.value.constraint_name == "ck_trips_status"


async def test_email_addresses_are_unique_ignoring_case(db: asyncpg.Connection) -> None:
    await _user(db, "Ada@Example.com")

    with pytest.raises(asyncpg.UniqueViolationError) as caught:
        await _user(db, "ada@example.COM")

    assert caught.value.constraint_name == "uq_users_email_lower"


async def test_raising_the_same_alert_twice_stores_it_once(db: asyncpg.Connection) -> None:
    owner_id = await _user(db)
    trip_id = await _trip(db, owner_id, await _device(db, owner_id), "active")
    insert = """
        INSERT INTO alerts (owner_id, trip_id, rule, message, dedupe_key)
        VALUES ($1, $2, 'speeding', 'too fast', $3)
        ON CONFLICT (dedupe_key) DO NOTHING
    """
    for _ in range(2):  # what a worker does when ARQ runs the job again
        await db.execute(insert, owner_id, trip_id, f"speeding:{trip_id}:batch-1")

    assert await db.fetchval("SELECT count(*) FROM alerts WHERE trip_id = $1", trip_id) == 1


async def test_accounts_that_predate_verification_are_marked_verified(
    scratch_db_url: str,
) -> None:
    """0006 adds `users.email_verified_at`: nobody who could log in before it is locked out,
    while accounts created after it start unverified."""
    await asyncio.to_thread(runner.upgrade, scratch_db_url, "0004_key_rotation_overlap")
    conn = await _connect(scratch_db_url)
    try:
        old_id = await _user(conn, "before@example.com")
        await asyncio.to_thread(runner.upgrade, scratch_db_url, "0006_account_tokens")
        verified, created = await conn.fetchrow(
            "SELECT email_verified_at, created_at FROM users WHERE id = $1", old_id
        )
        assert verified == created
        new_id = await _user(conn, "after@example.com")
        assert (
            await conn.fetchval("SELECT email_verified_at FROM users WHERE id = $1", new_id) is None
        )
    finally:
        await conn.close()


def test_the_database_url_is_read_under_production_rules_without_a_secret_key(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The migrations Job and the wait-for-schema step get DATABASE_URL only, in an image whose
    default ENVIRONMENT is prod: they must not need the apps' SECRET_KEY."""
    monkeypatch.chdir(tmp_path)  # no .env
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("DATABASE_URL", "postgresql://tripline@db.internal:5432/tripline")
    monkeypatch.delenv("SECRET_KEY", raising=False)
    assert runner.database_url() == "postgresql+asyncpg://tripline@db.internal:5432/tripline"
