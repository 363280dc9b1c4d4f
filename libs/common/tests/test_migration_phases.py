"""Expand and contract: every revision declares its phase, a contract step cannot hide in an
expand revision, the pre-upgrade hook runs expand revisions only, and the pods wait for the
revision their code needs, not for the contract steps that follow it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from tripline_common.migrations import cli, runner
from tripline_common.migrations.phases import contract_reasons

REVISIONS = runner.revisions()


@pytest.mark.parametrize("revision", REVISIONS)
def test_every_revision_declares_its_phase_and_an_expand_one_does_no_contract_step(
    revision: str,
) -> None:
    phase = runner.declared_phase(revision)
    reasons = contract_reasons(runner.revision_sql(revision))
    if phase == "expand":
        assert reasons == [], f"{revision} declares expand but: {reasons}"


@pytest.mark.parametrize(
    ("sql", "reason"),
    [
        ("ALTER TABLE trips DROP COLUMN eta;", "drops a column"),
        ("DROP TABLE waypoints;", "drops a table"),
        ("ALTER TABLE trips RENAME COLUMN eta TO arrival_eta;", "renames"),
        ("ALTER TABLE trips RENAME TO journeys;", "renames"),
        ("ALTER TABLE trips ALTER COLUMN name TYPE TEXT;", "changes a type"),
        ("ALTER TABLE trips ALTER COLUMN eta SET NOT NULL;", "sets NOT NULL"),
        ("ALTER TABLE trips ADD COLUMN code TEXT NOT NULL;", "adds a NOT NULL column"),
        ("ALTER TABLE trips ADD CONSTRAINT ck_x CHECK (distance_m < 1e7);", "constrains existing"),
        (
            "ALTER TABLE trips ADD CONSTRAINT fk_x FOREIGN KEY(device_id) REFERENCES devices (id);",
            "constrains existing",
        ),
        ("CREATE UNIQUE INDEX uq_trips_name ON trips (name);", "makes existing columns unique"),
        ("ALTER TABLE trips VALIDATE CONSTRAINT ck_x;", "validates a constraint"),
        ("DROP INDEX ix_trips_device_id;", "drops an index"),
    ],
)
def test_each_kind_of_contract_step_is_named(sql: str, reason: str) -> None:
    [found] = contract_reasons(sql)
    assert found.startswith(reason)


@pytest.mark.parametrize(
    "sql",
    [
        "CREATE TABLE notes (id UUID PRIMARY KEY, body TEXT NOT NULL);"
        " CREATE UNIQUE INDEX uq_notes_body ON notes (body);"
        " ALTER TABLE notes ADD CONSTRAINT ck_notes_body CHECK (body <> '');",
        "ALTER TABLE trips ADD COLUMN note TEXT;",
        "ALTER TABLE trips ADD COLUMN stops INTEGER DEFAULT 0 NOT NULL;",
        "CREATE INDEX ix_trips_status ON trips (status);",
        "ALTER TABLE trips ADD COLUMN a TEXT; ALTER TABLE trips ADD COLUMN b TEXT;"
        " ALTER TABLE trips ADD CONSTRAINT ck_pair CHECK ((a IS NULL) = (b IS NULL));",
        "ALTER TABLE trips ADD COLUMN owner2 UUID;"
        " ALTER TABLE trips ADD CONSTRAINT fk_o FOREIGN KEY(owner2) REFERENCES users (id);",
        "UPDATE trips SET eta = planned_arrival WHERE eta IS NULL;",
        "COMMENT ON COLUMN trips.eta IS 'We may rename or drop column this later';",
        "CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
        " ALTER TABLE x DROP COLUMN y; RETURN NEW; END $$;",
    ],
)
def test_what_only_adds_is_an_expand_step(sql: str) -> None:
    assert contract_reasons(sql) == []


# ------------------------------------------------------- a release with a contract revision


EXPAND = """
revision = "0901_trip_note"
down_revision = "{down}"
branch_labels = None
depends_on = None
phase = "{phase}"

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    op.add_column("trips", sa.Column("note", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("trips", "note")
"""
CONTRACT = """
revision = "0902_drop_trip_eta"
down_revision = "{down}"
branch_labels = None
depends_on = None
phase = "contract"

import sqlalchemy as sa
from alembic import op


def upgrade() -> None:
    op.drop_column("trips", "eta")


def downgrade() -> None:
    op.add_column("trips", sa.Column("eta", sa.DateTime(timezone=True), nullable=True))
"""


@pytest.fixture
def release(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., None]:
    """The shipped migrations plus revisions of a next release, as the runner's directory."""
    directory = tmp_path / "migrations"
    shutil.copytree(runner.MIGRATIONS_DIR, directory, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(runner, "MIGRATIONS_DIR", directory)

    def add(name: str, text: str) -> None:
        (directory / "versions" / f"2099_01_01_{name}.py").write_text(text)

    return add


@pytest.fixture
def scratch_url(scratch_database: Callable[[], str]) -> str:
    return runner.database_url(scratch_database())


async def test_the_hook_runs_expand_revisions_and_the_pods_wait_for_those_only(
    release: Callable[..., None], scratch_url: str
) -> None:
    shipped = REVISIONS[-1]
    await asyncio.to_thread(runner.upgrade, scratch_url, shipped)  # The previous release.
    release("0901", EXPAND.format(down=shipped, phase="expand"))
    release("0902", CONTRACT.format(down="0901_trip_note"))
    assert runner.required_revision() == "0901_trip_note"

    assert await asyncio.to_thread(cli.main, ["--url", scratch_url, "upgrade", "--expand"]) == 0
    assert await asyncio.to_thread(runner.current_revision, scratch_url) == "0901_trip_note"
    # The new pods start now: the contract step has not run and they do not wait for it.
    waited = await asyncio.to_thread(runner.wait_for_head, scratch_url, timeout=5)
    assert waited == "0901_trip_note"

    await asyncio.to_thread(runner.upgrade, scratch_url, "head")  # The post-upgrade hook.
    assert await asyncio.to_thread(runner.current_revision, scratch_url) == "0902_drop_trip_eta"
    assert await asyncio.to_thread(runner.wait_for_head, scratch_url, timeout=5) == (
        "0902_drop_trip_eta"
    )
    # Run again (a retried hook): nothing left to do.
    assert await asyncio.to_thread(runner.expand_target, scratch_url) == "0902_drop_trip_eta"


async def test_the_hook_refuses_a_contract_step_before_the_revision_the_code_needs(
    release: Callable[..., None], scratch_url: str
) -> None:
    shipped = REVISIONS[-1]
    await asyncio.to_thread(runner.upgrade, scratch_url, shipped)
    release("0901", CONTRACT.format(down=shipped).replace("0902_drop_trip_eta", "0901_drop_eta"))
    release(
        "0902",
        EXPAND.format(down="0901_drop_eta", phase="expand").replace(
            '"0901_trip_note"', '"0902_trip_note"'
        ),
    )
    with pytest.raises(runner.MigrationError, match="contract revision 0901_drop_eta"):
        await asyncio.to_thread(runner.expand_target, scratch_url)
    assert await asyncio.to_thread(cli.main, ["--url", scratch_url, "upgrade", "--expand"]) == 1
    assert await asyncio.to_thread(runner.current_revision, scratch_url) == shipped


async def test_a_first_install_runs_every_revision_in_the_pre_install_hook(
    release: Callable[..., None], scratch_url: str
) -> None:
    release("0901", EXPAND.format(down=REVISIONS[-1], phase="expand"))
    release("0902", CONTRACT.format(down="0901_trip_note"))
    assert await asyncio.to_thread(cli.main, ["--url", scratch_url, "upgrade", "--expand"]) == 0
    assert await asyncio.to_thread(runner.current_revision, scratch_url) == "0902_drop_trip_eta"
