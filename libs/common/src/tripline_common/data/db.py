"""The async database layer: engine and pool from settings, unit-of-work sessions, retries."""

from __future__ import annotations

import functools
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, cast

import asyncpg
import orjson
import structlog
from sqlalchemy import Connection, event, text
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from tenacity import (
    AsyncRetrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from tripline_common.platform.settings import CommonSettings

if TYPE_CHECKING:
    from tripline_common.messaging.queue import JobQueue

log = structlog.get_logger("tripline.db")

P = ParamSpec("P")
T = TypeVar("T")

SessionFactory = async_sessionmaker[AsyncSession]


def _json_dumps(value: Any) -> str:
    return orjson.dumps(value).decode()


def create_engine(settings: CommonSettings) -> AsyncEngine:
    """The process's one engine, with the pool sized and guarded from settings."""
    if not settings.database_url:
        raise ValueError("DATABASE_URL is not set")
    server_settings = {"application_name": settings.service_name}
    if settings.db_statement_timeout_ms:
        server_settings["statement_timeout"] = str(settings.db_statement_timeout_ms)
    if settings.db_idle_in_transaction_timeout_ms:
        # A connection stuck in an open transaction (a handler awaiting something slow between
        # statements) holds locks and a pool slot: Postgres ends it instead.
        server_settings["idle_in_transaction_session_timeout"] = str(
            settings.db_idle_in_transaction_timeout_ms
        )
    return create_async_engine(
        settings.database_url,
        pool_size=settings.db_pool_size,
        max_overflow=settings.db_max_overflow,
        pool_timeout=settings.db_pool_timeout,
        pool_recycle=settings.db_pool_recycle,
        pool_pre_ping=settings.db_pool_pre_ping,
        echo=settings.db_echo,
        # Error messages and logs name the statement but not its values: request data, emails
        # and hashes stay out of tracebacks, log lines and Sentry (db_echo still shows them).
        hide_parameters=not settings.db_echo,
        json_serializer=_json_dumps,
        connect_args={
            "timeout": settings.db_connect_timeout,
            "command_timeout": max(settings.db_statement_timeout_ms / 1000 * 2, 30),
            "server_settings": server_settings,
        },
    )


def create_session_factory(engine: AsyncEngine) -> SessionFactory:
    """Sessions that keep loaded objects usable after commit (no surprise lazy loads)."""
    return async_sessionmaker(engine, class_=AsyncSession, expire_on_commit=False)


@asynccontextmanager
async def unit_of_work(
    factory: SessionFactory, queue: JobQueue | None = None
) -> AsyncIterator[AsyncSession]:
    """A session whose work commits together, then releases the jobs it queued.

    On success: commit, then enqueue the jobs deferred with `queue.enqueue_after_commit` (so a
    worker never sees a job for a row that is not committed). On error: roll back and drop the
    deferred jobs. The connection returns to the pool before this exits.
    """
    async with factory() as session:
        if queue is not None:
            queue.bind(session)
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            if queue is not None:
                queue.discard(session)
            raise
    if queue is not None:
        await queue.flush(session)


@asynccontextmanager
async def one_connection(factory: SessionFactory) -> AsyncIterator[SessionFactory]:
    """Sessions like `factory`'s, all on one connection checked out (and pre-pinged) once: for a
    job whose units of work follow one another. Each session still begins, commits or rolls
    back its own transaction; a connection found broken when a session rolls back is dropped,
    and the next session checks out (and pings) another."""
    engine = factory.kw["bind"]
    if isinstance(engine, AsyncConnection):
        yield factory  # Its sessions are on one connection already (the tests' are).
        return
    # Retried like the units of work it stands for: the checkout is their first step.
    connection = await retry_transient()(_checkout)(engine)
    # A statement on the driver connection outside a transaction bypasses the dialect's
    # disconnect handling: a session that rolls back on a connection found closed drops it,
    # so that the next one reconnects.
    event.listen(connection.sync_connection, "rollback", _drop_if_closed)
    try:
        yield async_sessionmaker(class_=factory.class_, **{**factory.kw, "bind": connection})
    finally:
        await connection.close()


async def _checkout(engine: AsyncEngine) -> AsyncConnection:
    return await engine.connect()


def _drop_if_closed(connection: Connection) -> None:
    if connection.invalidated:
        return
    driver = cast(asyncpg.Connection, connection.connection.driver_connection)
    if driver.is_closed():
        connection.invalidate()


async def driver_connection(session: AsyncSession, *, begin: bool = True) -> asyncpg.Connection:
    """The asyncpg connection under `session`, inside the session's transaction (begun now if
    no statement of the session has begun it): what runs on it commits or rolls back with the
    session. For the few hot paths a benchmark justifies (COPY, the worker's batch processing).

    `begin=False` leaves a session that has run no statement yet outside a transaction: a
    statement on the connection then commits by itself (one round trip, not three)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver = cast(asyncpg.Connection, raw.driver_connection)
    if begin and not driver.is_in_transaction():
        # The dialect begins its transaction with the first statement, not at checkout: begin
        # it as that statement would (the session's commit or rollback then ends it).
        await raw.dbapi_connection._start_transaction()  # type: ignore[union-attr]
    return driver


def is_transient_db_error(exc: BaseException) -> bool:
    """True for failures worth retrying: the connection broke or the server is restarting."""
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, sa_exc.DBAPIError | sa_exc.InterfaceError):
        exc = exc.orig or exc
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(
            cause,
            ConnectionError
            | TimeoutError
            | socket.gaierror
            | asyncpg.exceptions.ConnectionDoesNotExistError
            | asyncpg.exceptions.CannotConnectNowError
            | asyncpg.exceptions.TooManyConnectionsError
            | asyncpg.exceptions.AdminShutdownError
            | asyncpg.exceptions.InterfaceError,
        ):
            return True
        if isinstance(cause, asyncpg.exceptions.SerializationError | asyncpg.DeadlockDetectedError):
            return True
        cause = cause.__cause__ or cause.__context__
    return False


def retry_transient(
    attempts: int = 3, max_wait: float = 2.0
) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Awaitable[T]]]:
    """Retry an async database operation on transient connection failures (tenacity).

    Only wrap operations that are safe to repeat: a whole unit of work, or a read.
    """

    def decorator(func: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
        @functools.wraps(func)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(is_transient_db_error),
                stop=stop_after_attempt(attempts),
                wait=wait_exponential_jitter(multiplier=0.1, max=max_wait, jitter=0.1),
                before_sleep=before_sleep_log(log, 30),
                reraise=True,
            ):
                with attempt:
                    return await func(*args, **kwargs)
            raise AssertionError("unreachable")  # pragma: no cover

        return wrapper

    return decorator


async def ping_database(engine: AsyncEngine) -> None:
    """Run `SELECT 1`; raises when the database does not answer."""
    async with engine.connect() as conn:
        await conn.execute(text("SELECT 1"))
