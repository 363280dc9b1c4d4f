"""Run Tripline's Alembic migrations in-process: upgrade, downgrade, inspect and wait for revisions.

Alembic's commands are synchronous while our `env.py` is asynchronous (asyncpg, driven by
`asyncio.run`). Every function here therefore works from plain code *and* from inside a running
event loop (pytest-asyncio, an app's lifespan): in the latter case the work runs in a helper
thread with its own loop, and the caller's loop is blocked until it is done. Async code that
must keep its loop responsive should call `await asyncio.to_thread(upgrade, url)` instead.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, TypeVar

from alembic import command
from alembic.config import Config
from alembic.operations import ops
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from pydantic_settings import BaseSettings
from sqlalchemy import make_url, pool
from sqlalchemy.engine import Connection
from sqlalchemy.exc import ArgumentError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from tripline_common.migrations.phases import PHASES, Phase
from tripline_common.platform.settings import CommonSettings

MIGRATIONS_DIR = Path(__file__).resolve().parent
"""Alembic's `script_location`: `env.py`, `script.py.mako` and `versions/` live here."""

DATABASE_URL_ATTRIBUTE = "tripline_database_url"
"""Key of `Config.attributes` carrying the URL to `env.py` (not a config option: a `%` in a
password would trip configparser's interpolation)."""

CONNECT_TIMEOUT_SECONDS = 10.0
"""How long to wait for the database to accept a connection before giving up."""

MAX_REVISION_ID_LENGTH = 32
"""`alembic_version.version_num` is VARCHAR(32); longer revision ids cannot be recorded."""

_REVISION_NUMBER = re.compile(r"^(\d{4})_")

# Alembic's `context` and `op` are process-wide proxies, so two migrations must never run
# concurrently in one process; this lock serialises them (separate processes are fine).
_alembic_lock = threading.Lock()

T = TypeVar("T")


class MigrationError(Exception):
    """An expected failure with a message meant for people (bad URL, not at head, timeout...)."""


class _MigrationSettings(BaseSettings):
    """What `tripline-migrate` reads from the environment (and `.env`): the database URL only.

    Not the whole CommonSettings: the migrations Job and the pods' wait-for-schema step get
    DATABASE_URL and nothing else (least privilege), and the image defaults to ENVIRONMENT=prod,
    whose rules would refuse to start without a SECRET_KEY that migrating never uses.
    """

    model_config = CommonSettings.model_config
    database_url: str | None = CommonSettings.model_fields["database_url"].default


def database_url(url: str | None = None) -> str:
    """The asyncpg URL to migrate: `url` if given, else `DATABASE_URL` (environment or `.env`).

    `postgresql://` and `postgres://` URLs are accepted and switched to the asyncpg driver.
    """
    if url is None:
        from pydantic import ValidationError

        try:
            url = _MigrationSettings().database_url
        except ValidationError as exc:
            messages = "; ".join(str(error["msg"]) for error in exc.errors())
            raise MigrationError(f"invalid settings: {messages}") from exc
        if not url:
            raise MigrationError("no database URL: set DATABASE_URL or pass --url")
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise MigrationError(f"invalid database URL {url!r}") from exc
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    if parsed.drivername != "postgresql+asyncpg":
        raise MigrationError(
            f"unsupported database URL scheme {parsed.drivername!r}: use postgresql+asyncpg://"
        )
    return parsed.render_as_string(hide_password=False)


def display_url(url: str) -> str:
    """`url` with its password masked, for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparseable URL>"


def make_config(url: str | None = None, *, stdout: TextIO | None = None) -> Config:
    """An Alembic `Config` for Tripline's migrations, built in code (no alembic.ini needed).

    `url` is handed to `env.py` as is; when it is None, `env.py` reads `DATABASE_URL`.
    """
    config = Config(stdout=stdout if stdout is not None else sys.stdout)
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    # e.g. versions/2025_06_01_0002_add_trip_tags.py: the date sorts, the id explains.
    config.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s")
    config.set_main_option("timezone", "UTC")
    if url is not None:
        config.attributes[DATABASE_URL_ATTRIBUTE] = database_url(url)
    return config


def _add_ruff_format_hook(config: Config) -> None:
    """In a development checkout, new migration files come out formatted like the rest."""
    search = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    ruff = shutil.which("ruff", path=search)
    if ruff is None:
        return
    hooks = {
        "hooks": "ruff_format",
        "ruff_format.type": "exec",
        "ruff_format.executable": ruff,
        "ruff_format.options": "format --quiet REVISION_SCRIPT_FILENAME",
    }
    for name, value in hooks.items():
        config.set_section_option("post_write_hooks", name, value)


def create_migration_engine(
    url: str, *, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
) -> AsyncEngine:
    """A pool-less asyncpg engine for one migration run (used by `env.py` and the helpers here)."""
    return create_async_engine(
        url,
        poolclass=pool.NullPool,
        connect_args={
            "timeout": connect_timeout,
            "server_settings": {"application_name": "tripline-migrate"},
        },
    )


def _outside_event_loop(fn: Callable[[], T]) -> T:
    """Run `fn` here, or in a helper thread if this thread is already running an event loop."""

    def locked() -> T:
        with _alembic_lock:
            return fn()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return locked()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tripline-migrate") as executor:
        return executor.submit(locked).result()


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, T]]) -> T:
    return _outside_event_loop(lambda: asyncio.run(factory()))


def upgrade(url: str | None, revision: str = "head", *, sql: bool = False) -> None:
    """Migrate the database at `url` (None: `DATABASE_URL`) up to `revision`.

    With `sql=True` nothing is executed: the SQL is written to stdout (offline mode).
    """
    config = make_config(url)
    _outside_event_loop(lambda: command.upgrade(config, revision, sql=sql))


def revision_sql(revision: str) -> str:
    """The SQL that upgrading from `revision`'s parent to `revision` runs, as offline mode
    writes it (no database needed): what squawk lints, one revision at a time."""
    script = _script_directory().get_revision(revision)
    if script is None:
        raise MigrationError(f"unknown revision {revision!r}")
    down = script.down_revision
    if not (down is None or isinstance(down, str)):
        raise MigrationError(f"{revision} merges several revisions: lint its parents one by one")
    buffer = io.StringIO()
    config = make_config("postgresql+asyncpg://offline@127.0.0.1/offline", stdout=io.StringIO())
    config.output_buffer = buffer
    target = f"{down}:{revision}" if down else revision
    _outside_event_loop(lambda: command.upgrade(config, target, sql=True))
    return buffer.getvalue()


@dataclass(frozen=True)
class _Chain:
    """The revisions shipped with this code, oldest first, with the phase each declares; read
    from the script directory once (`_chain()`), then asked as often as needed."""

    revisions: list[str]
    declared: dict[str, object]

    def phase(self, revision: str) -> Phase:
        if revision not in self.declared:
            raise MigrationError(f"unknown revision {revision!r}")
        phase = self.declared[revision]
        if phase not in PHASES:
            raise MigrationError(f"{revision} must declare phase = 'expand' or 'contract'")
        return phase  # Narrowed to a Phase by the check above.

    @property
    def required(self) -> str:
        """The head, less the contract revisions at its end."""
        chain = list(self.revisions)
        while len(chain) > 1 and self.phase(chain[-1]) == "contract":
            chain.pop()
        return chain[-1]

    def serves(self, current: str | None) -> bool:
        """True when a database at `current` has what this code needs: at or past `required`."""
        return current in self.revisions and (
            self.revisions.index(current) >= self.revisions.index(self.required)
        )


def _chain() -> _Chain:
    scripts = list(reversed(list(_script_directory().walk_revisions())))
    return _Chain(
        revisions=[script.revision for script in scripts],
        declared={script.revision: getattr(script.module, "phase", None) for script in scripts},
    )


def revisions() -> list[str]:
    """Every revision shipped with this code, oldest first."""
    return _chain().revisions


def downgrade(url: str | None, revision: str, *, sql: bool = False) -> None:
    """Migrate the database at `url` down to `revision` (`base` removes every table)."""
    config = make_config(url)
    _outside_event_loop(lambda: command.downgrade(config, revision, sql=sql))


OPTIONAL_INDEX_SUFFIX = "_trgm"
PARTITION_NAME = re.compile(r"^telemetry_events_(?:p\d{8}|default|legacy)$")
"""The partitions of `telemetry_events` (revision 0011; the worker makes and drops them)."""


def is_partition(name: str) -> bool:
    """True for a partition of a partitioned table: the models declare the parent only, and
    the partitions (their indexes and constraints with them) come and go with time."""
    return PARTITION_NAME.match(name) is not None


def is_optional_index(name: str) -> bool:
    """True for an index that exists only where the server has what it needs (the trigram
    indexes of revision 0008 need pg_trgm): the models do not declare it, `check` ignores it."""
    return name.endswith(OPTIONAL_INDEX_SUFFIX)


def check(url: str | None) -> None:
    """Raise `alembic.util.AutogenerateDiffsDetected` if the models differ from the migrations.

    The database must be at head: it stands for "what the migrations create".
    """
    config = make_config(url, stdout=io.StringIO())
    _outside_event_loop(lambda: command.check(config))


def current_revision(
    url: str | None, *, connect_timeout: float = CONNECT_TIMEOUT_SECONDS
) -> str | None:
    """The revision the database at `url` is at, or None if it was never migrated."""
    resolved = database_url(url)

    def read(connection: Connection) -> str | None:
        return MigrationContext.configure(connection).get_current_revision()

    async def query() -> str | None:
        engine = create_migration_engine(resolved, connect_timeout=connect_timeout)
        try:
            async with engine.connect() as connection:
                return await connection.run_sync(read)
        finally:
            await engine.dispose()

    return _run_coroutine(query)


def _script_directory() -> ScriptDirectory:
    return ScriptDirectory.from_config(make_config())


def head_revision() -> str:
    """The head revision of the migrations shipped with this code (what the models expect)."""
    heads = _script_directory().get_heads()
    if len(heads) != 1:
        raise MigrationError(
            f"expected exactly one head revision, found {len(heads)}: {', '.join(heads) or '-'}"
            " (write a merge migration)"
        )
    return heads[0]


def declared_phase(revision: str) -> Phase:
    """The `phase` a revision declares: `expand` (runs while the old code serves) or
    `contract` (only once every pod runs the new code): see `phases`."""
    return _chain().phase(revision)


def required_revision() -> str:
    """The revision this code needs: the head, less the contract revisions at its end (they
    only take away what this code no longer uses, and run after every pod runs it)."""
    return _chain().required


def expand_target(url: str | None) -> str:
    """Where the pre-upgrade hook migrates to: `required_revision()`, running expand revisions
    only. A first install (no revision yet: no old code serves) goes to head. Raises
    `MigrationError` when a contract revision stands before the required one among those to
    run: that is two releases at once, so upgrade through each release in turn."""
    current = current_revision(url)
    if current is None:
        return "head"
    chain = _chain()
    if current not in chain.revisions:
        return current  # A later release migrated already (a rollback): nothing to run.
    required = chain.required
    order = chain.revisions
    pending = order[order.index(current) + 1 : order.index(required) + 1]
    contracts = [revision for revision in pending if chain.phase(revision) == "contract"]
    if contracts:
        raise MigrationError(
            f"contract revision {contracts[0]} would run before {required} while the old code "
            'still serves: upgrade one release at a time (docs/operations.md, "Upgrades")'
        )
    return required if pending else current


def wait_for_head(
    url: str | None,
    *,
    timeout: float = 60.0,
    interval: float = 1.0,
    allow_newer: bool = False,
    on_wait: Callable[[str], None] | None = None,
) -> str:
    """Block until the database at `url` is at `required_revision()` or a later revision of
    this code (the contract revisions at the head run after the pods start); return it.

    Unreachable databases are retried, so this also waits for Postgres to start. With
    `allow_newer`, a revision this code does not know (a later release migrated already, or the
    deployment was rolled back) is accepted too. Raises `MigrationError` after `timeout` seconds.
    `on_wait` receives a one-line reason each time the database is not ready.
    """
    chain = _chain()  # Read once: the loop below only asks it.
    head = chain.required
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        try:
            current = current_revision(
                url, connect_timeout=max(0.5, min(CONNECT_TIMEOUT_SECONDS, remaining))
            )
        except MigrationError:
            raise
        except Exception as exc:  # the database may still be starting: keep trying
            reason = f"database not reachable: {one_line(exc)}"
        else:
            if chain.serves(current):
                assert current is not None
                return current
            if current is not None and current not in chain.revisions:
                if allow_newer:
                    return current
                reason = f"database is at {current}, unknown to this code (head {head})"
            else:
                reason = f"database is at {current or 'no revision'}, waiting for {head}"
        if on_wait is not None:
            on_wait(reason)
        if time.monotonic() + interval > deadline:
            raise MigrationError(f"timed out after {timeout:g}s: {reason}")
        time.sleep(interval)


def _slug(message: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", message.lower()).strip("_")


def next_revision_id(message: str, existing: Iterable[str] | None = None) -> str:
    """A readable revision id for `message`: the next number and a slug, e.g. `0002_add_tags`."""
    if existing is None:
        existing = [script.revision for script in _script_directory().walk_revisions()]
    numbers = [int(match.group(1)) for rev in existing if (match := _REVISION_NUMBER.match(rev))]
    rev_id = f"{max(numbers, default=0) + 1:04d}_{_slug(message) or 'revision'}"
    return rev_id[:MAX_REVISION_ID_LENGTH].rstrip("_")


def create_revision(
    message: str,
    *,
    autogenerate: bool = False,
    url: str | None = None,
    rev_id: str | None = None,
) -> list[Path]:
    """Write a new migration file to `versions/`; return the path(s) written.

    With `autogenerate`, the operations are derived from the difference between the models and
    the database at `url`, which must be at head. An empty autogeneration writes no file and
    raises `MigrationError`.
    """
    rev_id = rev_id or next_revision_id(message)
    if len(rev_id) > MAX_REVISION_ID_LENGTH:
        raise MigrationError(f"revision id {rev_id!r} longer than {MAX_REVISION_ID_LENGTH}")
    config = make_config(url if autogenerate else None, stdout=io.StringIO())
    _add_ruff_format_hook(config)
    empty: list[bool] = []

    def skip_empty(context: MigrationContext, revision: Any, directives: list[Any]) -> None:
        script = directives[0]
        if isinstance(script, ops.MigrationScript) and all(
            upgrade_ops.is_empty() for upgrade_ops in script.upgrade_ops_list
        ):
            empty.append(True)
            directives[:] = []

    def run() -> Any:
        return command.revision(
            config,
            message=message,
            autogenerate=autogenerate,
            rev_id=rev_id,
            process_revision_directives=skip_empty if autogenerate else None,
        )

    result = _outside_event_loop(run)
    if empty:
        raise MigrationError("no difference between the models and the database: nothing written")
    scripts = result if isinstance(result, list) else [result]
    return [Path(script.path) for script in scripts if script is not None]


def _causes(exc: BaseException) -> list[BaseException]:
    """`exc` and what it wraps (`__cause__`, or SQLAlchemy's `.orig`), outermost first."""
    chain: list[BaseException] = []
    current: object = exc
    while isinstance(current, BaseException) and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or getattr(current, "orig", None)
    return chain


def is_connection_error(exc: BaseException) -> bool:
    """True if `exc` means the server could not be reached (refused, unknown host, timeout)."""
    return any(isinstance(cause, OSError | TimeoutError) for cause in _causes(exc))


def one_line(exc: BaseException) -> str:
    """A short, single-line description of `exc`, preferring the root cause of wrapped errors.

    SQLAlchemy wraps driver errors (and appends SQL and a link); the driver's own message is
    what tells a person what went wrong, e.g. "Connect call failed ('127.0.0.1', 5433)".
    """
    root = _causes(exc)[-1]
    text = " ".join(str(root).split()) or type(root).__name__
    if root is not exc and type(root).__name__ not in text:
        text = f"{type(root).__name__}: {text}"
    return text if len(text) <= 300 else text[:297] + "..."
