"""Root test fixtures: real Postgres and Redis for every test, each test isolated.

Servers: `TEST_PG_SERVER_URL` / `TEST_REDIS_SERVER_URL`, else Postgres and Redis on 127.0.0.1's
usual ports; when none answers, the session starts embedded servers of its own.

Isolation: each xdist worker gets its own database, built by running the real migrations, and
its own Redis database number. A test that talks to an app in-process gets a session factory
bound to one connection inside a transaction that is rolled back at the end of the test (the
app's commits become savepoints). Tests that run real processes use a scratch database of
their own (`scratch_database`).

Third parties: the stand-ins (`tests/support/`) are real servers on 127.0.0.1; the fixtures here
only start and stop them.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import annotated_types
import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from pydantic.fields import FieldInfo
from redis import Redis
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tests.support.sentry import FakeSentry
from tripline_common.migrations.runner import upgrade
from tripline_common.platform import CommonSettings
from tripline_common.web import ServiceState
from tripline_devstack import (
    DevMailServer,
    DevTraceCollector,
    EmbeddedPostgres,
    EmbeddedRedis,
    WebhookReceiver,
    drop_database,
    ensure_database,
    postgres_answers,
    redis_answers,
)

# Users and their bearer tokens, for every app's tests (each names its `service_settings`);
# the `spans` fixture (an in-memory trace exporter).
pytest_plugins = ["tests.support.users", "tests.support.tracing"]

ROOT = Path(__file__).resolve().parent
S = TypeVar("S", bound=CommonSettings)


@pytest.fixture(scope="session")
def worker_number(worker_id: str) -> int:
    """0 for the main process, N for xdist worker `gwN`."""
    return int(worker_id[2:]) if worker_id.startswith("gw") else 0


@pytest.fixture(scope="session")
def worker_id(request: pytest.FixtureRequest) -> str:
    return getattr(request.config, "workerinput", {}).get("workerid", "main")


@pytest.fixture(scope="session")
def run_number(request: pytest.FixtureRequest) -> int:
    """A number shared by the workers of one run and (most likely) different from another
    run's: xdist's run ID, or the PID of a run without workers."""
    run_uid = getattr(request.config, "workerinput", {}).get("testrunuid")
    return int(run_uid, 16) if run_uid else os.getpid()


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    """A PostgreSQL server URL without a database (postgresql+asyncpg://user@host:port)."""
    configured = os.environ.get(
        "TEST_PG_SERVER_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432"
    )
    if postgres_answers(configured + "/postgres"):
        yield configured
        return
    # A throwaway data dir outside pytest's tmp tree: the server runs as an unprivileged user,
    # and pytest resets /tmp/pytest-of-root to 0700 whenever another session starts.
    with EmbeddedPostgres() as server:
        yield server.url("").rstrip("/")


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    """A Redis server URL without a database number (redis://host:port)."""
    configured = os.environ.get("TEST_REDIS_SERVER_URL", "redis://127.0.0.1:6379")
    if redis_answers(configured):
        yield configured
        return
    with EmbeddedRedis() as server:
        yield server.url().rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def database_url(pg_server_url: str, worker_id: str) -> Iterator[str]:
    """This worker's test database, created fresh and migrated to head by the real migrations."""
    # The PID keeps concurrent test runs on one server (two checkouts, CI beside a developer)
    # from dropping each other's database.
    name = f"tripline_test_{os.getpid()}_{worker_id}"
    drop_database(pg_server_url, name)
    ensure_database(pg_server_url, name)
    url = f"{pg_server_url}/{name}"
    upgrade(url)
    yield url
    drop_database(pg_server_url, name)


@pytest.fixture
def scratch_database(pg_server_url: str) -> Iterator[Callable[[], str]]:
    """Makes empty databases for tests that need committed data seen by other processes."""
    made: list[str] = []

    def make() -> str:
        name = f"tripline_scratch_{uuid.uuid4().hex[:12]}"
        ensure_database(pg_server_url, name)
        made.append(name)
        return f"{pg_server_url}/{name}"

    yield make
    for name in made:
        drop_database(pg_server_url, name)


@pytest.fixture(scope="session")
def worker_redis_url(redis_server_url: str, run_number: int, worker_number: int) -> str:
    """This worker's Redis database, the only one its tests may use (module-scoped systems
    included: a fixed number would be another worker's database in some runs)."""
    # Database 0 is left to `make dev`; the run number spreads concurrent runs over 1-15, and
    # the workers of one run take consecutive numbers (never each other's).
    return f"{redis_server_url}/{1 + (run_number + worker_number) % 15}"


@pytest.fixture
def redis_url(worker_redis_url: str) -> str:
    """This worker's Redis database, emptied before the test."""
    with Redis.from_url(worker_redis_url) as client:
        client.flushdb()
    return worker_redis_url


# The settings of the clock-aligned rate-limit windows that tests lengthen (`make_settings`).
RATE_WINDOWS = {
    "login_rate_window_seconds",
    "signup_rate_window_seconds",
    "signup_global_rate_window_seconds",
    "password_reset_rate_window_seconds",
    "failed_key_lookup_window_seconds",
    "device_rate_window_seconds",
    "console_refusal_audit_window_seconds",
}


def longest_window(field: FieldInfo) -> int:
    """The longest window `field` allows: about 31 years where it sets no bound (the current
    one started in 2001 and ends in 2033), else its upper bound."""
    bounds = [m.le for m in field.metadata if isinstance(m, annotated_types.Le)]
    return int(min([10**9, *bounds]))


@pytest.fixture
def make_settings(database_url: str, redis_url: str) -> Callable[..., Any]:
    """Build a service's settings for tests: test environment, test database and Redis, no .env."""

    def make(cls: type[S] = CommonSettings, **overrides: Any) -> S:  # type: ignore[assignment]
        # Rate limits count in windows fixed to the clock: a test counting hits across a window
        # edge sees the count restart (seen in CI at a minute's turn). One window that outlasts
        # the run, unless the test sets its own.
        windows = {
            name: longest_window(field)
            for name, field in cls.model_fields.items()
            if name in RATE_WINDOWS
        }
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            # A queue of the test's own: a concurrent run sharing this Redis never sees its jobs.
            "arq_queue_name": f"tripline:test:{uuid.uuid4().hex[:12]}",
            **windows,
            **overrides,
        }
        return cls(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def db_connection(database_url: str) -> AsyncIterator[AsyncConnection]:
    """One connection inside a transaction that is rolled back when the test ends."""
    engine = create_async_engine(database_url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            transaction = await conn.begin()
            try:
                yield conn
            finally:
                await transaction.rollback()
    finally:
        await engine.dispose()


@pytest.fixture
def session_factory(db_connection: AsyncConnection) -> async_sessionmaker[AsyncSession]:
    """Sessions whose commits are savepoints inside the test's rolled-back transaction."""
    return async_sessionmaker(
        bind=db_connection,
        class_=AsyncSession,
        expire_on_commit=False,
        join_transaction_mode="create_savepoint",
    )


LIFESPAN_DEADLINE_SECONDS = 60


@asynccontextmanager
async def running_app(
    app: FastAPI,
    session_factory: async_sessionmaker[AsyncSession] | None = None,
    pg: Any = None,
) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app`'s lifespan and give an httpx client that talks to it in-process.

    With `session_factory` and `pg`, the app's database resources are swapped for ones bound to
    the test's rolled-back transaction (its ORM sessions and its raw hot-path queries alike).
    """
    # asgi-lifespan's default 5 s deadlines fail a passing test when a loaded CI machine is
    # slow to close the pools (seen in CI); these are deadlines for a hung app, not timings.
    async with LifespanManager(
        app, startup_timeout=LIFESPAN_DEADLINE_SECONDS, shutdown_timeout=LIFESPAN_DEADLINE_SECONDS
    ) as manager:
        if session_factory is not None:
            ServiceState.of(app).resources.session_factory = session_factory
        if pg is not None:
            ServiceState.of(app).resources.pg = pg
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield client


@pytest.fixture
async def raw_connection(db_connection: AsyncConnection) -> Any:
    """The asyncpg connection under the test's transaction (stands in for the raw pool)."""
    return (await db_connection.get_raw_connection()).driver_connection


@pytest.fixture
def app_client(
    session_factory: async_sessionmaker[AsyncSession], raw_connection: Any
) -> Callable[[FastAPI], Any]:
    """`async with app_client(app) as client:` bound to the test's rolled-back transaction."""

    def make(app: FastAPI) -> Any:
        return running_app(app, session_factory, raw_connection)

    return make


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    """A started `WebhookReceiver`, stopped after the test."""
    receiver = WebhookReceiver()
    receiver.start()
    try:
        yield receiver
    finally:
        receiver.stop()


@pytest.fixture
def mail_server() -> Iterator[DevMailServer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 standing in for the mail provider: point
    SMTP_HOST/SMTP_PORT at it (SMTP_STARTTLS=false) and read what arrives from `messages`."""
    server = DevMailServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def trace_collector() -> Iterator[DevTraceCollector]:
    """A started `DevTraceCollector` (an OTLP/HTTP receiver), stopped after the test: point
    `OTEL_EXPORTER_OTLP_ENDPOINT` at its `endpoint` and read the spans the processes sent."""
    with DevTraceCollector() as collector:
        yield collector


@pytest.fixture
def fake_sentry() -> Iterator[FakeSentry]:
    """A started `FakeSentry`, stopped after the test."""
    sentry = FakeSentry()
    sentry.start()
    try:
        yield sentry
    finally:
        sentry.stop()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """In CI, a skipped test is a gap, not a pass: fail the run (CI=true)."""
    if os.environ.get("CI", "").lower() not in ("1", "true", "yes"):
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if skipped and exitstatus == 0:
        reporter.write_line(f"CI=true: {skipped} test(s) skipped; failing the run.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
