"""Root test fixtures: real Postgres and Redis for every test, each test isolated.

Servers: `make test` (scripts/test.py) finds Postgres and Redis or starts embedded ones and
passes them in `TEST_PG_SERVER_URL` / `TEST_REDIS_SERVER_URL`; run bare, pytest looks for them
on 127.0.0.1 and starts embedded servers itself when none answer.

Isolation: each xdist worker gets its own database, built by running the real migrations, and
its own Redis database number. A test that talks to an app in-process gets a session factory
bound to one connection inside a transaction that is rolled back at the end of the test (the
app's commits become savepoints). Tests that run real processes use a scratch database of
their own (`scratch_database`).
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import uuid
import zlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from asgi_lifespan import LifespanManager
from fastapi import FastAPI
from redis import Redis
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from tripline_common.migrations.runner import upgrade
from tripline_common.platform import CommonSettings
from tripline_common.web import ServiceState
from tripline_devstack import (
    DevMailServer,
    EmbeddedPostgres,
    EmbeddedRedis,
    drop_database,
    ensure_database,
    free_port,
    postgres_answers,
    redis_answers,
)

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


@pytest.fixture
def redis_url(redis_server_url: str, worker_number: int) -> str:
    """This worker's Redis database, emptied before the test."""
    # Database 0 is left to `make dev`; the PID spreads concurrent runs over 1-15.
    url = f"{redis_server_url}/{1 + (os.getpid() + worker_number) % 15}"
    with Redis.from_url(url) as client:
        client.flushdb()
    return url


@pytest.fixture
def make_settings(database_url: str, redis_url: str) -> Callable[..., Any]:
    """Build a service's settings for tests: test environment, test database and Redis, no .env."""

    def make(cls: type[S] = CommonSettings, **overrides: Any) -> S:  # type: ignore[assignment]
        values: dict[str, Any] = {
            "environment": "test",
            "database_url": database_url,
            "redis_url": redis_url,
            # A queue of the test's own: a concurrent run sharing this Redis never sees its jobs.
            "arq_queue_name": f"tripline:test:{uuid.uuid4().hex[:12]}",
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
    async with LifespanManager(app) as manager:
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


@dataclass
class ReceivedRequest:
    """One request a `WebhookReceiver` got, and the status it answered."""

    path: str
    headers: dict[str, str]
    body: bytes
    status: int


class WebhookReceiver:
    """A real HTTP server on 127.0.0.1 standing in for a user's webhook endpoint.

    It records every POST and answers with the statuses queued in `script` (then 200). `stop()`
    and `start()` again reuse the same port, for an endpoint that goes away and comes back.
    """

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.script: list[int] = []
        self.received: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/tripline"

    def start(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver._lock:
                    status = receiver.script.pop(0) if receiver.script else 200
                    receiver.received.append(
                        ReceivedRequest(self.path, dict(self.headers.items()), body, status)
                    )
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def delivered(self) -> list[ReceivedRequest]:
        """The requests answered with a 2xx."""
        with self._lock:
            return [r for r in self.received if 200 <= r.status < 300]


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


@dataclass
class SentryEnvelope:
    """One envelope a `FakeSentry` received: decompressed, its header and its items."""

    raw: bytes
    headers: dict[str, Any]
    items: list[tuple[dict[str, Any], bytes]]

    def payloads(self, item_type: str) -> list[dict[str, Any]]:
        """The JSON payloads of the items of `item_type` ("event", "transaction", ...)."""
        return [json.loads(body) for header, body in self.items if header.get("type") == item_type]


def decompress_sentry_body(body: bytes, encoding: str) -> bytes:
    """A request body as the Sentry SDK compressed it (`Content-Encoding`), decompressed."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        try:
            import brotli  # type: ignore[import-not-found]  # only if the SDK chose it
        except ImportError:
            raise ValueError("brotli-compressed envelope, but brotli is not installed") from None
        return bytes(brotli.decompress(body))
    raise ValueError(f"unexpected Content-Encoding {encoding!r}")


def parse_sentry_envelope(raw: bytes) -> SentryEnvelope:
    """An envelope: a JSON header line, then per item a JSON header line and its payload."""
    header_line, _, rest = raw.partition(b"\n")
    items: list[tuple[dict[str, Any], bytes]] = []
    while rest.strip():
        item_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_line)
        if "length" in item_header:
            length = int(item_header["length"])
            payload, rest = rest[:length], rest[length:]
            rest = rest.removeprefix(b"\n")
        else:
            payload, _, rest = rest.partition(b"\n")
        items.append((item_header, payload))
    return SentryEnvelope(raw=raw, headers=json.loads(header_line), items=items)


class FakeSentry:
    """A real HTTP server on 127.0.0.1 standing in for Sentry; `dsn` points an SDK at it.

    It accepts envelopes POSTed to `/api/<project>/envelope/` (gzip, deflate or br bodies),
    decompresses and parses them, and records them in `envelopes`; anything it cannot take is
    answered 400 and described in `errors` (a test asserts that list stays empty).
    """

    def __init__(self) -> None:
        self.port = 0
        self.envelopes: list[SentryEnvelope] = []
        self.errors: list[str] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def dsn(self) -> str:
        return f"http://public@127.0.0.1:{self.port}/1"

    def start(self) -> None:
        sentry = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                try:
                    parts = self.path.split("?", 1)[0].strip("/").split("/")
                    if len(parts) != 3 or parts[0] != "api" or parts[2] != "envelope":
                        raise ValueError(f"unexpected path {self.path}")
                    body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                    raw = decompress_sentry_body(body, self.headers.get("Content-Encoding", ""))
                    envelope = parse_sentry_envelope(raw)
                except Exception as exc:
                    with sentry._lock:
                        sentry.errors.append(f"{type(exc).__name__}: {exc}")
                    self.send_response(HTTPStatus.BAD_REQUEST)
                else:
                    with sentry._lock:
                        sentry.envelopes.append(envelope)
                    self.send_response(HTTPStatus.OK)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            assert not self._thread.is_alive()
            self._thread = None

    def received(self) -> list[SentryEnvelope]:
        """The envelopes received so far, in order."""
        with self._lock:
            return list(self.envelopes)

    def raw(self) -> bytes:
        """Every envelope received, decompressed, one after the other."""
        return b"\n".join(envelope.raw for envelope in self.received())

    def events(self, service: str | None = None) -> list[dict[str, Any]]:
        """The error events received, in order; with `service`, only those tagged with it."""
        events = [event for envelope in self.received() for event in envelope.payloads("event")]
        return [e for e in events if service in (None, e.get("tags", {}).get("service"))]


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
